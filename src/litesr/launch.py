"""How a job takes its GPUs: the cards it holds, and the processes it trains with.

On a workstation several jobs run at once. A job that runs on CUDA first claims free cards: a
lock file per card, held until the job ends (the kernel drops it when the job dies), and
``CUDA_VISIBLE_DEVICES`` set to the claimed cards alone, so that two jobs never share a card;
a job that finds none free waits for one. Under SLURM the allocation gives each job its own
cards, and nothing is claimed.

A training job whose spec asks for ``gpus: N > 1`` replaces itself with
``torchrun --standalone --nproc-per-node N`` running the same command: N processes on this
node, which train together (see ``litesr.train.dist``).
"""

from __future__ import annotations

import fcntl
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

log = logging.getLogger(__name__)

_HELD: list[int] = []  # the claimed cards' lock files, open for the life of the job


def lock_dir() -> Path:
    """Where the cards' lock files live: ``$LITESR_GPU_LOCKS``, else one folder in /tmp
    shared by every user of the machine."""
    return Path(os.environ.get("LITESR_GPU_LOCKS", "/tmp/litesr-gpu-locks"))


def visible_cards() -> list[str]:
    """The cards this job may use: ``CUDA_VISIBLE_DEVICES`` when set, else every NVIDIA GPU
    the driver lists (read without starting CUDA, which would fix the visible set)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [card for card in visible.split(",") if card.strip()]
    driver = Path("/proc/driver/nvidia/gpus")
    return [str(i) for i in range(len(list(driver.iterdir())))] if driver.is_dir() else []


def _try_lock(path: Path) -> int | None:
    fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def claim(n: int, cards: list[str], poll: float = 2.0) -> list[str]:
    """Hold ``n`` of ``cards`` that no other job holds (waiting until there are), make them
    the only visible ones, and return them. The locks stay held, also across ``exec``."""
    if n > len(cards):
        raise ValueError(f"the job asks for {n} GPUs but {len(cards)} are visible ({cards})")
    folder = lock_dir()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        folder.chmod(0o1777)  # shared by every user, as /tmp is
    except PermissionError:
        pass  # made by another user, who set it
    waited = False
    while True:
        held: list[tuple[str, int]] = []
        for card in cards:
            fd = _try_lock(folder / f"gpu-{card}.lock")
            if fd is not None:
                held.append((card, fd))
            if len(held) == n:
                break
        if len(held) == n:
            break
        for _, fd in held:
            os.close(fd)
        if not waited:
            log.info("waiting for %d free GPU(s) of %s (locks in %s)", n, cards, folder)
            waited = True
        time.sleep(poll)
    for _, fd in held:
        os.set_inheritable(fd, True)
        _HELD.append(fd)
    chosen = [card for card, _ in held]
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(chosen)
    log.info("holding GPU(s) %s", ",".join(chosen))
    return chosen


def hold_gpus(n: int, device: str) -> None:
    """Claim ``n`` cards for a job on ``device`` when it will run on CUDA outside SLURM and
    outside a torchrun it was started by (whose launcher claimed them)."""
    if device == "cpu" or n < 1 or "SLURM_JOB_ID" in os.environ or "WORLD_SIZE" in os.environ:
        return
    cards = visible_cards()
    if cards:  # without any, 'cuda' stops later with its own message and 'auto' uses the CPU
        claim(n, cards)


def asked_gpus(params: Any) -> int:
    """The largest ``gpus`` that any recipe in a job's params asks for (searched through nested
    mappings and lists; 0 when none asks)."""
    if isinstance(params, dict):
        own = params.get("gpus")
        found = [own if isinstance(own, int) and not isinstance(own, bool) else 0]
        return max(found + [asked_gpus(v) for v in params.values()])
    if isinstance(params, list):
        return max((asked_gpus(v) for v in params), default=0)
    return 0


def trains(params: Any) -> bool:
    """Whether a job's params hold a training recipe (a mapping with ``steps``), searched
    through nested mappings and lists: a step without one (an import, a merge, a conversion)
    needs no training request."""
    if isinstance(params, dict):
        return "steps" in params or any(trains(v) for v in params.values())
    if isinstance(params, list):
        return any(trains(v) for v in params)
    return False


def job_resources(asked: int, default: int, device: str) -> tuple[int, int]:
    """``(processes, gpus)`` of a training job whose recipes ask for ``asked`` GPUs (0: none)
    with ``default`` (the config's ``resources.gpu``) otherwise: as many processes as GPUs
    asked (at least one); the GPUs requested are those, none on the CPU, and at least one on
    ``cuda``."""
    n = asked or default
    if device == "cpu":
        return max(n, 1), 0
    return max(n, 1), max(n, 1) if device == "cuda" else n


def job_spec(spec: dict, argv: list[str]) -> dict:
    """Set a training job up from its JSON spec and return the spec without ``gpus`` (the
    number of processes; when absent, the largest ``gpus`` of its recipes, else 1): hold its
    cards and, when it asks for more than one process and is not yet one of them, replace
    this process with torchrun."""
    if not isinstance(spec, dict):
        return spec
    spec = dict(spec)
    n = spec.pop("gpus") if "gpus" in spec else max(asked_gpus(spec), 1)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"spec gpus must be a positive whole number, got {n!r}")
    hold_gpus(n, spec.get("device", "cpu"))
    if n > 1 and "WORLD_SIZE" not in os.environ:
        torchrun(n, argv)
    return spec


def torchrun(n: int, argv: list[str]) -> NoReturn:
    """Replace this process with ``n`` processes of ``litesr argv`` started by torchrun."""
    log.info("launching %d processes: torchrun --nproc-per-node %d", n, n)
    logging.shutdown()
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    os.execv(sys.executable, [*command, f"--nproc-per-node={n}", "-m", "litesr.cli", *argv])
