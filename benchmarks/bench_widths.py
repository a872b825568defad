"""Width choice by measured latency: which pruned widths save CPU time, and which the rounding
rule of ``litesr.measure.width_latency`` picks instead of the exact ones.

Protocol: batch 1, fp32, ``--threads`` torch threads, LR 180×320 (a 720p ×4 output), random
weights (time does not depend on them). Every timing runs one warm-up forward per
configuration, then ``--repeats`` rounds that run every configuration in turn (a change in
the machine's load touches them all alike); the table shows the median per configuration.
The clock is ``litesr.measure.width_latency.clock``'s: with one thread, the thread's CPU time
(an idle core's wall time, not lengthened while other processes take turns on the core).

(a) The DIPNet architecture (``rlfn`` with ``DIPNET_ARGS``: 44 feature channels, 4 blocks,
    ESA 16, no biases) at middle width ``w`` (``c1_r`` and ``c2_r`` of every block), ``w``
    from 16 to 64 in steps of 2 and every width a pick below needs: latency, parameters and
    MACs.
(b) The per-width layer tables (``measure_widths``) the rule reads: ``44 → w → w → 44``, the
    layers DIPNet's pruning of ``c1_r`` and ``c2_r`` changes, and ``52 → w → 52``, a pair of
    DRC's on a 52-channel RLFN; every width from 1.
(c) The picks (``fast_width``, ``--tolerance``): DIPNet's pruning chain from 55 at ratio
    0.3125 (exact: 55 → 38 → 26 → 18), each round rounding what the previous round kept; and
    DRC's candidate widths of a 52-channel RLFN (6 blocks, biases, as RLFN) at r = 0.3, 0.5,
    0.7, with the network's latency at the largest candidate (the L1 baseline's uniform
    width). Latency and parameters of exact against rounded widths: the Pareto effect before
    any accuracy is measured.

Example: ``python benchmarks/bench_widths.py`` (about 6 minutes on one thread of a shared 2-core
CPU).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import pandas as pd
import torch
from torch import nn

from litesr.compress.prune import kept_channels
from litesr.measure.cost import count_macs, count_params, cpu_name, lr_size_for_output
from litesr.measure.width_latency import (
    TOLERANCE,
    LayerShape,
    clock,
    fast_width,
    measure_widths,
)
from litesr.methods.drc.search import candidate_widths
from litesr.models import build
from litesr.models.rlfn import DIPNET_ARGS

SCALE = 4
HW = lr_size_for_output(scale=SCALE)  # 180×320
GRID = range(16, 65, 2)
DIPNET_CHAIN = (55, 0.3125, 3)  # start width, ratio, rounds
DRC_RATIOS = (0.3, 0.5, 0.7)
RLFN52 = {"feature_channels": 52, "esa_channels": 16, "n_blocks": 6, "bias": True}


def dipnet(width: int) -> nn.Module:
    return build("rlfn", scale=SCALE, **{**DIPNET_ARGS, "mid_channels": width})


def rlfn52(width: int) -> nn.Module:
    return build("rlfn", scale=SCALE, **RLFN52, mid_channels=width)


def time_networks(
    make: Callable[[int], nn.Module], widths: list[int], threads: int, repeats: int
) -> dict[int, float]:
    """Median ms per width of ``make(width)`` (the module's protocol)."""
    torch.manual_seed(0)
    torch.set_num_threads(threads)
    nets = {w: make(w).eval() for w in widths}
    x = torch.rand(1, 3, *HW)
    times: dict[int, list[float]] = {w: [] for w in widths}
    now = clock("cpu", threads)
    with torch.inference_mode():
        for rounds in (1, repeats):
            for _ in range(rounds):
                for w, net in nets.items():
                    start = now()
                    net(x)
                    times[w].append((now() - start) * 1e3)
    return {w: statistics.median(t[1:]) for w, t in times.items()}


def dipnet_picks(table: dict[int, float], tolerance: float) -> list[dict]:
    """DIPNet's pruning chain, exact and rounded, round by round."""
    start, ratio, rounds = DIPNET_CHAIN
    exact = rounded = start
    rows = []
    for r in range(rounds):
        exact = kept_channels(exact, ratio)
        rounded = fast_width(table, rounded, kept_channels(rounded, ratio), tolerance)
        rows.append({"pick": f"DIPNet round {r}", "exact": exact, "rounded": rounded})
    return rows


def drc_picks(table: dict[int, float], tolerance: float) -> list[dict]:
    """DRC's candidates of a 52-channel RLFN, exact and rounded, per ratio."""
    rows = []
    for ratio in DRC_RATIOS:
        exact = candidate_widths(52, ratio)
        rounded = sorted({fast_width(table, 52, w, tolerance) for w in exact})
        rows.append({"pick": f"DRC r={ratio}", "candidates": exact, "rounded": rounded})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tolerance", type=float, default=TOLERANCE)
    a = parser.parse_args()
    started = time.perf_counter()
    load = [os.getloadavg()[0]]
    layers = {
        "44-w-w-44": (LayerShape(44, 44, 3, HW, inner=1), range(1, 65)),
        "52-w-52": (LayerShape(52, 52, 3, HW), range(1, 53)),
    }
    tables = {
        name: measure_widths(shape, widths, threads=a.threads, repeats=a.repeats)
        for name, (shape, widths) in layers.items()
    }
    load.append(os.getloadavg()[0])
    dip = dipnet_picks(tables["44-w-w-44"], a.tolerance)
    drc = drc_picks(tables["52-w-52"], a.tolerance)
    needed = {DIPNET_CHAIN[0]} | {row[k] for row in dip for k in ("exact", "rounded")}
    net_ms = time_networks(dipnet, sorted(set(GRID) | needed), a.threads, a.repeats)
    load.append(os.getloadavg()[0])
    uniform = sorted({max(row[k]) for row in drc for k in ("candidates", "rounded")})
    rlfn_ms = time_networks(rlfn52, uniform, a.threads, a.repeats)
    load.append(os.getloadavg()[0])

    rows = []
    for w, ms in net_ms.items():
        net = dipnet(w)
        rows.append(
            {
                "middle width": w,
                "DIPNet ms": ms,
                "vs 38": ms / net_ms[38],
                "params": count_params(net),
                "GMACs": count_macs(net, HW) / 1e9,
                "44-w-w-44 ms": tables["44-w-w-44"].get(w, float("nan")),
                "52-w-52 ms": tables["52-w-52"].get(w, float("nan")),
            }
        )
    print(
        f"# python benchmarks/bench_widths.py --threads {a.threads} --repeats {a.repeats} "
        f"--tolerance {a.tolerance:g}   ({time.perf_counter() - started:.0f} s)"
    )
    print(
        f"{cpu_name()}, torch {torch.__version__}, {a.threads} thread(s); LR {HW[0]}×{HW[1]}, "
        f"batch 1, fp32; medians of {a.repeats} interleaved rounds, clock "
        f"{clock('cpu', a.threads).__name__}; 1-min load average "
        f"{min(load):.1f}–{max(load):.1f}\n"
    )
    print("(a, b) DIPNet architecture (44 features) by middle width, and the layer tables:\n")
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".2f"))

    def network(w: int) -> dict:
        net = dipnet(w)
        return {"ms": net_ms[w], "params": count_params(net)}

    chain = []
    for row in [{"pick": "DIPNet start", "exact": 55, "rounded": 55}, *dip]:
        e, r = network(row["exact"]), network(row["rounded"])
        chain.append(
            {
                **row,
                "exact ms": e["ms"],
                "rounded ms": r["ms"],
                "exact params": e["params"],
                "rounded params": r["params"],
            }
        )
    print(f"\n(c) DIPNet's pruning chain (ratio {DIPNET_CHAIN[1]}), exact against rounded:\n")
    print(pd.DataFrame(chain).to_markdown(index=False, floatfmt=".1f"))
    for row in drc:
        exact, rounded = max(row["candidates"]), max(row["rounded"])
        row |= {
            "candidates": " ".join(map(str, row["candidates"])),
            "rounded": " ".join(map(str, row["rounded"])),
            "uniform exact": exact,
            "uniform rounded": rounded,
            "RLFN-52 ms exact": rlfn_ms[exact],
            "RLFN-52 ms rounded": rlfn_ms[rounded],
            "params exact": count_params(rlfn52(exact)),
            "params rounded": count_params(rlfn52(rounded)),
        }
    print("\n(c) DRC's candidate widths of a 52-channel RLFN (6 blocks), exact and rounded:\n")
    print(pd.DataFrame(drc).to_markdown(index=False, floatfmt=".1f"))


if __name__ == "__main__":
    main()
