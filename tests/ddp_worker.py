"""A training job of the data-parallel tests, run alone or by torchrun: ``ddp_worker.py JOBS``.

JOBS is a JSON list; each job trains one model on the shared loop and rank 0 writes it:

- ``{"kind": "train", ...}`` runs ``train_model`` (as ``litesr train`` does) with the job's
  ``train_model`` keywords in ``"spec"``; ``"kill_at": n`` makes rank ``"kill_rank"`` (1 by
  default) kill itself with SIGKILL at its n-th loss computation.
- ``{"kind": "shared", ...}`` fits a plain task (or, with ``"task": "method"``, a
  :class:`MethodTask`) on patches where every rank draws the whole global batch from one
  generator and keeps its slice, so that one process and N processes train on the same
  global batches; rank 0 writes the task's trainable state to ``"out"``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import Tensor, nn

from litesr.models import build
from litesr.train import dist
from litesr.train.loop import fit
from litesr.train.objectives import PixelTask, Task
from litesr.train.patches import PatchSampler
from litesr.train.run import sampler_for, train_model
from litesr.train.spec import TrainSpec


class SharedStream:
    """This rank's slice of one stream of global batches, drawn alike on every rank."""

    def __init__(self, sampler: PatchSampler, seed: int) -> None:
        self.sampler, self.key = sampler, sampler.key
        self.gen = torch.Generator().manual_seed(seed)

    def sample(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
        r = dist.rank()
        batch = self.sampler.sample(n * dist.world_size(), self.gen)
        return tuple(t[r * n : (r + 1) * n] for t in batch)


class MethodTask(Task):
    """What methods put around a student: a trainable dual network (SR back to LR, as DRC's),
    a trainable feature adapter (as DIPNet's) and a frozen teacher to distil from."""

    def __init__(self, student: nn.Module, teacher: nn.Module, scale: int) -> None:
        super().__init__(student)
        self.dual = nn.Conv2d(3, 3, scale, stride=scale)
        self.adapter = nn.Conv2d(3, 3, 1)
        self.freeze("teacher", teacher)

    def loss(self, lr: Tensor, hr: Tensor) -> tuple[Tensor, dict[str, float]]:
        sr = self.student(lr)
        with torch.no_grad():
            target = self.teacher(lr)
        dual = nn.functional.l1_loss(self.dual(sr), lr)
        distil = nn.functional.l1_loss(self.adapter(sr), target)
        total = nn.functional.l1_loss(sr, hr) + 0.1 * dual + distil
        return total, {"dual": float(dual.detach()), "distil": float(distil.detach())}


def kill_at(call: int, rank: int) -> None:
    """SIGKILL this process at its ``call``-th loss computation when it is ``rank``."""
    original, calls = PixelTask.loss, {"n": 0}

    def loss(self, lr, hr):
        calls["n"] += 1
        if calls["n"] == call and dist.rank() == rank:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self, lr, hr)

    PixelTask.loss = loss


def shared(job: dict) -> None:
    spec = TrainSpec.from_dict(job["recipe"])
    torch.manual_seed(spec.seed)
    model = build(job["arch"], scale=job["scale"], **job["args"])
    if job.get("task") == "method":
        task = MethodTask(
            model, build(job["arch"], scale=job["scale"], **job["args"]), job["scale"]
        )
    else:
        task = PixelTask(model, spec.loss, spec.channel)
    out = Path(job["out"])
    fit(
        task,
        SharedStream(sampler_for(Path(job["data"]), job["scale"], spec), spec.seed),
        spec,
        checkpoint=out.with_suffix(".ckpt"),
        log_tsv=out.with_suffix(".tsv"),
        progress=False,
    )
    if dist.is_main():
        save_file({k: v.contiguous() for k, v in task.trainable_state().items()}, out)


def main() -> None:
    for job in json.loads(sys.argv[1]):
        if "kill_at" in job:
            kill_at(job["kill_at"], job.get("kill_rank", 1))
        if job["kind"] == "shared":
            shared(job)
        else:
            train_model(**job["spec"], progress=False)


if __name__ == "__main__":
    main()
