"""Training throughput: the patch loader's samples/s and one training step's speed against
the machine's matrix-multiply rate.

Batches of ``--batch`` LR patches of ``--patch`` px at ×``--scale``, drawn from ``--images``
random 480×480 HR images (or the prepared set ``--data``), on ``--device``:

- loader, in process: ``PatchSampler.sample`` in the training process, then copied;
- loader, worker: the loop's GPU path (``litesr.train.loader.Batches``: one DataLoader worker
  drawing ahead, pinned memory on a GPU, copies that do not block);
- loader, on device: a pre-extracted patch set (``FixedPatchSampler``) held on the device;
- step: forward, L1 loss, backward and Adam step of each ``--archs`` network (default
  arguments: RLFN 52×6, EDSR-baseline 16×64, the teacher) on a batch already on the device,
  as the recipe keys ``precision`` and ``channels_last`` run it in ``litesr.train.loop.fit``:
  ``fp32``, ``channels-last``, ``bf16`` (autocast), ``both``, and ``compile``
  (``torch.compile`` of the fp32 network);
- loop: the fp32 step fed by the loop's own loader (what ``fit`` does per step).

Each step (and the reference product) is called ``--warmup`` times (compile included), then
timed once per round, in turn, for ``--steps`` rounds, so that a change in the machine's load
touches them all alike. A row has the median wall time of a step, samples/s, the FLOPs of
one step (convolutions and matrix products, forward and backward, by
``torch.utils.flop_counter``; element-wise work is not counted) per second, and that rate
against a square ``torch.mm`` measured in the same rounds at the same precision (bf16 for
``bf16`` and ``both``) and thread count. On a CPU every time is also taken as process CPU
time (``cpu`` columns): beside other processes a step waits for the CPU, which its wall time
counts and its CPU time does not. ``allocator`` names the libraries in ``LD_PRELOAD``
(glibc's malloc when empty). The loader keeps a GPU busy when its samples/s are above the
step's.

Example: ``python benchmarks/bench_train.py --threads 1 --out
benchmarks/measured/bench_train_cpu.txt``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.nn.functional import l1_loss
from torch.utils.flop_counter import FlopCounterMode

from litesr.device import resolve_device
from litesr.models import build
from litesr.train.loader import Batches
from litesr.train.patches import FixedPatchSampler, Pair, PatchSampler, extract_patches, load_pairs


def synthetic_pairs(count: int, scale: int, side: int = 480) -> list[Pair]:
    """``count`` random HR images and their (box-filtered) LR: throughput needs no content."""
    rng = np.random.default_rng(0)
    pairs = []
    for i in range(count):
        hr = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
        lr = hr.reshape(side // scale, scale, side // scale, scale, 3).mean((1, 3))
        pairs.append(Pair(f"img{i}", hr, lr.astype(np.uint8)))
    return pairs


DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
LOOP = "fp32, loop's loader"
VARIANTS = {  # name: (bf16 autocast, channels-last, torch.compile)
    "fp32": (False, False, False),
    "channels-last": (False, True, False),
    "bf16": (True, False, False),
    "both": (True, True, False),
    "compile": (False, False, True),
}


Key = tuple[str, str]  # (network or "torch.mm", variant or precision)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def once(run: Callable[[], object], dev: torch.device) -> tuple[float, float]:
    """Wall and process CPU seconds of one call of ``run``."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    sync(dev)
    return time.perf_counter() - wall, time.process_time() - cpu


def medians(times: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(t[0] for t in times), statistics.median(t[1] for t in times)


def timed(run: Callable[[], object], steps: int, warmup: int, dev: torch.device):
    """Median wall and CPU seconds of one call of ``run``, after ``warmup`` calls."""
    for _ in range(warmup):
        run()
    sync(dev)
    return medians([once(run, dev) for _ in range(steps)])


def rounds(runs: dict[Key, Callable[[], object]], count: int, dev: torch.device):
    """Median wall and CPU seconds of each of ``runs``, each timed once per round in turn, so
    that a change in the machine's load touches them all alike."""
    times: dict[Key, list[tuple[float, float]]] = {key: [] for key in runs}
    for _ in range(count):
        for key, run in runs.items():
            times[key].append(once(run, dev))
    return {key: medians(t) for key, t in times.items()}


def step_fn(net: torch.nn.Module, batch: Callable[[], list[torch.Tensor]], bf16: bool, dev):
    """One optimiser step of ``net`` on the batch ``batch()`` gives."""
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)

    def step() -> None:
        lr, hr = batch()
        with torch.autocast(dev.type, torch.bfloat16, enabled=bf16):
            loss = l1_loss(net(lr), hr)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def step_flops(net: torch.nn.Module, lr: torch.Tensor, hr: torch.Tensor) -> int:
    """FLOPs of one forward and backward of ``net`` (convolutions and matrix products)."""
    with FlopCounterMode(display=False) as counter:
        l1_loss(net(lr), hr).backward()
    net.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def machine(dev: torch.device) -> str:
    """The device in words: the GPU's name, or the CPU's model and its bf16 instructions."""
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next(
        (ln.split(":", 1)[1].strip() for ln in info.splitlines() if "model name" in ln), ""
    )
    flags = set(next((ln for ln in info.splitlines() if ln.startswith("flags")), "").split())
    isa = ", ".join(f for f in ("avx512f", "avx512_bf16", "amx_bf16") if f in flags)
    isa = isa or "no AVX-512, no native bf16"
    kernels = torch.backends.cpu.get_cpu_capability()
    return (
        f"{model or platform.processor()}, {os.cpu_count()} CPUs ({isa}; torch's {kernels} kernels)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", choices=["cpu", "cuda", "auto"])
    parser.add_argument("--archs", nargs="+", default=["rlfn", "edsr"])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--patch", type=int, default=48, help="LR patch side")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--images", type=int, default=8, help="synthetic HR images")
    parser.add_argument("--data", type=Path, help="a prepared set (HR/ and LR/) instead")
    parser.add_argument("--loader-steps", type=int, default=50)
    parser.add_argument("--steps", type=int, default=20, help="rounds: each timed once a round")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls of each first")
    parser.add_argument("--matmul", type=int, default=1024, help="side of the reference mm")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--note", default="", help="a line for the header (what ran beside)")
    parser.add_argument("--out", type=Path, help="also write the tables here")
    a = parser.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = resolve_device(a.device)
    cpu = dev.type == "cpu"
    load_before = os.getloadavg()
    allocator = " ".join(Path(p).name for p in os.environ.get("LD_PRELOAD", "").split())
    allocator = allocator or "glibc"
    pairs = load_pairs(a.data, a.scale, a.patch) if a.data else synthetic_pairs(a.images, a.scale)
    sampler = PatchSampler(pairs, a.scale, a.patch)
    gen = torch.Generator().manual_seed(0)
    b, n = a.batch, a.loader_steps
    loads: list[dict[str, object]] = []

    def loader(mode: str, run: Callable[[], object], warmup: int) -> None:
        samples_s = b / timed(run, n, warmup, dev)[0]
        loads.append({"loader": mode, "samples/s": round(samples_s, 1)})
        print(f"loader {mode:<24} {samples_s:10.1f} samples/s", flush=True)

    with Batches(sampler, b, gen, dev, worker=False) as batches:
        loader("in process", lambda: next(batches), 2)
    with Batches(sampler, b, gen, dev, worker=True) as batches:
        loader("worker" + (", pinned" if dev.type == "cuda" else ""), lambda: next(batches), 5)
    fixed = FixedPatchSampler(*extract_patches(sampler, max(4096, b), seed=0)).to(dev)
    loader(f"on {dev.type} (fixed set)", lambda: fixed.sample(b, gen), 2)

    lr, hr = (t.to(dev) for t in sampler.sample(b, gen))
    precisions = {"bf16" if VARIANTS[v][0] else "fp32" for v in a.variants} | {"fp32"}
    runs: dict[Key, Callable[[], object]] = {}
    for name in sorted(precisions):
        x, y = (torch.randn(a.matmul, a.matmul, device=dev).to(DTYPES[name]) for _ in range(2))
        runs["torch.mm", name] = lambda x=x, y=y: x @ y
    flops: dict[str, int] = {}
    with ExitStack() as stack:
        for arch in a.archs:
            torch.manual_seed(0)
            start = build(arch, scale=a.scale).to(dev).state_dict()
            flops[arch] = step_flops(build(arch, scale=a.scale).to(dev).train(), lr, hr)
            for variant in a.variants:
                bf16, channels_last, compiled = VARIANTS[variant]
                fmt = torch.channels_last if channels_last else torch.contiguous_format
                net = build(arch, scale=a.scale).to(dev)
                net.load_state_dict(start)
                net = net.to(memory_format=fmt).train()
                batch = [lr.to(memory_format=fmt), hr.to(memory_format=fmt)]
                model = torch.compile(net) if compiled else net
                runs[arch, variant] = step_fn(model, lambda x=batch: x, bf16, dev)
            net = build(arch, scale=a.scale).to(dev).train()
            batches = stack.enter_context(Batches(sampler, b, gen, dev))
            runs[arch, LOOP] = step_fn(net, lambda s=batches: next(s), False, dev)
        for key, run in runs.items():  # torch.compile compiles here
            print(f"warm-up: {' '.join(key)}", flush=True)
            for _ in range(a.warmup):
                run()
        sync(dev)
        times = rounds(runs, a.steps, dev)

    mm = {
        name: (2 * a.matmul**3 / wall, 2 * a.matmul**3 / c)
        for (net, name), (wall, c) in times.items()
        if net == "torch.mm"
    }
    rows: list[dict[str, object]] = []
    for (arch, variant), (wall, cpu_s) in times.items():
        if arch == "torch.mm":
            continue
        mm_wall, mm_cpu = mm["bf16" if VARIANTS.get(variant, (False,))[0] else "fp32"]
        row = {
            "arch": arch,
            "variant": variant,
            "allocator": allocator,
            "ms/step": round(1e3 * wall, 1),
            "samples/s": round(b / wall, 2),
            "GFLOP/s": round(flops[arch] / wall / 1e9, 1),
            "% of mm": round(100 * flops[arch] / wall / mm_wall, 1),
        }
        if cpu:
            row |= {
                "cpu ms/step": round(1e3 * cpu_s, 1),
                "cpu GFLOP/s": round(flops[arch] / cpu_s / 1e9, 1),
                "cpu % of mm": round(100 * flops[arch] / cpu_s / mm_cpu, 1),
            }
        rows.append(row)

    threads = f"{torch.get_num_threads()} torch threads" if cpu else "GPU"
    rates = "; ".join(
        f"{name} {wall / 1e9:.1f} GFLOP/s" + (f" ({c / 1e9:.1f} by CPU time)" if cpu else "")
        for name, (wall, c) in sorted(mm.items())
    )
    head = [
        f"{machine(dev)}; {threads}; torch {torch.__version__}; "
        f"batch {b}, LR patch {a.patch}, x{a.scale}; median of {a.steps} rounds after {a.warmup}",
        f"reference: {a.matmul}x{a.matmul} torch.mm, {rates}",
        f"load average {load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after"
        + (f"; {a.note}" if a.note else ""),
    ]
    text = "\n".join(
        [
            *head,
            "",
            pd.DataFrame(loads).to_string(index=False),
            "",
            pd.DataFrame(rows).to_string(index=False),
        ]
    )
    print(f"\n{text}")
    if a.out:
        a.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
