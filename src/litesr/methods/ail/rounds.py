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

import pandas as pd
from torch import nn

from litesr.atomic import output_lock
from litesr.data.sources import data_fingerprint
from litesr.device import resolve_device
from litesr.digest import file_sha256
from litesr.methods.ail.importance import AILTask, Importance
from litesr.methods.ail.patches import round_sampler
from litesr.models.store import load_model, save_model
from litesr.train.loop import fit
from litesr.train.spec import TrainSpec
from litesr.train.stages import Stage, StageFiles, run_stages
from litesr.tsv import write_tsv

logger = logging.getLogger(__name__)


def round_files(stages: Path, rounds: int) -> list[Path]:
    """The student's weights at the end of each round: ``<stages>/round{r}.safetensors``."""
    return [Path(stages) / f"round{r}.safetensors" for r in range(rounds)]


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
    dev = resolve_device(device)
    if variant == "ail" and teacher is None:
        raise ValueError("the 'ail' variant needs a teacher model file")
    cached = patches is not None and variant == "ail"
    teacher_model = load_model(teacher, device=dev)[0] if variant == "ail" and not cached else None

    def one_round(r: int):
        def run(model: nn.Module, files: StageFiles) -> nn.Module:
            snapshot = copy.deepcopy(model) if r > 0 else None
            task = AILTask(model, variant, r, imp, teacher_model, snapshot, cached_teacher=cached)
            logger.info("AIL %s round %d/%d (λ_r = %.2f)", variant, r, rounds, imp.round_lambda(r))
            fit(
                task,
                sampler,
                TrainSpec.from_dict({**recipe, "seed": spec.seed + r}),
                checkpoint=files.checkpoint,
                log_tsv=files.log,
                device=str(dev),
                fingerprint=f"{variant}{r}",
                progress=progress,
            )
            return model

        return run

    plan = [
        Stage(f"round{r}", path, one_round(r), key=f"{variant}|{r}")
        for r, path in enumerate(round_files(stages, rounds))
    ]
    fingerprint = (
        f"{spec.fingerprint()}|{imp}|{data_fingerprint(data)}|{file_sha256(init)}|"
        f"{teacher and file_sha256(teacher)}"
    )
    with output_lock(out):
        sampler = round_sampler(
            variant=variant,
            data=data,
            scale=scale,
            spec=spec,
            patches=patches,
            teacher=teacher,
            stages=stages,
            device=str(dev),
        )
        if patches is not None:
            fingerprint += f"|{sampler.key}"
        student = run_stages(student, plan, fingerprint=fingerprint)
        table = pd.concat(
            [pd.read_csv(s.files.log, sep="\t").assign(round=r) for r, s in enumerate(plan)],
            ignore_index=True,
        )
        table.insert(0, "global_step", range(1, len(table) + 1))
        write_tsv(table, log, float_format=None)
        save_model(
            student.cpu(),
            out,
            arch="vdsr",
            args=meta["args"],
            meta={
                "method": "ail",
                "variant": variant,
                "size": size if size is not None else meta["args"].get("width"),
                "rounds": rounds,
                "init": str(init),
                "teacher": str(teacher),
                "importance": imp.__dict__,
                "train": recipe,
                "patches": patches,
            },
        )
    return Path(out)
