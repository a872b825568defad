"""Data parallelism for the shared loop: the processes ``torchrun`` starts, and what they share.

A job launched as ``torchrun --nproc-per-node N`` runs N copies of the same command; each
learns its place from the environment torchrun sets (``RANK``, ``LOCAL_RANK``,
``WORLD_SIZE``). :func:`setup` joins them into one process group (NCCL on GPUs, gloo on CPU)
and gives each its own card. Outside torchrun there is one process, and every function here is
a no-op or a constant, so that the one-process path is the plain loop.

Rank 0 is the *main* process: it alone writes checkpoints, logs and models.
"""

from __future__ import annotations

import atexit
import os

import torch
import torch.distributed as dist

from litesr.device import DEVICES, resolve_device


def world_size() -> int:
    """How many processes train together (1 outside torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's place among them (0 outside torchrun)."""
    return int(os.environ.get("RANK", "0")) if world_size() > 1 else 0


def is_main() -> bool:
    """Whether this process writes the run's files (rank 0)."""
    return rank() == 0


def rank_seed(seed: int, rank: int) -> int:
    """The seed of one rank's patch generator: ``seed`` itself for rank 0, and a distinct one
    (``seed + rank · 2³²``: recipe seeds are below 2³²) for every other rank."""
    return seed + (rank << 32)


def setup(device: str) -> torch.device:
    """The device this process trains on. Under torchrun, first join the process group (once)
    and, on GPUs, take the card of the local rank; on CPU, share the threads among the ranks."""
    if world_size() == 1:
        return resolve_device(device)
    base = device.split(":", 1)[0]
    dev = resolve_device(base if base in DEVICES else device)
    if dev.type == "cuda":
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
        atexit.register(dist.destroy_process_group)
        if dev.type == "cpu":
            torch.set_num_threads(max(1, torch.get_num_threads() // world_size()))
    return dev


def _comm_device() -> torch.device:
    """Where collective tensors live: the current card for NCCL, the CPU for gloo."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce(values: torch.Tensor, op: str = "mean") -> torch.Tensor:
    """``values`` summed (``op="sum"``) or averaged (``"mean"``) over the ranks, on the CPU."""
    out = values.to(_comm_device(), copy=True)
    dist.all_reduce(out)
    return (out if op == "sum" else out / world_size()).cpu()


def gather_rows(row: torch.Tensor) -> torch.Tensor:
    """Every rank's ``row`` (same shape and dtype on each), stacked in rank order, on the CPU."""
    local = row.to(_comm_device())
    rows = [torch.empty_like(local) for _ in range(world_size())]
    dist.all_gather(rows, local)
    return torch.stack(rows).cpu()


def main_says(flag: bool) -> bool:
    """Rank 0's ``flag``, on every rank (the others' arguments are ignored)."""
    value = torch.tensor([int(flag)], device=_comm_device())
    dist.broadcast(value, src=0)
    return bool(value.item())


def barrier() -> None:
    """Wait until every rank gets here (nothing with one process)."""
    if world_size() > 1 and dist.is_initialized():
        dist.barrier()
