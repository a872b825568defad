"""Initialisation-aware feature distillation (MemSR): the task the shared loop trains.

``L = L1(SR, HR) + c(t) · mean_i MSE(bridge_i(f_s,i), f_t,i)``, the mean over every
distilled feature (with the authors' student: every body feature, the body end and the SR
output). The bridges start from the SVD (see ``init``) and are trained with the student;
the plain teacher is frozen.

Units: the authors' images and features are in 0–255 (``rgb_range: 255``), ours in [0, 1].
Their L1 is 255 × ours and their MSE 255² × ours, so their balance ``L1 + c · MSE`` is, in
our units, ``L1 + 255 · c · MSE`` (up to the overall factor 255, which Adam ignores):
:class:`DistillWeight` multiplies ``c`` by ``units = 255``; ``units = 1`` is the earlier,
unit-blind port (a feature term about 255 times too weak).

Schedule: ``c(t) = coe · alpha^(epoch / epochs)`` per epoch as the authors decay it (their
released run is one epoch, so ``c`` stays at ``coe``); an epoch is one pass over the
training images repeated ``repeat`` times (the authors repeat DIV2K 20 times), in batches.
``schedule="step"`` decays per step instead, ``coe · alpha^(t / T)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from litesr.methods.memsr.init import Initialised
from litesr.train.objectives import Task

UNITS = 255.0
SCHEDULES = ("epoch", "step")


def steps_per_epoch(images: int, batch_size: int, repeat: int = 20) -> int:
    """Steps of one epoch: ``images × repeat`` patches in batches (the last one partial)."""
    return math.ceil(images * repeat / batch_size)


@dataclass(frozen=True)
class DistillWeight:
    """The weight ``c`` of the feature term after ``t`` steps of a ``total``-step run."""

    total: int
    coe: float = 0.3
    alpha: float = 1e-5
    units: float = UNITS
    schedule: str = "epoch"
    epoch: int = 1

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"memsr distill schedule {self.schedule!r}: use one of {SCHEDULES}")

    @property
    def epochs(self) -> int:
        """Epochs in the run (the last one may be partial)."""
        return math.ceil(self.total / self.epoch)

    def __call__(self, t: int) -> float:
        if self.schedule == "step":
            ratio = t / self.total
        else:  # the authors' current_epoch / num_epochs, constant within an epoch
            ratio = (t // self.epoch) / self.epochs
        return self.coe * self.units * self.alpha**ratio


class MemSRTask(Task):
    """The plain student, its trainable bridges and the frozen plain teacher."""

    def __init__(self, init: Initialised, teacher: nn.Module, weight: DistillWeight) -> None:
        super().__init__(init.student)
        self.bridges = init.bridges
        self.pairs, self.distill_sr = init.pairs, init.distill_sr
        self.freeze("teacher", teacher)
        if len(self.pairs) != len(self.bridges):
            raise ValueError(f"{len(self.bridges)} bridges for {len(self.pairs)} features")
        self.weight = weight
        # Steps done, in the checkpointed state so that a resumed run weighs the same.
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))

    def loss(self, lr: Tensor, hr: Tensor) -> tuple[Tensor, dict[str, float]]:
        sr, f_s = self.student(lr, return_features=True)
        task = nn.functional.l1_loss(sr, hr)
        c = self.weight(int(self.steps_done))
        with torch.no_grad():
            sr_t, f_t = self.teacher(lr, return_features=True)
        terms = [
            nn.functional.mse_loss(bridge(f_s[i]), f_t[t][:, :-1])
            for bridge, (i, t) in zip(self.bridges, self.pairs, strict=True)
        ]
        if self.distill_sr:
            terms.append(nn.functional.mse_loss(sr, sr_t))
        dist = torch.stack(terms).mean()
        return task + c * dist, {"l1": task.item(), "distill": dist.item(), "c": c}

    def after_step(self, step: int) -> None:
        self.steps_done.fill_(step)
