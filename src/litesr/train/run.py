"""Train one model of the registry on one prepared training set: the `litesr train` step."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from litesr.atomic import output_lock
from litesr.data.sources import data_fingerprint
from litesr.models import build
from litesr.models.store import save_model
from litesr.train import dist
from litesr.train.loop import fit
from litesr.train.objectives import PixelTask, Task
from litesr.train.patches import PatchSampler, load_pairs
from litesr.train.spec import TrainSpec


def sampler_for(data_dir: Path, scale: int, spec: TrainSpec) -> PatchSampler:
    """Random patches of the prepared set ``data_dir`` at the recipe's size, keyed by the
    set's content (so a checkpoint made on other images is never resumed)."""
    pairs = load_pairs(data_dir, scale, spec.lr_patch)
    return PatchSampler(
        pairs, scale, spec.lr_patch, augment=spec.augment, key=data_fingerprint(data_dir)
    )


def train_model(
    *,
    arch: str,
    args: dict[str, Any],
    recipe: dict[str, Any],
    data: Path,
    scale: int,
    out: Path,
    log: Path,
    meta: dict[str, Any] | None = None,
    make_task: Callable[[nn.Module], Task] | None = None,
    key: str = "",
    device: str = "cpu",
    progress: bool = True,
) -> Path:
    """Build ``arch(scale, **args)`` from the recipe's seed, train it, save it as safetensors
    with ``meta`` (method, variant, size...).

    By default the task is plain (the recipe's pixel loss); a method may wrap the fresh model
    in its own task with ``make_task`` (built right after the model, so the model's draws do
    not change) and must then name what the task adds in ``key``.

    The training checkpoint lives beside ``out`` (``<out>.ckpt``) until the model is saved,
    so re-running the same command after a kill resumes it. Under ``torchrun`` rank 0 alone
    locks ``out`` and writes it.
    """
    spec = TrainSpec.from_dict(recipe)
    out = Path(out)
    with output_lock(out) if dist.is_main() else contextlib.nullcontext():
        torch.manual_seed(spec.seed)
        model = build(arch, scale=scale, **args)
        task = make_task(model) if make_task else PixelTask(model, spec.loss, spec.channel)
        checkpoint = out.with_name(out.name + ".ckpt")
        fit(
            task,
            sampler_for(data, scale, spec),
            spec,
            checkpoint=checkpoint,
            log_tsv=log,
            device=device,
            fingerprint=f"{arch}{sorted(args.items())}{scale}{key}",
            progress=progress,
        )
        if dist.is_main():
            save_model(
                model.cpu(),
                out,
                arch=arch,
                args={"scale": scale, **args},
                meta={**(meta or {}), "train": recipe, "data": str(data)},
            )
            checkpoint.unlink(missing_ok=True)
    return out
