"""Inference latency at 1 and 2 intra-op threads, on an idle CPU and beside a busy process.

Each measurement runs in a fresh process started the way Snakemake starts a rule's job:
the thread count in ``OMP_NUM_THREADS`` (``threads: N`` sets it, with ``MKL_NUM_THREADS``
and the others), nothing set in the code. That process builds the networks (random weights:
time does not depend on them), runs one warm-up forward each, then ``--repeats`` timed
batch-1 fp32 forwards on a ``--size``² LR input, and reports the median wall time and the
CPU time per forward (``cpu ms``, all threads: with 2 threads, CPU time above 1 thread's is
time spent spinning, not working; ``cpu/wall`` below 1 with 1 thread is the share of a core
the process got from the machine). Configurations:

- ``threads``: 1 or 2 (``OMP_NUM_THREADS``);
- ``wait``: libgomp's default wait policy (threads spin for a while at the end of each
  parallel region before sleeping) or ``OMP_WAIT_POLICY=PASSIVE`` (they sleep at once);
- ``load``: ``idle`` starts nothing beside the measurement (on a shared machine other
  processes may still run: the header shows the load average), ``loaded`` first starts
  ``--busy`` processes that spin in a Python loop, one core each, and stops them after.

Every round runs every configuration once, in turn, so that a change in the machine's load
touches them all alike; the table shows the median over ``--rounds`` rounds and each
configuration's latency against 1 thread with the same wait policy and load.

Example: ``python benchmarks/bench_threads.py --rounds 3``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import time

import pandas as pd

NETWORKS = {  # name: (architecture, arguments), all ×4
    "EDSR 8x32": ("edsr", {"scale": 4, "n_resblocks": 8, "n_feats": 32}),
    "DIPNet": ("rlfn", "DIPNET_ARGS"),
    "VDSR 13x20": ("vdsr", {"scale": 4, "width": 13, "depth": 20}),
}
BUSY = "while True:\n    pass\n"


def child(size: int, repeats: int) -> dict:
    """Time every network in this process (its threads come from the environment)."""
    import torch

    from litesr.models import build
    from litesr.models.rlfn import DIPNET_ARGS

    torch.manual_seed(0)
    x = torch.rand(1, 3, size, size)
    out = {"torch_threads": torch.get_num_threads()}
    for name, (arch, args) in NETWORKS.items():
        net = build(arch, **(DIPNET_ARGS | {"scale": 4} if args == "DIPNET_ARGS" else args))
        with torch.inference_mode():
            net(x)
            wall, cpu = [], []
            for _ in range(repeats):
                w0, c0 = time.perf_counter(), time.process_time()
                net(x)
                wall.append(time.perf_counter() - w0)
                cpu.append(time.process_time() - c0)
        out[name] = {"wall": statistics.median(wall), "cpu": statistics.median(cpu)}
    return out


def measure(threads: int, wait: str, busy: int, size: int, repeats: int) -> dict:
    """One configuration in a fresh process, with ``busy`` spinning processes beside it."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)  # what Snakemake's `threads: N` sets for a shell rule
    if wait == "passive":
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    spinners = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(busy)]
    try:
        cmd = [sys.executable, __file__, "--child", "--size", str(size)]
        done = subprocess.run(
            [*cmd, "--repeats", str(repeats)], env=env, capture_output=True, text=True
        )
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    if done.returncode:
        raise RuntimeError(f"measurement failed:\n{done.stderr}")
    found = json.loads(done.stdout.strip().splitlines()[-1])
    if found.pop("torch_threads") != threads:
        raise RuntimeError(f"OMP_NUM_THREADS={threads} did not set torch's thread count")
    return found


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=128, help="LR side of the input")
    p.add_argument("--repeats", type=int, default=5, help="timed forwards per network")
    p.add_argument("--rounds", type=int, default=3, help="times each configuration runs")
    p.add_argument("--busy", type=int, default=1, help="spinning processes when loaded")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        print(json.dumps(child(a.size, a.repeats)))
        return

    configs = list(itertools.product(("idle", "loaded"), ("default", "passive"), (1, 2)))
    rows = []
    loads = []
    for round_ in range(a.rounds):
        for load, wait, threads in configs:
            loads.append(os.getloadavg()[0])
            found = measure(threads, wait, a.busy if load == "loaded" else 0, a.size, a.repeats)
            for name, t in found.items():
                rows.append({"network": name, "load": load, "wait": wait, "threads": threads, **t})
            print(round_, load, wait, threads, found, file=sys.stderr, flush=True)
    table = (
        pd.DataFrame(rows)
        .groupby(["network", "load", "wait", "threads"], sort=False)[["wall", "cpu"]]
        .median()
        .reset_index()
    )
    table["ms"] = table["wall"] * 1000
    table["cpu ms"] = table["cpu"] * 1000
    table["cpu/wall"] = table["cpu"] / table["wall"]
    one = table[table.threads == 1].set_index(["network", "load", "wait"])["ms"]
    table["vs 1 thread"] = [
        ms / one[(n, load, w)]
        for n, load, w, ms in zip(table.network, table.load, table.wait, table.ms, strict=True)
    ]
    print(
        f"{os.cpu_count()} CPUs; LR {a.size}×{a.size}, batch 1, fp32, ×4; medians of "
        f"{a.repeats} forwards, then of {a.rounds} interleaved rounds; loaded = {a.busy} "
        f"spinning process(es) beside it; 1-min load average during the runs "
        f"{min(loads):.1f}–{max(loads):.1f}\n"
    )
    shown = table[["network", "load", "wait", "threads", "ms", "vs 1 thread", "cpu ms", "cpu/wall"]]
    print(shown.to_markdown(index=False, floatfmt=".2f"))


if __name__ == "__main__":
    main()
