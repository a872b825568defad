"""The shared training loop: resumable, deterministic on CPU, with a per-step TSV log.

``fit`` trains a :class:`~litesr.train.objectives.Task`: the student plus whatever extra
trainable parts a method adds (one optimiser sees them all) and frozen parts (a teacher).
Each step samples a batch ``(lr, hr, *extras)``, calls ``task.loss`` on it, steps the
optimiser, then ``task.after_step``. Every ``checkpoint_every`` steps the run is checkpointed
(see ``litesr.train.checkpoint``), so a killed run restarts where it stopped and ends with
the same weights as an uninterrupted one. The last checkpoint, at the final step, stays until
the caller has saved what it made from the run (then it removes it), so a crash while the
model is written loses no training.

``spec.precision`` ``bf16`` runs each step's loss under bf16 autocast (CPU and CUDA): the
weights, the optimiser's state, the loss and what the task computes outside the step stay
fp32, so saved models and checkpoints are fp32, and evaluation (after ``fit``) is fp32.
``spec.channels_last`` trains on channels-last (NHWC) parameters and batches; ``fit`` hands
the task back in the default layout.

Under ``torchrun`` (see ``litesr.train.dist``) the task is trained data-parallel: each rank
draws ``batch_size / N`` patches per step from its own generator (seeded from the recipe's
seed and its rank), DistributedDataParallel averages the gradients, and the logged loss is
that of the global batch. Rank 0 writes the checkpoint (with every rank's generator state) and
the log; a checkpoint resumes only with the number of processes that made it.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from pathlib import Path

import pandas as pd
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from litesr.train import dist
from litesr.train.checkpoint import Checkpoint, load_checkpoint, save_checkpoint, write_failed
from litesr.train.loader import Batches
from litesr.train.objectives import Task
from litesr.train.patches import Sampler
from litesr.train.spec import TrainSpec
from litesr.tsv import write_tsv

log = logging.getLogger(__name__)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


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


def _fast_forward(sched, steps: int) -> None:
    """Replay ``steps`` scheduler steps: every schedule here is a function of the step count,
    so this restores it exactly without storing the scheduler's (partly non-JSON) state."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*lr_scheduler.step.*")
        for _ in range(steps):
            sched.step()


def _write_log(rows: list[dict], path: Path) -> None:
    try:
        write_tsv(pd.DataFrame(rows), path, float_format=None)
    except OSError as err:
        raise write_failed(path, err) from None


class _TaskLoss(nn.Module):
    """The task's loss as a module's forward, which DistributedDataParallel wraps."""

    def __init__(self, task: Task) -> None:
        super().__init__()
        self.task = task

    def forward(self, *batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        return self.task.loss(*batch)


def _resume(path: Path, key: str) -> Checkpoint | None:
    """The checkpoint to resume from. With several ranks, rank 0 reads it first (setting a
    bad one aside), then the others read the one it accepted."""
    if dist.world_size() == 1:
        return load_checkpoint(path, key)
    state = load_checkpoint(path, key) if dist.is_main() else None
    if dist.main_says(state is not None) and state is None:
        state = load_checkpoint(path, key)
        if state is None:
            raise RuntimeError(f"{path}: rank 0 resumed from it, rank {dist.rank()} cannot")
    return state


def _global(loss: torch.Tensor, extras: dict[str, float], reduction: str):
    """The loss of the global batch (the ranks' mean or sum, as the task reduces) and the
    extras averaged over the ranks."""
    local = torch.tensor([float(loss.detach()), *extras.values()], dtype=torch.float64)
    total = dist.all_reduce(local, "sum")
    value = float(total[0]) / (1 if reduction == "sum" else dist.world_size())
    means = (total[1:] / dist.world_size()).tolist()
    return value, dict(zip(extras, means, strict=True))


def fit(
    task: Task,
    sampler: Sampler,
    spec: TrainSpec,
    *,
    checkpoint: Path,
    log_tsv: Path,
    device: str = "cpu",
    fingerprint: str = "",
    progress: bool = True,
) -> Task:
    """Train ``task`` for ``spec.steps`` steps; resume from ``checkpoint`` when it matches.

    ``fingerprint`` names everything outside the recipe and the data the run depends on
    (architecture, starting weights); with the recipe and ``sampler.key`` (the images'
    content) it must match a checkpoint's, or the checkpoint is set aside.
    The run ends with a checkpoint at its last step: the caller removes ``checkpoint`` once
    it has saved the trained model (a rerun before that resumes at the end, at no cost).
    """
    dev = dist.setup(device)
    world, rank, main = dist.world_size(), dist.rank(), dist.is_main()
    if spec.batch_size % world:
        raise ValueError(f"batch_size {spec.batch_size} cannot be split over {world} processes")
    if spec.gpus > 1 and world != spec.gpus:
        log.warning("the recipe asks for %d processes; training on %d", spec.gpus, world)
    if spec.precision == "bf16" and dev.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError(f"precision bf16: {torch.cuda.get_device_name(dev)} has no bf16")
    layout = torch.channels_last if spec.channels_last else torch.preserve_format
    task.to(dev, memory_format=layout).train()
    groups = task.param_groups()
    params = [p for group in groups for p in group["params"]]
    opt = make_optimizer(groups, spec)
    sched = make_scheduler(opt, spec)
    gen = torch.Generator().manual_seed(dist.rank_seed(spec.seed, rank))
    start, rows = 0, []
    checkpoint, log_tsv = Path(checkpoint), Path(log_tsv)
    key = spec.fingerprint(fingerprint, sampler.key, *([{"processes": world}] if world > 1 else []))

    state = _resume(checkpoint, key)
    if state is not None:
        missing, unexpected = task.load_state_dict(state.task, strict=False)
        missing = [k for k in missing if k in task.trainable_state()]
        if missing or unexpected:
            raise ValueError(f"{checkpoint}: state does not fit the task ({missing or unexpected})")
        _fast_forward(sched, state.step)
        opt.load_state_dict(state.optimizer)
        # A row is copied: set_state reads a view's storage from its start, not its offset.
        gen.set_state(state.generator if world == 1 else state.generator[rank].clone())
        start, rows = state.step, state.rows
        log.info("resumed from %s at step %d", checkpoint, start)

    loss_of = task.loss
    if world > 1:
        loss_of = DistributedDataParallel(
            _TaskLoss(task),
            device_ids=[dev.index] if dev.type == "cuda" else None,
            find_unused_parameters=True,
        )
    batches = Batches(sampler, spec.batch_size // world, gen, dev)

    def save(step: int) -> None:
        generator = batches.state() if world == 1 else dist.gather_rows(batches.state())
        if not main:
            return
        save_checkpoint(
            checkpoint,
            key,
            Checkpoint(
                step=step,
                task=task.trainable_state(),
                optimizer=opt.state_dict(),
                generator=generator,
                rows=rows,
            ),
        )
        _write_log(rows, log_tsv)
        if step > start:  # a line per checkpoint: the progress a quiet job's log shows
            per_step = (time.perf_counter() - t0) / (step - start)
            left = per_step * (spec.steps - step) / 60
            last = rows[-1]["loss"]
            line = "step %d/%d: loss %.4g, %.2f s per step, %.0f min left"
            log.info(line, step, spec.steps, last, per_step, left)

    t0 = time.perf_counter()
    bar = tqdm(
        range(start + 1, spec.steps + 1),
        initial=start,
        total=spec.steps,
        desc=f"train {log_tsv.parent}",
        disable=not (progress and main),
        mininterval=1.0,
    )
    with batches:
        for step in bar:
            batch = [t.to(memory_format=layout) if t.dim() == 4 else t for t in next(batches)]
            with torch.autocast(dev.type, torch.bfloat16, enabled=spec.precision == "bf16"):
                loss, extras = loss_of(*batch)
            if world == 1:
                value = float(loss.detach())
            else:
                value, extras = _global(loss, extras, task.batch_reduction)
                if task.batch_reduction == "sum":
                    loss = loss * world
            if not math.isfinite(value):
                raise TrainingDiverged(
                    f"loss became {value} at step {step} (log: {log_tsv}); lower the learning "
                    "rate or set grad_clip"
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if spec.grad_clip:
                nn.utils.clip_grad_norm_(params, spec.grad_clip)
            opt.step()
            task.after_step(step)
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
                save(step)
        save(spec.steps)
    if spec.channels_last:
        task.to(memory_format=torch.contiguous_format)
    return task.eval()
