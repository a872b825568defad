"""MemSR's steps on the shared step harness: ``convert`` (EDSR → exact plain teacher),
``init`` (a plain student right after its initialisation, MemSR or random, reported as it
is) and ``student`` (that student trained: MemSR with init-aware distillation, random on L1
alone)."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn

from litesr.methods.memsr import variant
from litesr.methods.memsr.convert import convert, edsr_acts
from litesr.methods.memsr.init import SHAPES, Initialised, authors_init, he_init, width_init
from litesr.methods.memsr.task import DistillWeight, MemSRTask, steps_per_epoch
from litesr.models.store import load_model
from litesr.train.objectives import PixelTask
from litesr.train.run import sampler_for
from litesr.train.spec import TrainSpec
from litesr.train.step import StepRun, input_key
from litesr.tsv import write_tsv

logger = logging.getLogger(__name__)
INITS = ("memsr", "random")
CALIBRATION = {"patches": 16, "lr_patch": 32, "seed": 1234}


def calibration_patches(
    data: Path, scale: int, *, patches: int, lr_patch: int, seed: int
) -> tuple[Tensor, Tensor]:
    """A fixed batch of LR/HR training patches (no augmentation) for offsets and the SVD."""
    spec = TrainSpec(steps=1, lr_patch=lr_patch, augment=False)
    return sampler_for(data, scale, spec).sample(patches, torch.Generator().manual_seed(seed))


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
    float32 error against the teacher on the calibration patches. The teacher's own
    activation per plain layer goes into the metadata (``acts``, for the authors' student)."""
    model, meta = load_model(teacher)
    if int(model.scale) != scale:
        raise ValueError(f"{teacher}: a ×{model.scale} model where ×{scale} was asked")
    x, _ = calibration_patches(data, scale, **CALIBRATION)
    plain, offsets = convert(model, offset=offset, calibration=x)
    with torch.no_grad():
        ref, got = model(x), plain(x)
    rel = float((got - ref).norm() / ref.norm())
    max_abs = float((got - ref).abs().max())
    logger.info(
        "plain teacher: %d layers, rel. error %.2e, max |Δ| %.2e", len(offsets), rel, max_abs
    )
    with StepRun("memsr", out=out, log=log, stages=stages, device=device) as run:
        table = pd.DataFrame(
            {
                "layer": range(len(offsets)),
                "width": [c.out_channels for c in plain.convs],
                "factor": plain.factors,
                "offset": offsets,
                "act": edsr_acts(model),
                "rel_error_fp32": rel,
                "max_abs_error_fp32": max_abs,
            }
        )
        write_tsv(table, log, float_format=None)
        return run.finish(
            plain,
            variant="plain-teacher",
            size=meta["args"].get("n_feats", 64),
            teacher=str(teacher),
            offsets=offsets,
            acts=edsr_acts(model),
            rel_error_fp32=rel,
        )


def initialise(
    plain_teacher: nn.Module,
    teacher_meta: dict[str, Any],
    calibration: Tensor,
    *,
    init: str,
    shape: str,
    rank: int | str | None,
    eps: float,
    solve: str,
    seed: int,
) -> Initialised:
    """The student of ``shape`` from the plain teacher (``init="memsr"``), or the same
    architecture He-initialised from ``seed`` without bridges (``init="random"``)."""
    if init not in INITS or shape not in SHAPES:
        raise ValueError(f"memsr student {init!r} / {shape!r}: use {INITS} and {SHAPES}")
    if shape == "authors":
        if "acts" not in teacher_meta:
            raise ValueError("the plain teacher has no `acts` metadata: convert the teacher again")
        made = authors_init(
            plain_teacher,
            calibration,
            teacher_meta["acts"],
            teacher_meta["offsets"],
            rank=rank,
            eps=eps,
            solve=solve,
        )
    else:
        made = width_init(plain_teacher, calibration, rank=64 if rank is None else rank, eps=eps)
    if init == "random":
        he_init(made.student, seed)
        made = Initialised(made.student, nn.ModuleList(), [], False, made.report)
    return made


def _psnr(a: Tensor, b: Tensor) -> float:
    return float(-10 * torch.log10(((a.clamp(0, 1) - b) ** 2).mean()))


def init_student(
    *,
    teacher: Path,
    data: Path,
    scale: int,
    init: str,
    shape: str = "authors",
    rank: int | str | None = None,
    eps: float = 5e-2,
    solve: str = "weights",
    seed: int = 0,
    size: int | None = None,
    out: Path,
    log: Path,
    stages: Path,
    device: str = "cpu",
    progress: bool = True,
) -> Path:
    """Save the student right after its initialisation (no training): the ``*-init`` rows of
    the table. The log has per bridge its rank, SVD residual and width, and the student's
    PSNR on the calibration patches against HR and against the teacher."""
    plain_teacher, meta = load_model(teacher)
    lr, hr = calibration_patches(data, scale, **CALIBRATION)
    made = initialise(
        plain_teacher, meta, lr, init=init, shape=shape, rank=rank, eps=eps, solve=solve, seed=seed
    )
    with torch.no_grad():
        sr, ref = made.student(lr), plain_teacher(lr)
    psnr = {"psnr_hr": _psnr(sr, hr), "psnr_teacher": _psnr(sr, ref.clamp(0, 1))}
    logger.info("%s %s student at initialisation: %s", shape, init, psnr)
    with StepRun("memsr", out=out, log=log, stages=stages, device=device) as run:
        rows = pd.DataFrame(made.report) if made.report["rank"] else pd.DataFrame({"rank": []})
        write_tsv(rows.assign(**psnr), log, float_format=None)
        return run.finish(
            made.student,
            variant=variant(shape, f"{init}-init"),
            shape=shape,
            size=size if size is not None else max(made.report["rank"]),
            ranks=made.report["rank"],
            svd_residual=made.report["residual"],
            teacher=str(teacher),
            init_calibration=psnr,
        )


def train_student(
    *,
    teacher: Path,
    start: Path,
    data: Path,
    scale: int,
    init: str,
    recipe: dict[str, Any],
    shape: str = "authors",
    rank: int | str | None = None,
    eps: float = 5e-2,
    solve: str = "weights",
    distill: dict[str, Any] | None = None,
    size: int | None = None,
    out: Path,
    log: Path,
    stages: Path,
    device: str = "cpu",
    progress: bool = True,
) -> Path:
    """Train the initialised student ``start`` for ``recipe`` (equal budget): with
    init-aware distillation from the plain ``teacher`` (``init="memsr"``; the bridges are
    made again from the same calibration patches, and must fit ``start``) or on L1 alone
    (``init="random"``)."""
    spec = TrainSpec.from_dict(recipe)
    plain_teacher, meta = load_model(teacher)
    student, start_meta = load_model(start)
    if start_meta.get("variant") != variant(shape, f"{init}-init"):
        raise ValueError(f"{start}: not a {init} student at initialisation")
    settings = {"coe": 0.3, "alpha": 1e-5, "units": 255.0, "schedule": "epoch", "repeat": 20}
    settings |= distill or {}
    sampler = sampler_for(Path(data), scale, spec)
    epoch = steps_per_epoch(len(sampler.pairs), spec.batch_size, settings.pop("repeat"))
    weight = DistillWeight(total=spec.steps, epoch=epoch, **settings)
    if init == "memsr":
        lr, _ = calibration_patches(data, scale, **CALIBRATION)
        made = initialise(
            plain_teacher, meta, lr, init=init, shape=shape, rank=rank, eps=eps, solve=solve, seed=0
        )
        _check_same(made.student, student, start)
        made.student = student
        task = MemSRTask(made, plain_teacher, weight)
        logger.info(
            "distillation: c(0) = %.4g, %d epochs of %d steps", weight(0), weight.epochs, epoch
        )
    else:
        task = PixelTask(student, "l1")
    tag = json.dumps(
        [init, shape, rank, eps, solve, settings, epoch, input_key(teacher), input_key(start)]
    )
    with StepRun("memsr", out=out, log=log, stages=stages, device=device, progress=progress) as run:
        run.fit(task, spec, run.files, sampler=sampler, tag=tag)
        return run.finish(
            student,
            variant=variant(shape, init),
            shape=shape,
            size=size if size is not None else start_meta.get("size"),
            ranks=start_meta.get("ranks"),
            teacher=str(teacher),
            start=str(start),
            distill={**settings, "epoch_steps": epoch} if init == "memsr" else None,
            train=recipe,
        )


def _check_same(made: nn.Module, loaded: nn.Module, path: Path) -> None:
    """The student the bridges were made for is the one in ``path``."""
    a, b = made.state_dict(), loaded.state_dict()
    same = a.keys() == b.keys() and all(
        a[k].shape == b[k].shape
        and math.isclose(float((a[k].float() - b[k]).abs().max()), 0, abs_tol=1e-4)
        for k in a
    )
    if not same:
        raise ValueError(f"{path}: not the student this initialisation makes; make it again")
