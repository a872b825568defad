"""A resumable chain of training stages, each ending in a model file.

A method lists its stages (AIL's rounds; DIPNet's distil → merge → prune → progressive;
DRC's search → prune → fine-tune). Each stage gets the previous stage's model and returns
its own; the runner saves it to the stage's file with a key chaining every earlier stage's
key, the run's fingerprint and the stage's own. A re-run reloads each finished stage whose
key matches and continues with the first one that is missing; inside a stage, ``fit``
resumes from the stage's checkpoint. On CPU, a run killed anywhere ends bit-identical to
an uninterrupted one. Under ``torchrun`` every rank runs the stages; rank 0 alone writes
their files, and the others wait for it after each stage.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from litesr.models import arch_of
from litesr.models.store import load_model, read_meta, save_model
from litesr.train import dist

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StageFiles:
    """Where a stage keeps its result, its per-step log and its training checkpoint."""

    model: Path
    log: Path
    checkpoint: Path


@dataclass(frozen=True)
class Stage:
    """One step of a method: ``run(model, files) -> model``; ``key`` names its settings."""

    name: str
    model_file: Path
    run: Callable[[nn.Module, StageFiles], nn.Module]
    key: str = ""

    @property
    def files(self) -> StageFiles:
        path = Path(self.model_file)
        return StageFiles(path, path.with_suffix(".tsv"), path.with_suffix(".ckpt"))


def _chain(previous: str, stage: Stage) -> str:
    return hashlib.sha256(f"{previous}|{stage.name}|{stage.key}".encode()).hexdigest()[:16]


def _finished(stage: Stage, key: str) -> bool:
    files = stage.files
    if not (files.model.exists() and files.log.exists()):
        return False
    try:
        return read_meta(files.model).get("stage_key") == key
    except ValueError:
        return False


def run_stages(model: nn.Module, stages: list[Stage], *, fingerprint: str) -> nn.Module:
    """Run ``stages`` in order from ``model``, skipping those already finished."""
    key = fingerprint
    for index, stage in enumerate(stages):
        key = _chain(key, stage)
        files = stage.files
        if _finished(stage, key):
            if dist.is_main():  # left by a crash right after the save
                files.checkpoint.unlink(missing_ok=True)
            model = load_model(files.model)[0]
            log.info("stage %d (%s) already done: %s", index, stage.name, files.model)
            continue
        log.info("stage %d/%d: %s", index + 1, len(stages), stage.name)
        model = stage.run(model, files)
        arch, args = arch_of(model.cpu())
        if dist.is_main():
            save_model(
                model,
                files.model,
                arch=arch,
                args=args,
                meta={"stage": stage.name, "stage_key": key},
            )
            files.checkpoint.unlink(missing_ok=True)
        dist.barrier()
    return model
