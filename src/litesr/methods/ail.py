"""AIL: adaptive importance learning (Zhang et al., IJCV 2020), on the shared training loop.

A lightweight VDSR student, started from a plainly pre-trained checkpoint, is trained for R
rounds with per-pixel importance weights on the Y channel (values in [0, 1]):

- teacher initialisation: ``w0 = sigmoid(-α (e_T - b)) / sigmoid(α b)`` with
  ``e_T = |teacher(x) - y|`` (so ``w0 = 1`` where the teacher is exact);
- round ``r >= 1``: ``w = clamp(w0 + λ_r exp(-σ e_p), 0, 1)``, ``λ_r = λ + ρ (r - 1)``,
  ``e_p = |snapshot(x) - y|`` with the student frozen at the start of the round;
- round 0 uses ``w0`` alone; the loss is ``Σ (w ŷ - w y)²`` over the batch's pixels.

As in the authors' code, weights are computed per batch on the same patches the student
sees, every round restarts the learning-rate schedule, and teacher and snapshot outputs carry
no gradient. Variants at equal budget (same rounds, steps and optimiser): ``ail`` (above),
``plain`` (``w ≡ 1``), and ``noteacher``, the ablation whose initial importance is a uniform
constant instead of the teacher term (the authors' code has no such variant; the constant is
our choice, ``uniform_init``).
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn

from litesr.device import resolve_device
from litesr.models.store import load_model, save_model
from litesr.models.vdsr import rgb_to_ycbcr, upsample_bicubic
from litesr.train.loop import fit
from litesr.train.patches import PatchSampler, load_pairs
from litesr.train.spec import TrainSpec
from litesr.tsv import write_tsv

log = logging.getLogger(__name__)

VARIANTS = ("plain", "ail", "noteacher")


@dataclass(frozen=True)
class Importance:
    """Hyper-parameters of the importance weights (defaults: the authors' code)."""

    alpha: float = 100.0
    b: float = 0.01
    lam: float = 0.15
    rho: float = 0.15
    sigma: float = 10.0
    uniform_init: float = 0.5

    @classmethod
    def from_dict(cls, values: dict[str, float]) -> Importance:
        """Build from a config mapping; unknown keys are an error."""
        unknown = sorted(set(values) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown AIL importance option(s) {unknown}")
        return cls(**values)

    def round_lambda(self, r: int) -> float:
        """λ_r: 0 in round 0, then λ + ρ (r − 1)."""
        return 0.0 if r == 0 else self.lam + self.rho * (r - 1)


def teacher_importance(e_t: Tensor, imp: Importance) -> Tensor:
    """w0 = sigmoid(−α (e_T − b)) / sigmoid(α b): 1 where the teacher is exact, → 0 where wrong."""
    return torch.sigmoid(-imp.alpha * (e_t - imp.b)) / torch.sigmoid(
        torch.tensor(imp.alpha * imp.b, dtype=e_t.dtype)
    )


def round_importance(w0: Tensor, e_p: Tensor | None, r: int, imp: Importance) -> Tensor:
    """Round ``r`` weights: ``w0`` in round 0, then clamp(w0 + λ_r exp(−σ e_p), 0, 1)."""
    if r == 0:
        return w0
    if e_p is None:
        raise ValueError(f"round {r} needs the snapshot's errors e_p")
    return (w0 + imp.round_lambda(r) * torch.exp(-imp.sigma * e_p)).clamp(0, 1)


def weighted_loss(pred: Tensor, target: Tensor, w: Tensor) -> Tensor:
    """Σ (w ŷ − w y)²: the weights enter squared, summed over batch and pixels (no mean)."""
    return nn.functional.mse_loss(w * pred, w * target, reduction="sum")


class AILObjective:
    """Loss of one round for one variant, computed on the Y channel of each batch."""

    def __init__(
        self,
        variant: str,
        r: int,
        imp: Importance,
        teacher: nn.Module | None,
        snapshot: nn.Module | None,
    ) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"AIL variant {variant!r}: use one of {VARIANTS}")
        if variant == "ail" and teacher is None:
            raise ValueError("the 'ail' variant needs a teacher")
        self.variant, self.r, self.imp = variant, r, imp
        self.teacher, self.snapshot = teacher, snapshot

    @torch.no_grad()
    def weights(self, y_bic: Tensor, y: Tensor) -> Tensor:
        """Per-pixel importance of this batch (no gradient)."""
        if self.variant == "plain":
            return torch.ones_like(y)
        if self.variant == "ail":
            w0 = teacher_importance((self.teacher.forward_y(y_bic) - y).abs(), self.imp)
        else:
            w0 = torch.full_like(y, self.imp.uniform_init)
        e_p = (self.snapshot.forward_y(y_bic) - y).abs() if self.r > 0 else None
        return round_importance(w0, e_p, self.r, self.imp)

    def __call__(self, model: nn.Module, lr: Tensor, hr: Tensor) -> tuple[Tensor, dict]:
        y_bic = rgb_to_ycbcr(upsample_bicubic(lr, model.scale))[:, :1]
        y = rgb_to_ycbcr(hr)[:, :1]
        w = self.weights(y_bic, y)
        return weighted_loss(model.forward_y(y_bic), y, w), {"mean_w": float(w.mean())}


def round_files(out: Path, rounds: int) -> list[Path]:
    """Weights at the end of each round, beside the final model: ``rounds/round{r}``."""
    return [Path(out).parent / "rounds" / f"round{r}.safetensors" for r in range(rounds)]


def train_ail(
    variant: str,
    init: Path,
    teacher: Path | None,
    data_dir: Path,
    scale: int,
    rounds: int,
    recipe: dict[str, Any],
    imp: Importance,
    out: Path,
    log_tsv: Path,
    *,
    device: str = "cpu",
    progress: bool = True,
) -> Path:
    """Run the rounds of one variant from the pre-trained student ``init``; save every round.

    A killed run resumes: finished rounds are reloaded from their files, the current round
    from its training checkpoint.
    """
    spec = TrainSpec.from_dict(recipe)
    model, meta = load_model(init)
    if meta["arch"] != "vdsr" or int(model.scale) != scale:
        raise ValueError(
            f"{init}: AIL needs a ×{scale} VDSR student, got {meta['arch']} ×{model.scale}"
        )
    dev = resolve_device(device)
    teacher_model = load_model(teacher, device=dev)[0] if variant == "ail" else None
    sampler = PatchSampler(
        load_pairs(data_dir, scale, spec.lr_patch), scale, spec.lr_patch, augment=spec.augment
    )
    files, logs = round_files(out, rounds), []
    for r, path in enumerate(files):
        round_log = path.with_suffix(".tsv")
        if path.exists() and round_log.exists():
            model = load_model(path)[0]
            logs.append(pd.read_csv(round_log, sep="\t"))
            continue
        snapshot = copy.deepcopy(model).to(dev).eval().requires_grad_(False) if r > 0 else None
        objective = AILObjective(variant, r, imp, teacher_model, snapshot)
        round_spec = TrainSpec.from_dict({**recipe, "seed": spec.seed + r})
        log.info("AIL %s round %d/%d (λ_r = %.2f)", variant, r, rounds, imp.round_lambda(r))
        fit(
            model,
            sampler,
            round_spec,
            checkpoint=path.with_suffix(".ckpt"),
            log_tsv=round_log,
            device=str(dev),
            objective=objective,
            fingerprint=f"{variant}{r}{init}{teacher}",
            progress=progress,
        )
        save_model(model.cpu(), path, arch="vdsr", args=meta["args"], meta={"round": r})
        logs.append(pd.read_csv(round_log, sep="\t"))
    table = pd.concat([frame.assign(round=r) for r, frame in enumerate(logs)], ignore_index=True)
    table.insert(0, "global_step", range(1, len(table) + 1))
    write_tsv(table, log_tsv, float_format=None)
    save_model(
        model.cpu(),
        out,
        arch="vdsr",
        args=meta["args"],
        meta={
            "method": "ail",
            "variant": variant,
            "rounds": rounds,
            "init": str(init),
            "teacher": str(teacher),
            "importance": imp.__dict__,
            "train": recipe,
        },
    )
    return out
