"""DIPNet beside the field's peers on one CPU: latency and Set5 ×4 PSNR of the released networks.

For the NTIRE 2024 efficient-SR winner SPAN (28 channels, deploy form), that challenge's RLFN
baseline and the DIPNet authors' deployed network, each imported from its release
(``--reference``, :func:`litesr.models.releases.import_weights`), and for any model file given
with ``--model NAME=FILE`` (e.g. a DIPNet-pipeline student of ``results/models/``):

- parameters and GMACs at the latency input;
- batch-1 fp32 CPU latency (wall clock, as ``litesr.measure.cost.cpu_latency_ms``, with
  ``--threads`` torch threads) on the LR of a 1280×720 output (180×320): ``--rounds`` rounds,
  each timing every network in turn (median of ``--repeats`` forwards after three warm-ups), so
  that load from other processes falls on all of them alike; the median of the rounds and their
  minimum. With one thread, also the forward's own CPU time (``time.thread_time``), which other
  processes on a busy machine inflate less (the load average is printed with the table);
- Set5 ×4 PSNR-Y / SSIM-Y with the workflow's evaluation (``litesr.evaluate.run.evaluate_set``:
  MATLAB-made LR, SR rounded to uint8, border = scale);
- the latency ratio to SPAN and the PSNR difference from it, with the goal's verdict: is any
  network other than the peers (the DIPNet release or a given model) faster than SPAN at no
  lower Set5 PSNR?

Example: ``python benchmarks/bench_peers.py`` (about two minutes on one thread).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from litesr.evaluate.run import evaluate_set
from litesr.measure.cost import (
    count_macs,
    count_params,
    cpu_name,
    lr_size_for_output,
)
from litesr.models.releases import import_weights
from litesr.models.store import load_model

SCALE = 4
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
PEERS = {
    "SPAN (NTIRE 2024 winner)": "span_ch28_ntire2024_x4",
    "RLFN (NTIRE 2024 baseline)": "rlfn_ntire2024_x4",
}
RELEASES = {**PEERS, "DIPNet (authors' release)": "dipnet_x4"}
REFERENCE = "SPAN (NTIRE 2024 winner)"


def model_files(reference: Path, extra: list[str], folder: Path) -> dict[str, Path]:
    """The releases imported into ``folder``, then the given ``NAME=FILE`` models."""
    files = {
        name: import_weights(release, reference, SCALE, folder / f"{release}.safetensors")
        for name, release in RELEASES.items()
    }
    for item in extra:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"--model takes NAME=FILE, got {item!r}")
        files[name] = Path(path)
    return files


def forward_ms(
    net: torch.nn.Module, hw: tuple[int, int], threads: int, repeats: int
) -> tuple[float, float]:
    """Median wall-clock and calling-thread CPU time (ms) of a batch-1 forward, after three
    warm-ups, with ``threads`` torch threads."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    x = torch.rand(1, 3, *hw)
    wall, cpu = [], []
    try:
        with torch.inference_mode():
            for i in range(3 + repeats):
                start, start_cpu = time.perf_counter(), time.thread_time()
                net(x)
                if i >= 3:
                    wall.append((time.perf_counter() - start) * 1e3)
                    cpu.append((time.thread_time() - start_cpu) * 1e3)
    finally:
        torch.set_num_threads(previous)
    return statistics.median(wall), statistics.median(cpu)


def latencies(
    nets: dict[str, torch.nn.Module], hw: tuple[int, int], threads: int, rounds: int, repeats: int
) -> dict[str, list[tuple[float, float]]]:
    """Per network, :func:`forward_ms` of each round; every round times every network."""
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in nets}
    for _ in range(rounds):
        for name, net in nets.items():
            times[name].append(forward_ms(net, hw, threads, repeats))
    return times


def table(files: dict[str, Path], set5: Path, a: argparse.Namespace, folder: Path) -> pd.DataFrame:
    """One row per network: size, latency, Set5 accuracy, and the comparison with SPAN."""
    hw = lr_size_for_output((720, 1280), scale=SCALE)
    nets = {name: load_model(path)[0].eval() for name, path in files.items()}
    times = latencies(nets, hw, a.threads, a.rounds, a.repeats)
    rows = []
    for name, path in files.items():
        scores = evaluate_set(
            str(path),
            set5,
            SCALE,
            folder / f"{name}.tsv",
            model_name=name,
            set_name="Set5",
            progress=False,
        )
        rows.append(
            {
                "network": name,
                "params": count_params(nets[name]),
                "GMACs": round(count_macs(nets[name], hw) / 1e9, 2),
                "CPU ms": round(statistics.median(t for t, _ in times[name]), 1),
                "CPU ms (min)": round(min(t for t, _ in times[name]), 1),
                "thread CPU ms": round(statistics.median(c for _, c in times[name]), 1),
                "Set5 PSNR-Y": round(float(scores.psnr_y.mean()), 3),
                "Set5 SSIM-Y": round(float(scores.ssim_y.mean()), 4),
            }
        )
    out = pd.DataFrame(rows).set_index("network")
    span = out.loc[REFERENCE]
    out["ms / SPAN"] = (out["CPU ms"] / span["CPU ms"]).round(2)
    out["thread CPU / SPAN"] = (out["thread CPU ms"] / span["thread CPU ms"]).round(2)
    out["dB vs SPAN"] = (out["Set5 PSNR-Y"] - span["Set5 PSNR-Y"]).round(3)
    return out


def verdict(out: pd.DataFrame) -> str:
    """The goal's answer: the networks other than the peers faster than SPAN at no lower PSNR."""
    candidates = out.drop(index=list(PEERS))
    met = candidates[(candidates["ms / SPAN"] < 1) & (candidates["dB vs SPAN"] >= 0)]
    if not met.empty:
        return "goal met by: " + ", ".join(
            f"{n} ({r['ms / SPAN']:.2f}× SPAN's time, thread CPU {r['thread CPU / SPAN']:.2f}×, "
            f"{r['dB vs SPAN']:+.3f} dB)"
            for n, r in met.iterrows()
        )
    return (
        "goal not met: no network here is faster than SPAN at no lower Set5 PSNR ("
        + "; ".join(
            f"{n}: {r['ms / SPAN']:.2f}× SPAN's time, thread CPU "
            f"{r['thread CPU / SPAN']:.2f}×, {r['dB vs SPAN']:+.3f} dB"
            for n, r in candidates.iterrows()
        )
        + ")"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, default=SHARED / "reference")
    parser.add_argument("--set5", type=Path, default=SHARED / "benchmark" / "Set5" / "x4")
    parser.add_argument("--model", action="append", default=[], metavar="NAME=FILE")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    a = parser.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        out = table(model_files(a.reference, a.model, folder), a.set5, a, folder)
    hw = lr_size_for_output((720, 1280), scale=SCALE)
    print(
        f"CPU: {cpu_name()}, {os.cpu_count()} cores; 1-min load average {load:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end"
    )
    print(
        f"×{SCALE}, LR {hw[0]}x{hw[1]}, batch 1, fp32, {a.threads} thread(s); CPU ms: median of "
        f"{a.rounds} rounds (each the median of {a.repeats} forwards); Set5 with MATLAB-made LR"
    )
    print(out.to_string())
    print(verdict(out))


if __name__ == "__main__":
    main()
