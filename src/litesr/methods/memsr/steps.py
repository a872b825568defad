"""MemSR's steps: ``convert`` (EDSR → exact plain teacher) and ``student`` (a plain student,
MemSR-initialised and distilled, or randomly initialised and trained on L1 alone)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from litesr.atomic import output_lock
from litesr.digest import file_sha256
from litesr.methods.memsr.convert import convert
from litesr.methods.memsr.init import memsr_init
from litesr.methods.memsr.task import MemSRTask
from litesr.models import build
from litesr.models.store import load_model, save_model
from litesr.train.loop import fit
from litesr.train.objectives import PixelTask
from litesr.train.run import sampler_for
from litesr.train.spec import TrainSpec
from litesr.tsv import write_tsv

logger = logging.getLogger(__name__)
INITS = ("memsr", "random")
CALIBRATION = {"patches": 16, "lr_patch": 32, "seed": 1234}


def calibration_patches(data: Path, scale: int, *, patches: int, lr_patch: int, seed: int):
    """A fixed batch of LR training patches (no augmentation) for offsets and the SVD."""
    spec = TrainSpec(steps=1, lr_patch=lr_patch, augment=False)
    lr, _ = sampler_for(data, scale, spec).sample(patches, torch.Generator().manual_seed(seed))
    return lr


def convert_teacher(
    *,
    teacher: Path,
    data: Path,
    scale: int,
    out: Path,
    log: Path,
    stages: Path,
    offset: float | str = "auto",
    device: str = "cpu",
    progress: bool = True,
) -> Path:
    """Convert the EDSR ``teacher`` to its exact plain form; log per layer its offset and the
    float32 error against the teacher on the calibration patches."""
    model, meta = load_model(teacher)
    if int(model.scale) != scale:
        raise ValueError(f"{teacher}: a ×{model.scale} model where ×{scale} was asked")
    x = calibration_patches(data, scale, **CALIBRATION)
    plain, offsets = convert(model, offset=offset, calibration=x)
    with torch.no_grad():
        ref, got = model(x), plain(x)
    rel = float((got - ref).norm() / ref.norm())
    max_abs = float((got - ref).abs().max())
    logger.info(
        "plain teacher: %d layers, rel. error %.2e, max |Δ| %.2e", len(offsets), rel, max_abs
    )
    with output_lock(out):
        table = pd.DataFrame(
            {
                "layer": range(len(offsets)),
                "width": [c.out_channels for c in plain.convs],
                "factor": plain.factors,
                "offset": offsets,
                "rel_error_fp32": rel,
                "max_abs_error_fp32": max_abs,
            }
        )
        write_tsv(table, log, float_format=None)
        save_model(
            plain,
            out,
            arch="plain",
            args=plain.litesr_arch[1],
            meta={
                "method": "memsr",
                "variant": "plain-teacher",
                "size": meta["args"].get("n_feats", 64),
                "teacher": str(teacher),
                "offsets": offsets,
                "rel_error_fp32": rel,
            },
        )
    return Path(out)


def train_student(
    *,
    teacher: Path,
    data: Path,
    scale: int,
    init: str,
    rank: int | str,
    recipe: dict[str, Any],
    out: Path,
    log: Path,
    stages: Path,
    eps: float = 5e-2,
    distill: dict[str, float] | None = None,
    size: int | None = None,
    device: str = "cpu",
    progress: bool = True,
) -> Path:
    """Initialise a plain student from the plain ``teacher`` (``init="memsr"``: SVD and
    least squares, then init-aware distillation) or at random with the same widths
    (``init="random"``: L1 alone), and train it for ``recipe`` (equal budget)."""
    if init not in INITS:
        raise ValueError(f"memsr student init {init!r}: use one of {INITS}")
    distill = {"coe": 0.3, "alpha": 1e-5, **(distill or {})}
    spec = TrainSpec.from_dict(recipe)
    plain_teacher, meta = load_model(teacher)
    if meta["arch"] != "plain" or int(plain_teacher.scale) != scale:
        raise ValueError(f"{teacher}: MemSR needs a ×{scale} plain teacher, got {meta['arch']}")
    x = calibration_patches(data, scale, **CALIBRATION)
    student, bridges, ranks = memsr_init(plain_teacher, x, rank=rank, eps=eps)
    if init == "memsr":
        task = MemSRTask(student, bridges, plain_teacher, spec.steps, **distill)
    else:
        torch.manual_seed(spec.seed)
        student = build("plain", scale=scale, widths=student.litesr_arch[1]["widths"])
        task = PixelTask(student, "l1")
    stages = Path(stages)
    stages.mkdir(parents=True, exist_ok=True)
    checkpoint = stages / "train.ckpt"
    with output_lock(out):
        fit(
            task,
            sampler_for(data, scale, spec),
            spec,
            checkpoint=checkpoint,
            log_tsv=log,
            device=device,
            fingerprint=f"memsr|{init}|{rank}|{eps}|{distill}|{file_sha256(teacher)}",
            progress=progress,
        )
        arch, args = student.litesr_arch
        save_model(
            student.cpu(),
            out,
            arch=arch,
            args=args,
            meta={
                "method": "memsr",
                "variant": init,
                "size": size if size is not None else max(args["widths"][:-1]),
                "ranks": ranks["rank"],
                "svd_residual": ranks["residual"],
                "teacher": str(teacher),
                "distill": distill if init == "memsr" else None,
                "train": recipe,
            },
        )
        checkpoint.unlink(missing_ok=True)
    return Path(out)
