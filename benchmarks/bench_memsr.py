"""MemSR memory benchmark: peak CPU inference memory against output size, like-for-like tails.

Networks (random weights: memory does not depend on them), per scale, all with the same tail,
EDSR's upsampler at the teacher's width F (per factor 2: conv F→4F and a pixel shuffle; then
conv F→3 at the output size):

- ``teacher / residual student EDSR BxF``: the EDSR teacher as PyTorch runs it (every
  convolution whole, ``nn.PixelShuffle``, the skips). MemSR's residual baseline of the
  authors' student is an EDSR of the teacher's depth and the student's width, which is the
  teacher's: the same architecture, so one row serves both;
- ``teacher / residual student EDSR BxF, channels-last``: the same, its input made
  channels-last inside the forward (every map after it follows), as the plain student runs:
  oneDNN then makes no reordered copies of whole maps;
- ``plain student (MemSR's)``: the student MemSR builds of that teacher (``init.authors_init``
  on the exact plain form from ``convert``): one layer per teacher body feature at the
  teacher's width (head, two per block, body end), the teacher's activations, a constant
  channel, the teacher's upsampler and tail copied. It runs as ``models/plain.py`` runs it
  at inference: channels-last, a shuffling layer a band of input rows at a time, so its
  pre-shuffle map is never whole;
- ``plain student, shuffling layers whole``: the same network with its shuffling layers run
  whole (the pre-shuffle map and its shuffled copy both alive, as EDSR's upsampler and the
  authors' student run). The channels-last teacher against this row is the skips (the
  memory layout and the tail's execution alike), this row against the previous one the
  banded tail.

At ×2 and ×4 for outputs from 240p to 4K, and once at the authors' protocol (×2, a
960×540 LR input, fp32) for the authors' network size (``--protocol-teacher``, EDSR 16×64 by
default, and its student). For each: the peak RSS of one forward in a fresh process less
its baseline after loading, warm-up and making the input (``cost.cpu_peak_memory_bytes``,
``litesr.measure.memprobe``); the median of ``--repeats`` fresh processes where the forward
is small (``--repeat-gmacs``: allocator noise of a few MiB matters there), one above; and
the floor (``memsr.memory.floor_bytes``): the largest input + output of one layer, fp32, the two
activation maps any layer-by-layer execution holds at once. Sizes above ``--max-gmacs`` are
skipped. The default run takes about 10 minutes on one thread of a 2-core CPU.

Example: ``python benchmarks/bench_memsr.py --out benchmarks/measured/memsr_memory_cpu.tsv``;
the TSV feeds the ``memsr_memory`` figure (config key ``methods.memsr.memory``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import torch
from torch import nn

import litesr
from litesr.measure import cost, memprobe
from litesr.methods.memsr.memory import PROBE_HW, authors_student, floor_bytes
from litesr.models import arch_of, build
from litesr.models.store import save_model
from litesr.tsv import write_tsv

OUTPUTS = {"240p": (240, 320), "480p": (480, 640), "720p": (720, 1280), "1080p": (1080, 1920),
           "4K": (2160, 3840)}  # fmt: skip
PROTOCOL = {"scale": 2, "lr_hw": (540, 960), "output": "authors: 960x540 LR"}


ROLES = ("teacher", "teacher-channels-last", "plain-whole", "plain")


def networks(scale: int, blocks: int, feats: int) -> dict[str, tuple[str, nn.Module]]:
    """The teacher (= the residual student) as PyTorch runs it and channels-last, and the
    plain student MemSR builds of it with its shuffling layers whole and banded, by name:
    (role, model); the roles are ``ROLES``."""
    torch.manual_seed(0)
    teacher = build("edsr", scale=scale, n_resblocks=blocks, n_feats=feats).eval()
    student = authors_student(teacher)
    depth = len(student.convs) - (scale.bit_length() - 1) - 1  # without the copied tail
    edsr, plain = f"EDSR {blocks}x{feats}", f"plain student {depth}x{feats}"
    return {
        f"teacher / residual student {edsr}": ("teacher", teacher),
        f"teacher / residual student {edsr}, channels-last": ("teacher-channels-last", teacher),
        f"{plain}, shuffling layers whole": ("plain-whole", student),
        f"{plain} (MemSR's)": ("plain", student),
    }


def probe(path: Path, lr_hw: tuple[int, int], role: str, threads: int) -> int:
    """Inference bytes of one forward in a fresh process: ``cost.cpu_peak_memory_bytes``, or
    for ``plain-whole`` and ``teacher-channels-last`` this script's ``--probe`` (see
    ``probe_variant``)."""
    if role in ("teacher", "plain"):
        return cost.cpu_peak_memory_bytes(path, lr_hw, threads=threads)["inference_bytes"]
    cmd = [sys.executable, __file__, "--probe", role, str(path), *map(str, lr_hw), str(threads)]
    paths = [str(Path(litesr.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, paths))}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    rss = json.loads(proc.stdout.strip().splitlines()[-1])
    return rss["rss_peak_bytes"] - rss["rss_baseline_bytes"]


def probe_variant(role: str, path: str, height: str, width: str, threads: str) -> None:
    """``memprobe.probe`` of a model changed after loading: ``plain-whole`` puts a no-op
    forward hook on every convolution, so that ``PlainSR`` runs its shuffling layers whole
    (an observed convolution does: the pre-shuffle map and its shuffled copy both alive, as
    EDSR's upsampler and the authors' student run them); ``teacher-channels-last`` makes the
    input channels-last inside the forward (every map after it follows: no reordered copies
    of whole maps in oneDNN, as the plain student runs)."""
    original = memprobe.load_model

    def load(*args: object, **kwargs: object) -> tuple[nn.Module, dict]:
        model, meta = original(*args, **kwargs)
        if role == "plain-whole":
            for module in model.modules():
                if isinstance(module, nn.Conv2d):
                    module.register_forward_hook(lambda *_: None)
        elif role == "teacher-channels-last":
            model.register_forward_pre_hook(
                lambda _, args: (args[0].contiguous(memory_format=torch.channels_last),)
            )
        else:
            raise ValueError(f"--probe {role}: use plain-whole or teacher-channels-last")
        return model, meta

    memprobe.load_model = load
    print(json.dumps(memprobe.probe(path, (int(height), int(width)), int(threads))))


def gmacs(model: nn.Module, lr_hw: tuple[int, int]) -> float:
    """Multiply-accumulates of one forward, in billions (scaled from ``PROBE_HW``)."""
    macs = cost.count_macs(model, PROBE_HW)
    return macs * lr_hw[0] * lr_hw[1] / (PROBE_HW[0] * PROBE_HW[1]) / 1e9


def measure(
    path: Path, model: nn.Module, role: str, lr_hw: tuple[int, int], args: argparse.Namespace
) -> dict:
    """Peak (median of the fresh processes), its max, the floor and their ratio; NaN above
    ``--max-gmacs``."""
    work = gmacs(model, lr_hw)
    row = {"lr_hw": f"{lr_hw[0]}x{lr_hw[1]}", "gmacs": round(work, 2)}
    if work > args.max_gmacs:
        return {**row, "runs": 0, "peak_MiB": float("nan")}
    runs = args.repeats if work <= args.repeat_gmacs else 1
    peaks = [probe(path, lr_hw, role, args.threads) / cost.MIB for _ in range(runs)]
    floor = floor_bytes(model, lr_hw) / cost.MIB
    peak = statistics.median(peaks)
    row |= {"runs": runs, "peak_MiB": round(peak, 1), "peak_max_MiB": round(max(peaks), 1)}
    row |= {"floor_MiB": round(floor, 1), "ratio": round(peak / floor, 3)}
    if args.latency:
        row["latency_ms"] = cost.cpu_latency_ms(
            model, lr_hw, threads=args.threads, warmup=0, repeats=1
        )
    return row


def main(argv: list[str] | None = None) -> pd.DataFrame | None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--probe"]:
        return probe_variant(*argv[1:])
    if argv[:1] == ["--probe-whole"]:  # the earlier spelling
        return probe_variant("plain-whole", *argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--teacher", type=int, nargs=2, default=[8, 32], metavar=("BLOCKS", "F"))
    parser.add_argument(
        "--protocol-teacher", type=int, nargs=2, default=[16, 64], metavar=("BLOCKS", "F"),
        help="the authors' protocol row's teacher (0 0: none)",
    )  # fmt: skip
    parser.add_argument("--outputs", nargs="+", default=list(OUTPUTS), choices=list(OUTPUTS))
    parser.add_argument("--roles", nargs="+", default=list(ROLES), choices=ROLES)
    parser.add_argument("--max-gmacs", type=float, default=1000.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--repeat-gmacs", type=float, default=30.0)
    parser.add_argument("--latency", action="store_true", help="also one timed forward")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/memsr_memory.tsv"))
    args = parser.parse_args(argv)
    groups = [
        (scale, args.teacher, [(label, OUTPUTS[label]) for label in args.outputs])
        for scale in args.scales
    ]
    if min(args.protocol_teacher) > 0:
        groups.append((PROTOCOL["scale"], args.protocol_teacher, [(PROTOCOL["output"], None)]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    machine = {"cpu": cost.cpu_name(), "threads": args.threads}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for scale, (blocks, feats), outputs in groups:
            for name, (role, model) in networks(scale, blocks, feats).items():
                if role not in args.roles:
                    continue
                arch, arch_args = arch_of(model)
                path = Path(tmp) / f"{arch}{len(rows)}.safetensors"
                save_model(model, path, arch=arch, args=arch_args)
                for label, out_hw in outputs:
                    lr_hw = PROTOCOL["lr_hw"] if out_hw is None else cost.lr_size_for_output(
                        out_hw, scale=scale)  # fmt: skip
                    row = {"network": name, "role": role,
                           "tail": f"EDSR upsampler x{scale}, F={feats}", "scale": scale,
                           "output": label, "protocol": "sweep" if out_hw else "authors",
                           "out_mpix": round(lr_hw[0] * lr_hw[1] * scale**2 / 1e6, 3)}  # fmt: skip
                    rows.append(row | measure(path, model, role, lr_hw, args) | machine)
                    print(pd.DataFrame(rows[-1:]).to_string(index=False), flush=True)
                    write_tsv(pd.DataFrame(rows), args.out)  # so far: a long run may stop
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(table.drop(columns=["tail", "lr_hw", "cpu"]).to_string(index=False))
    return table


if __name__ == "__main__":
    main()
