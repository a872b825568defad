"""The shared training loop: resumable, deterministic on CPU, with a per-step TSV log.

Methods plug in through an *objective*: a callable ``(model, lr, hr) -> (loss, extras)``
returning the scalar loss to minimise and a dict of extra numbers to log. The default
objective is the plain pixel loss of the recipe (L1 or L2 between ``model(lr)`` and ``hr``).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from litesr.device import resolve_device
from litesr.models.vdsr import rgb_to_ycbcr
from litesr.train.patches import PatchSampler
from litesr.train.spec import TrainSpec
from litesr.tsv import write_tsv

log = logging.getLogger(__name__)

Objective = Callable[[nn.Module, torch.Tensor, torch.Tensor], tuple[torch.Tensor, dict[str, float]]]


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


def pixel_objective(loss: str, channel: str = "rgb") -> Objective:
    """Plain supervised objective: L1, L2 (means) or ``l2_sum`` (the squared error summed over
    batch and pixels, as VDSR-style recipes with gradient clipping use) between the SR output
    and the HR patch.

    With ``channel="y"`` the loss is taken on BT.601 Y alone, for networks that predict Y
    (they expose ``predict_y``, e.g. VDSR).
    """
    fn = {
        "l1": nn.functional.l1_loss,
        "l2": nn.functional.mse_loss,
        "l2_sum": lambda pred, target: nn.functional.mse_loss(pred, target, reduction="sum"),
    }[loss]
    if channel == "rgb":
        return lambda model, lr, hr: (fn(model(lr), hr), {})

    def objective(model: nn.Module, lr: torch.Tensor, hr: torch.Tensor):
        if not hasattr(model, "predict_y"):
            raise ValueError(
                f"channel 'y' needs a model that predicts Y, not {type(model).__name__}"
            )
        return fn(model.predict_y(lr), rgb_to_ycbcr(hr)[:, :1]), {}

    return objective


def make_optimizer(params, spec: TrainSpec) -> torch.optim.Optimizer:
    if spec.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay
        )
    return torch.optim.Adam(params, lr=spec.lr, betas=spec.betas, weight_decay=spec.weight_decay)


def make_scheduler(opt: torch.optim.Optimizer, spec: TrainSpec):
    """Per-step learning-rate schedule."""
    if spec.scheduler == "multistep":
        return torch.optim.lr_scheduler.MultiStepLR(opt, list(spec.milestones), spec.gamma)
    if spec.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, spec.steps)
    if spec.scheduler == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, spec.lr, total_steps=spec.steps)
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)


def _atomic_save(obj: dict, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _write_log(rows: list[dict], path: Path) -> None:
    write_tsv(pd.DataFrame(rows), path, float_format=None)


def fit(
    model: nn.Module,
    sampler: PatchSampler,
    spec: TrainSpec,
    *,
    checkpoint: Path,
    log_tsv: Path,
    device: str = "cpu",
    objective: Objective | None = None,
    fingerprint: str = "",
    progress: bool = True,
) -> nn.Module:
    """Train ``model`` for ``spec.steps`` steps; resume from ``checkpoint`` when it matches.

    A checkpoint (model, optimiser, scheduler, sampler RNG, log rows) is written atomically
    every ``spec.checkpoint_every`` steps, so a killed run restarts where it stopped and ends
    with the same weights as an uninterrupted one. It is removed once training completes.
    """
    dev = resolve_device(device)
    model.to(dev).train()
    objective = objective or pixel_objective(spec.loss, spec.channel)
    opt = make_optimizer(model.parameters(), spec)
    sched = make_scheduler(opt, spec)
    use_amp = spec.amp and dev.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    gen = torch.Generator().manual_seed(spec.seed)
    start, rows = 0, []
    checkpoint, log_tsv = Path(checkpoint), Path(log_tsv)
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    log_tsv.parent.mkdir(parents=True, exist_ok=True)
    key = spec.fingerprint(fingerprint)

    if checkpoint.exists():
        state = torch.load(checkpoint, map_location=dev, weights_only=False)
        if state.get("fingerprint") == key:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            scaler.load_state_dict(state["scaler"])
            gen.set_state(state["generator"])
            start, rows = state["step"], state["rows"]
            log.info("resumed from %s at step %d", checkpoint, start)
        else:
            log.warning("%s belongs to another configuration; starting afresh", checkpoint)

    def save_checkpoint(step: int) -> None:
        state = {
            "fingerprint": key,
            "step": step,
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "scaler": scaler.state_dict(),
            "generator": gen.get_state(),
            "rows": rows,
        }
        _atomic_save(state, checkpoint)
        _write_log(rows, log_tsv)

    t0 = time.perf_counter()
    bar = tqdm(
        range(start + 1, spec.steps + 1),
        initial=start,
        total=spec.steps,
        desc=f"train {log_tsv.parent}",
        disable=not progress,
        mininterval=1.0,
    )
    for step in bar:
        lr_b, hr_b = sampler.sample(spec.batch_size, gen)
        lr_b, hr_b = lr_b.to(dev, non_blocking=True), hr_b.to(dev, non_blocking=True)
        with torch.autocast(dev.type, enabled=use_amp):
            loss, extras = objective(model, lr_b, hr_b)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise TrainingDiverged(
                f"loss became {value} at step {step} (log: {log_tsv}); lower the learning "
                "rate or set grad_clip"
            )
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if spec.grad_clip:
            scaler.unscale_(opt)
            nn.utils.clip_grad_norm_(model.parameters(), spec.grad_clip)
        scaler.step(opt)
        scaler.update()
        rows.append(
            {
                "step": step,
                "loss": value,
                "lr": opt.param_groups[0]["lr"],
                **extras,
                "seconds": round(time.perf_counter() - t0, 3),
            }
        )
        sched.step()
        bar.set_postfix(loss=f"{value:.4f}", refresh=False)
        if step % spec.checkpoint_every == 0 and step < spec.steps:
            save_checkpoint(step)
    _write_log(rows, log_tsv)
    checkpoint.unlink(missing_ok=True)
    return model.eval()
