"""MemSR A/B: which change made the distilled plain student work — the loss units, the
student's shape or the recipe — and what budget adds.

One plain teacher (the exact plain form of a workflow's EDSR teacher) and its prepared
training set; each arm makes its MemSR-initialised student and trains it with init-aware
distillation for every budget, from the same start, then scores Set5/Set14 (PSNR-Y, the
workflow's evaluation) at step 0 and after each budget. Arms add one change at a time:

- ``A``: the recipe before the port followed the authors: litesr's narrow student (width 16),
  the distillation weight in [0, 1] units (c = 0.3), decayed per step, Adam one-cycle 1e-3;
- ``A+units``: the same with c in the authors' units (0.3 · 255) and their per-epoch decay;
- ``A+units+shape``: and the authors' student (one layer per teacher feature at its width,
  its activations, a constant channel, the teacher's upsampler);
- ``B``: and the authors' learning rate (one-cycle, max 2e-4): the CPU config's recipe.

An epoch is the run (``repeat`` = steps · batch / images), as the CPU config's one epoch.

Example (after the MemSR CPU config has made its plain teacher)::

    python benchmarks/bench_memsr_ab.py --workflow . --steps 500 1500 \\
        --out benchmarks/measured/memsr_ab_cpu.tsv
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from litesr.evaluate.run import evaluate_set
from litesr.methods.memsr.steps import init_student, train_student
from litesr.tsv import write_tsv

ARMS = {  # shape, rank, max lr, distillation
    "A": ("width", 16, 1e-3, {"units": 1, "schedule": "step"}),
    "A+units": ("width", 16, 1e-3, {"units": 255, "schedule": "epoch"}),
    "A+units+shape": ("authors", None, 1e-3, {"units": 255, "schedule": "epoch"}),
    "B": ("authors", None, 2e-4, {"units": 255, "schedule": "epoch"}),
}
RECIPE = {"batch_size": 16, "lr_patch": 24, "scheduler": "onecycle", "checkpoint_every": 250}


def score(model: Path, sets: dict[str, Path], scale: int, work: Path) -> dict[str, float]:
    """Mean PSNR-Y per set, by the workflow's evaluation."""
    return {
        name: round(
            float(
                evaluate_set(
                    str(model), folder, scale, work / f"{name}.tsv", model_name="ab",
                    set_name=name, progress=False,
                ).psnr_y.mean()
            ),
            3,
        )
        for name, folder in sets.items()
    }  # fmt: skip


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workflow", type=Path, default=Path("."), help="a MemSR run's root")
    parser.add_argument("--teacher", default="memsr-plain-teacher", help="its plain teacher")
    parser.add_argument("--train", default="SunHays80")
    parser.add_argument("--sets", nargs="+", default=["Set5", "Set14"])
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--steps", type=int, nargs="+", default=[500, 1500])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/memsr_ab.tsv"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    results = args.workflow / "results"
    teacher = results / "models" / args.teacher / f"x{args.scale}" / "model.safetensors"
    data = results / "data" / args.train / f"x{args.scale}"
    sets = {s: results / "data" / s / f"x{args.scale}" for s in args.sets}
    images = len(list((data / "HR").glob("*.png")))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for arm in args.arms:
            shape, rank, lr, distill = ARMS[arm]
            work = Path(tmp) / arm
            common = {"teacher": teacher, "data": data, "scale": args.scale, "init": "memsr",
                      "shape": shape, "rank": rank, "stages": work / "stages"}  # fmt: skip
            start = init_student(
                **common, seed=args.seed, out=work / "init.safetensors", log=work / "init.tsv",
                progress=False,
            )  # fmt: skip
            rows.append(
                {"arm": arm, "steps": 0, "minutes": 0.0, **score(start, sets, args.scale, work)}
            )
            print(json.dumps(rows[-1]), flush=True)
            for steps in args.steps:
                began = time.perf_counter()
                repeat = max(1, steps * RECIPE["batch_size"] // images)
                model = train_student(
                    **common, start=start,
                    recipe={**RECIPE, "steps": steps, "lr": lr, "seed": args.seed},
                    distill={**distill, "repeat": repeat},
                    out=work / f"s{steps}.safetensors", log=work / f"s{steps}.tsv",
                    progress=False,
                )  # fmt: skip
                minutes = round((time.perf_counter() - began) / 60, 1)
                rows.append({"arm": arm, "steps": steps, "minutes": minutes,
                             **score(model, sets, args.scale, work)})  # fmt: skip
                print(json.dumps(rows[-1]), flush=True)
    table = pd.DataFrame(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_tsv(table, args.out)
    print(table.to_string(index=False))
    return table


if __name__ == "__main__":
    main()
