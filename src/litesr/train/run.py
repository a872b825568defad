"""Train one model of the registry on one prepared training set: the `litesr train` command."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from litesr.models import build
from litesr.models.store import save_model
from litesr.train.loop import Objective, fit
from litesr.train.patches import PatchSampler, load_pairs
from litesr.train.spec import TrainSpec


def train_model(
    arch: str,
    args: dict[str, Any],
    recipe: dict[str, Any],
    data_dir: Path,
    scale: int,
    out: Path,
    log_tsv: Path,
    *,
    device: str = "cpu",
    objective: Objective | None = None,
    progress: bool = True,
) -> Path:
    """Build ``arch(scale, **args)`` from the recipe's seed, train it, save it as safetensors.

    The training checkpoint lives beside ``out`` (``<out>.ckpt``) until training completes,
    so re-running the same command after a kill resumes it.
    """
    spec = TrainSpec.from_dict(recipe)
    out = Path(out)
    torch.manual_seed(spec.seed)
    model = build(arch, scale=scale, **args)
    sampler = PatchSampler(
        load_pairs(data_dir, scale, spec.lr_patch), scale, spec.lr_patch, augment=spec.augment
    )
    fit(
        model,
        sampler,
        spec,
        checkpoint=out.with_name(out.name + ".ckpt"),
        log_tsv=log_tsv,
        device=device,
        objective=objective,
        fingerprint=f"{arch}{sorted(args.items())}{scale}{Path(data_dir).resolve()}",
        progress=progress,
    )
    save_model(
        model.cpu(),
        out,
        arch=arch,
        args={"scale": scale, **args},
        meta={"train": recipe, "data": str(data_dir)},
    )
    return out
