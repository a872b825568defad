"""Initialisation-aware feature distillation (MemSR): the task the shared loop trains.

``L = L1(SR, HR) + c(t) · mean_i MSE(bridge_i(f_s,i), f_t,i)`` with
``c(t) = coe · alpha^(t / T)`` (coe = 0.3, alpha = 1e-5 in the authors' code), ``t`` the
steps done and ``T`` the run's steps. The bridges start from the SVD (see ``init``) and are
trained with the student; the plain teacher is frozen.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from litesr.methods.memsr.init import teacher_taps
from litesr.train.objectives import Task


def distill_weight(step: int, total: int, coe: float = 0.3, alpha: float = 1e-5) -> float:
    """c(t) = coe · alpha^(t / T)."""
    return coe * alpha ** (step / total)


class MemSRTask(Task):
    """The plain student, its trainable bridges and the frozen plain teacher."""

    def __init__(
        self,
        student: nn.Module,
        bridges: nn.ModuleList,
        teacher: nn.Module,
        total_steps: int,
        coe: float = 0.3,
        alpha: float = 1e-5,
    ) -> None:
        super().__init__(student)
        self.bridges = bridges
        self.freeze("teacher", teacher)
        self.taps = teacher_taps(teacher)
        if len(self.taps) != len(bridges) or len(student.convs) - 1 != len(bridges):
            raise ValueError(
                f"{len(bridges)} bridges for {len(self.taps)} teacher body features and "
                f"{len(student.convs) - 1} student hidden layers: they must be equal"
            )
        self.total, self.coe, self.alpha = total_steps, coe, alpha
        # Steps done, in the checkpointed state so that a resumed run weighs the same.
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))

    def loss(self, lr: Tensor, hr: Tensor) -> tuple[Tensor, dict[str, float]]:
        sr, f_s = self.student(lr, return_features=True)
        task = nn.functional.l1_loss(sr, hr)
        c = distill_weight(int(self.steps_done), self.total, self.coe, self.alpha)
        with torch.no_grad():
            _, f_t = self.teacher(lr, return_features=True)
        dist = torch.stack(
            [
                nn.functional.mse_loss(bridge(fs), f_t[tap][:, :-1])
                for bridge, fs, tap in zip(self.bridges, f_s, self.taps, strict=True)
            ]
        ).mean()
        return task + c * dist, {"l1": task.item(), "distill": dist.item(), "c": c}

    def after_step(self, step: int) -> None:
        self.steps_done.fill_(step)
