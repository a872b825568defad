"""AIL's rounds as resumable stages on the shared loop: the ``ail.rounds`` step.

Every round restarts the learning-rate schedule (as in the authors' code) and trains the
student from the previous round's weights; round ``r`` snapshots the student as it was at
the round's start. Variants run the same rounds, steps and optimiser (equal budget), and
with ``patches`` the same fixed patch set (see ``litesr.methods.ail.patches``).
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

from torch import nn

from litesr.methods.ail.importance import AILTask, Importance
from litesr.methods.ail.patches import round_sampler
from litesr.models.store import load_model
from litesr.train.spec import TrainSpec
from litesr.train.stages import StageFiles
from litesr.train.step import StepRun

logger = logging.getLogger(__name__)


def round_name(r: int) -> str:
    """The stage of round ``r`` (from 0): the student's weights at its end are
    ``<stages>/round{r}.safetensors``."""
    return f"round{r}"


def round_files(stages: Path, rounds: int) -> list[Path]:
    """The student's weights at the end of each round."""
    return [Path(stages) / f"{round_name(r)}.safetensors" for r in range(rounds)]


def train_rounds(
    *,
    variant: str,
    init: Path,
    data: Path,
    scale: int,
    rounds: int,
    recipe: dict[str, Any],
    importance: dict[str, float],
    out: Path,
    log: Path,
    stages: Path,
    teacher: Path | None = None,
    patches: dict[str, Any] | None = None,
    size: int | None = None,
    device: str = "cpu",
    progress: bool = True,
) -> Path:
    """Run the rounds of one variant from the pre-trained student ``init``; save every round
    in ``stages`` and the last one as ``out`` with the per-step log of all rounds.

    ``patches`` (``count``, ``seed``) trains on a fixed set of patches with the teacher's
    outputs computed once; without it every batch is drawn afresh and the teacher run on it.
    """
    spec = TrainSpec.from_dict(recipe)
    imp = Importance.from_dict(importance)
    student, meta = load_model(init)
    if meta["arch"] != "vdsr" or int(student.scale) != scale:
        raise ValueError(
            f"{init}: AIL needs a ×{scale} VDSR student, got {meta['arch']} ×{student.scale}"
        )
    if variant == "ail" and teacher is None:
        raise ValueError("the 'ail' variant needs a teacher model file")
    cached = patches is not None and variant == "ail"
    with StepRun("ail", out=out, log=log, stages=stages, device=device, progress=progress) as run:
        live_teacher = variant == "ail" and not cached
        teacher_model = load_model(teacher, device=run.dev)[0] if live_teacher else None
        sampler = round_sampler(
            variant=variant,
            data=data,
            scale=scale,
            spec=spec,
            patches=patches,
            teacher=teacher,
            stages=stages,
            device=str(run.dev),
        )

        def one_round(r: int):
            def train(model: nn.Module, files: StageFiles) -> nn.Module:
                snapshot = copy.deepcopy(model) if r > 0 else None
                task = AILTask(
                    model, variant, r, imp, teacher_model, snapshot, cached_teacher=cached
                )
                logger.info(
                    "AIL %s round %d/%d (λ_r = %.2f)", variant, r, rounds, imp.round_lambda(r)
                )
                run.fit(
                    task,
                    {**recipe, "seed": spec.seed + r},
                    files,
                    sampler=sampler,
                    tag=f"{variant}{r}",
                )
                return model

            return train

        for r in range(rounds):
            run.stage(round_name(r), one_round(r), key=f"{variant}|{r}")
        key = [spec.fingerprint(), str(imp), sampler.key if patches is not None else None]
        student = run.stages(student, inputs=[data, init, teacher], key=key)
        run.merged_log("round", [{"round": r} for r in range(rounds)])
        return run.finish(
            student,
            variant=variant,
            size=size if size is not None else meta["args"].get("width"),
            rounds=rounds,
            init=str(init),
            teacher=str(teacher),
            importance=imp.__dict__,
            train=recipe,
            patches=patches,
        )
