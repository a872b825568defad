"""AIL's per-pixel importance weights and the task that trains one round with them.

With images in [0, 1], on the Y channel:

- teacher initialisation: ``w0 = sigmoid(-α (e_T - b)) / sigmoid(α b)`` with
  ``e_T = |teacher(x) - y|`` (so ``w0 = 1`` where the teacher is exact);
- round ``r >= 1``: ``w = clamp(w0 + λ_r exp(-σ e_p), 0, 1)``, ``λ_r = λ + ρ (r - 1)``,
  ``e_p = |snapshot(x) - y|`` with the student frozen at the start of the round;
- round 0 uses ``w0`` alone; the loss is ``Σ (w ŷ - w y)²`` over the batch's pixels.

As in the authors' code, weights are computed per batch on the same patches the student
sees, and teacher and snapshot outputs carry no gradient. On a fixed patch set the teacher's
outputs may be computed once per patch and come with each batch (``cached_teacher``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from litesr.data.color import luma
from litesr.data.resize_torch import upsample_bicubic
from litesr.train.objectives import Task

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


def student_input(lr: Tensor, scale: int) -> Tensor:
    """The Y channel of the bicubic-upsampled LR batch: what VDSR (student and teacher) refines."""
    return luma(upsample_bicubic(lr, scale))


def weighted_loss(pred: Tensor, target: Tensor, w: Tensor) -> Tensor:
    """Σ (w ŷ − w y)²: the weights enter squared, summed over batch and pixels (no mean)."""
    return nn.functional.mse_loss(w * pred, w * target, reduction="sum")


class AILTask(Task):
    """One round of one variant: the student, with the teacher and the round's snapshot
    frozen beside it; the loss is computed on the Y channel of each batch.

    With ``cached_teacher`` the task holds no teacher: each batch brings the teacher's Y
    output of its patches as a third tensor (see ``litesr.methods.ail.patches``).
    """

    batch_reduction = "sum"  # weighted_loss sums over the batch

    def __init__(
        self,
        student: nn.Module,
        variant: str,
        r: int,
        imp: Importance,
        teacher: nn.Module | None = None,
        snapshot: nn.Module | None = None,
        cached_teacher: bool = False,
    ) -> None:
        super().__init__(student)
        if variant not in VARIANTS:
            raise ValueError(f"AIL variant {variant!r}: use one of {VARIANTS}")
        if variant == "ail" and teacher is None and not cached_teacher:
            raise ValueError("the 'ail' variant needs a teacher or its cached outputs")
        if r > 0 and variant != "plain" and snapshot is None:
            raise ValueError(f"round {r} of variant {variant!r} needs the student's snapshot")
        self.variant, self.r, self.imp, self.cached_teacher = variant, r, imp, cached_teacher
        if teacher is not None and variant == "ail" and not cached_teacher:
            self.freeze("teacher", teacher)
        if snapshot is not None and r > 0:
            self.freeze("snapshot", snapshot)

    @torch.no_grad()
    def weights(self, y_bic: Tensor, y: Tensor, teacher_y: Tensor | None = None) -> Tensor:
        """Per-pixel importance of this batch (no gradient); ``teacher_y`` is the teacher's
        cached output, required with ``cached_teacher`` and otherwise computed here."""
        if self.variant == "plain":
            return torch.ones_like(y)
        if self.variant == "ail":
            if self.cached_teacher and teacher_y is None:
                raise ValueError("this AIL task expects the teacher's cached output per batch")
            if teacher_y is None:
                teacher_y = self.teacher.forward_y(y_bic)
            w0 = teacher_importance((teacher_y - y).abs(), self.imp)
        else:
            w0 = torch.full_like(y, self.imp.uniform_init)
        e_p = (self.snapshot.forward_y(y_bic) - y).abs() if self.r > 0 else None
        return round_importance(w0, e_p, self.r, self.imp)

    def loss(
        self, lr: Tensor, hr: Tensor, teacher_y: Tensor | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        y_bic, y = student_input(lr, self.student.scale), luma(hr)
        w = self.weights(y_bic, y, teacher_y)
        return weighted_loss(self.student.forward_y(y_bic), y, w), {"mean_w": float(w.mean())}
