"""What the shared loop trains: a *task* owning the student and any extra parts, and its loss.

A :class:`Task` is an ``nn.Module`` holding the student (``task.student``), any extra
trainable parts (a dual regression network, feature-projection adapters) and frozen parts
(a teacher). ``fit`` optimises every trainable parameter of the task with one optimiser,
calls :meth:`Task.loss` on each batch and :meth:`Task.after_step` after each step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from litesr.data.color import luma

PIXEL_LOSSES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "l1": nn.functional.l1_loss,
    "l2": nn.functional.mse_loss,
    # The squared error summed over batch and pixels, as VDSR-style recipes with gradient
    # clipping use it.
    "l2_sum": lambda pred, target: nn.functional.mse_loss(pred, target, reduction="sum"),
}


class Task(nn.Module):
    """The student, plus the extra trainable and frozen modules one method's loss needs.

    ``batch_reduction`` says how :meth:`loss` reduces over the batch, ``"mean"`` or ``"sum"``:
    data-parallel training averages the ranks' gradients, right for a mean; a sum's are
    multiplied by the number of ranks, so that the global batch gets the gradient of one
    process.
    """

    batch_reduction = "mean"

    def __init__(self, student: nn.Module) -> None:
        super().__init__()
        self.student = student
        self._frozen: set[str] = set()

    def freeze(self, name: str, module: nn.Module) -> nn.Module:
        """Attach ``module`` as a frozen part: no gradient, always in eval mode, not saved in
        checkpoints (it is an input of the run, not a result)."""
        module.requires_grad_(False).eval()
        setattr(self, name, module)
        self._frozen.add(name)
        return module

    def train(self, mode: bool = True) -> Task:
        super().train(mode)
        for name in self._frozen:
            getattr(self, name).eval()
        return self

    def trainable_state(self) -> dict[str, Tensor]:
        """State of every part except the frozen ones: what a checkpoint must hold."""
        return {
            key: value
            for key, value in self.state_dict().items()
            if key.split(".", 1)[0] not in self._frozen
        }

    def param_groups(self) -> list[dict[str, Any]]:
        """The optimiser's parameter groups: one of every trainable parameter by default. A
        task may give a group its own ``lr`` or ``weight_decay`` (the recipe's apply to the
        rest; schedules scale every group's ``lr`` alike, except onecycle, which sets all)."""
        return [{"params": [p for p in self.parameters() if p.requires_grad]}]

    def loss(self, lr: Tensor, hr: Tensor) -> tuple[Tensor, dict[str, float]]:
        """The scalar loss of one batch and extra numbers to log."""
        raise NotImplementedError

    def after_step(self, step: int) -> None:
        """Called after every optimiser step (pruning masks, weight projections)."""


def y_prediction(model: nn.Module, lr: Tensor) -> Tensor:
    """The Y channel a network predicts; networks working on Y expose ``predict_y``."""
    if not hasattr(model, "predict_y"):
        raise ValueError(f"channel 'y' needs a model that predicts Y, not {type(model).__name__}")
    return model.predict_y(lr)


class PixelTask(Task):
    """Plain supervised training: a pixel loss between ``student(lr)`` and the HR patch,
    on RGB or (``channel="y"``) on BT.601 Y alone."""

    def __init__(self, student: nn.Module, loss: str = "l1", channel: str = "rgb") -> None:
        super().__init__(student)
        self.fn, self.channel = PIXEL_LOSSES[loss], channel
        self.batch_reduction = "sum" if loss == "l2_sum" else "mean"

    def loss(self, lr: Tensor, hr: Tensor) -> tuple[Tensor, dict[str, float]]:
        if self.channel == "y":
            return self.fn(y_prediction(self.student, lr), luma(hr)), {}
        return self.fn(self.student(lr), hr), {}
