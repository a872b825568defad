"""Latency per pruned width, measured and cached: which widths save time on the target.

oneDNN (torch's CPU convolutions) computes channels in blocks of its vector width, so widths
between two block multiples cost about the same: pruning to one of them saves parameters and
MACs, not time. :func:`width_table` times the layers one pruned width ``w`` runs through,
``in → w (k×k) [→ w (k×k)] × inner → out`` (:class:`LayerShape`: a pruned conv and its
consumer; with ``inner`` 1, two pruned convs in a row, as RLFN's ``c1_r`` and ``c2_r``), for
every candidate ``w``; :func:`fast_width` rounds a pruned width with the table (read as
non-decreasing in width, :func:`monotone`, so that one noisy width does not move the pick).

Protocol: batch 1, fp32, a random ``1 × in × H × W`` input, random weights (time does not
depend on them), no biases; on CPU with ``threads`` intra-op threads, on CUDA with a
``synchronize`` around each forward. Every width runs one warm-up forward (oneDNN builds its
kernels there), then :data:`REPEATS` timed rounds in turn over all widths, so that a change in
the machine's load touches every width alike; the table is the median per width, in ms. With
one CPU thread the clock is that thread's CPU time (:func:`clock`): the wall time of an idle
core, and not lengthened while other processes take turns on it (on a 2-core CPU shared
with a training job, wall-time medians came out twice the CPU time and scattered ±50 %
between neighbouring widths; the CPU times kept their steps); otherwise the wall clock.

Tables are kept in the cache folder (:mod:`litesr.tools.cache`, kind ``widths``), keyed by
the device's model name, torch's version, the threads, the shape and the widths; a cached
table is read back instead of measured again.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from litesr.measure.cost import cpu_name
from litesr.tools import cache

TABLE_VERSION = 1  # raise when the protocol changes: cached tables go stale
REPEATS = 5
TOLERANCE = 0.05
"""Latencies within this fraction count as equal (:func:`fast_width`)."""


@dataclass(frozen=True)
class LayerShape:
    """The layers a pruned width ``w`` affects: ``in → w``, ``inner`` times ``w → w``, then
    ``w → out``, all ``kernel × kernel`` ('same' padding), on a ``lr_hw`` input."""

    in_channels: int
    out_channels: int
    kernel: int
    lr_hw: tuple[int, int]
    inner: int = 0

    @property
    def label(self) -> str:
        """``44-w-w-44_k3_180x320``: the chain of widths, kernel and input size."""
        chain = "-".join(["w"] * (1 + self.inner))
        hw = f"{self.lr_hw[0]}x{self.lr_hw[1]}"
        return f"{self.in_channels}-{chain}-{self.out_channels}_k{self.kernel}_{hw}"

    def layers(self, width: int) -> nn.Sequential:
        """The convs at pruned width ``width``, in eval mode."""
        sizes = [self.in_channels, *[width] * (1 + self.inner), self.out_channels]
        pad = self.kernel // 2
        convs = [
            nn.Conv2d(a, b, self.kernel, padding=pad, bias=False)
            for a, b in zip(sizes, sizes[1:], strict=False)
        ]
        return nn.Sequential(*convs).eval()


def device_name(device: str) -> str:
    """The model name of the CPU (``cpu``) or of the CUDA device (``cuda``, ``cuda:1``)."""
    dev = torch.device(device)
    return torch.cuda.get_device_name(dev) if dev.type == "cuda" else cpu_name()


def clock(device: str, threads: int) -> Callable[[], float]:
    """The timer of the protocol: the calling thread's CPU time for one CPU thread, else the
    wall clock (seconds)."""
    cpu = torch.device(device).type == "cpu" and threads == 1
    return time.thread_time if cpu else time.perf_counter


def measure_widths(
    shape: LayerShape,
    widths: Iterable[int],
    *,
    device: str = "cpu",
    threads: int = 1,
    repeats: int = REPEATS,
) -> dict[int, float]:
    """Median ms of ``shape``'s layers at each width (the module's protocol), measured now."""
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    x = torch.rand(1, shape.in_channels, *shape.lr_hw, device=dev)
    nets = {w: shape.layers(w).to(dev) for w in widths}
    times: dict[int, list[float]] = {w: [] for w in nets}
    now = clock(device, threads)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            for rounds in (1, repeats):
                for _ in range(rounds):
                    for w, net in nets.items():
                        if cuda:
                            torch.cuda.synchronize(dev)
                        start = now()
                        net(x)
                        if cuda:
                            torch.cuda.synchronize(dev)
                        times[w].append((now() - start) * 1e3)
    finally:
        torch.set_num_threads(previous)
    return {w: statistics.median(t[1:]) for w, t in times.items()}


def _stamp(
    shape: LayerShape, widths: list[int], device: str, threads: int, repeats: int
) -> dict[str, Any]:
    """What a cached table depends on."""
    return {
        "version": TABLE_VERSION,
        "torch": torch.__version__,
        "device": device_name(device),
        "threads": threads,
        "clock": clock(device, threads).__name__,
        "shape": asdict(shape) | {"lr_hw": list(shape.lr_hw)},
        "widths": widths,
        "repeats": repeats,
    }


def width_table(
    shape: LayerShape,
    widths: Iterable[int],
    *,
    device: str = "cpu",
    threads: int = 1,
    repeats: int = REPEATS,
) -> dict[int, float]:
    """:func:`measure_widths`' table, from the cache folder or measured now and kept there."""
    widths = sorted(set(widths))
    stamp = _stamp(shape, widths, device, threads, repeats)
    digest = hashlib.sha256(json.dumps(stamp, sort_keys=True).encode()).hexdigest()[:12]
    name = f"{shape.label}-{torch.device(device).type}-{threads}t-{digest}.json"
    found = cache.read_json("widths", name, stamp)
    if found is not None:
        return {int(w): ms for w, ms in found["ms"].items()}
    table = measure_widths(shape, widths, device=device, threads=threads, repeats=repeats)
    cache.write_json("widths", name, stamp, {"ms": {str(w): ms for w, ms in table.items()}})
    return table


def monotone(table: Mapping[int, float]) -> dict[int, float]:
    """The non-decreasing least-squares fit of ``table`` in width order (pool adjacent
    violators): a width measured faster than a narrower one is pooled with it."""
    widths = sorted(table)
    runs: list[tuple[float, int]] = []  # (sum, count) of each pooled run
    for w in widths:
        total, count = table[w], 1
        while runs and runs[-1][0] / runs[-1][1] > total / count:
            total, count = total + runs[-1][0], count + runs[-1][1]
            runs.pop()
        runs.append((total, count))
    fit = [total / count for total, count in runs for _ in range(count)]
    return dict(zip(widths, fit, strict=True))


def fast_width(
    table: Mapping[int, float], current: int, target: int, tolerance: float = TOLERANCE
) -> int:
    """The width to prune a ``current``-wide layer to instead of ``target``, by ``table``
    (ms per width; it must hold both).

    The rule, on the table's non-decreasing fit ``t`` (:func:`monotone`: one width that
    measured fast or slow by chance does not move the pick): the widest width
    ``w ≤ current`` that costs no more than the target, ``t[w] ≤ t[target] · (1 + tolerance)``,
    and is clearly faster than the current width, ``t[w] · (1 + tolerance) < t[current]``.
    So a target that costs what a wider width costs (38 where 33–40 run alike: oneDNN's
    blocks of 8 channels on an AVX2 CPU) rounds up to that wider width (40), and a target
    that saves no time against ``current`` (36 from 40) steps down to the widest width that
    does (32). ``target ≥ current`` keeps ``current``; where no width of the table is
    clearly faster than ``current``, ``target`` is kept.
    """
    missing = {current, target} - set(table)
    if missing:
        raise ValueError(f"the latency table has no width {sorted(missing)}")
    if target >= current:
        return current
    t = monotone(table)
    budget = t[target] * (1 + tolerance)
    fits = [
        w
        for w, ms in t.items()
        if w <= current and ms <= budget and ms * (1 + tolerance) < t[current]
    ]
    return max(fits, default=target)


def cost_target(cost: Mapping[str, Any]) -> dict[str, Any]:
    """The device and threads of the tables for a config's ``cost`` section: CUDA when it
    measures on CUDA outright (``device: cuda``), else the CPU, whose latency every cost
    table has; its ``threads``."""
    device = "cuda" if cost.get("device") == "cuda" else "cpu"
    return {"device": device, "threads": int(cost.get("threads", 1))}
