"""Training checkpoints without pickle: tensors in safetensors, everything else as JSON.

A checkpoint is one safetensors file. Its tensors are the task's trainable state, the
optimiser's per-parameter tensors, the sampler's RNG state and the log rows (as the bytes of
their JSON: safetensors refuses headers over 100 MB, which the rows of a run of about a
million steps would exceed); its metadata holds the fingerprint of the run, the step and the
optimiser's scalars. The fingerprint is read from the header alone, before any tensor, so a
checkpoint of another run (or a file that is not a checkpoint at all) is set aside without
loading anything, and nothing in it is ever executed.

A checkpoint that cannot be written (a full disk) raises :class:`WriteFailed`, one line
naming the file and the free space; the previous checkpoint is left as it was.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from litesr.atomic import atomic_path

log = logging.getLogger(__name__)

MODEL, OPTIM, GENERATOR, LOG = "task/", "optimizer/", "generator", "log_rows"


class WriteFailed(OSError):
    """A training file could not be written; the message names it and the free space."""


def write_failed(path: Path, err: BaseException) -> WriteFailed:
    """The :class:`WriteFailed` for ``path``, with the space left on its file system."""
    try:
        free = f"{shutil.disk_usage(path.parent).free / 2**20:,.0f} MiB free"
    except OSError:
        free = "free space unknown"
    reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
    return WriteFailed(f"cannot write {path}: {reason} ({free} in {path.parent})")


@dataclass
class Checkpoint:
    """Everything a run needs to continue exactly where it stopped. ``generator`` is the
    sampler's RNG state; a data-parallel run keeps one row per rank."""

    step: int
    task: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    generator: torch.Tensor
    rows: list[dict[str, Any]]


def save_checkpoint(path: Path, fingerprint: str, ckpt: Checkpoint) -> None:
    """Write ``ckpt`` atomically (unique temporary name, then rename) to ``path``."""
    tensors = {MODEL + k: v.detach().cpu().contiguous() for k, v in ckpt.task.items()}
    tensors[GENERATOR] = ckpt.generator.clone()
    state = {}
    for index, values in ckpt.optimizer["state"].items():
        scalars = {}
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{OPTIM}{index}/{name}"] = value.detach().cpu().contiguous()
            else:
                scalars[name] = value
        state[str(index)] = scalars
    tensors[LOG] = torch.frombuffer(bytearray(json.dumps(ckpt.rows).encode()), dtype=torch.uint8)
    meta = {
        "fingerprint": fingerprint,
        "step": json.dumps(ckpt.step),
        "optimizer": json.dumps({"param_groups": ckpt.optimizer["param_groups"], "state": state}),
    }
    try:
        with atomic_path(path) as tmp:
            save_file(tensors, tmp, metadata=meta)
    except (SafetensorError, OSError) as err:
        raise write_failed(path, err) from None


def set_aside(path: Path, why: str) -> Path:
    """Rename an unusable checkpoint out of the way (never delete a user's file)."""
    target = path.with_name(f"{path.name}.rejected-{time.strftime('%Y%m%d-%H%M%S')}")
    path.rename(target)
    log.warning("%s %s; moved it to %s and starting afresh", path, why, target)
    return target


def load_checkpoint(path: Path, fingerprint: str) -> Checkpoint | None:
    """The checkpoint at ``path`` if it belongs to the run ``fingerprint``, else ``None``.

    A missing file gives ``None``; a file of another run, or one that cannot be read
    (truncated, not safetensors), is renamed aside with a warning naming it.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        with safe_open(path, framework="pt") as handle:
            meta = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        set_aside(path, f"is not a readable checkpoint ({err})")
        return None
    if meta.get("fingerprint") != fingerprint:
        set_aside(path, "belongs to another configuration or data")
        return None
    try:
        tensors = load_file(path)
        optimizer = json.loads(meta["optimizer"])
        state = {
            int(index): {
                **scalars,
                **{
                    key.rsplit("/", 1)[1]: value
                    for key, value in tensors.items()
                    if key.startswith(f"{OPTIM}{index}/")
                },
            }
            for index, scalars in optimizer["state"].items()
        }
        return Checkpoint(
            step=json.loads(meta["step"]),
            task={k[len(MODEL) :]: v for k, v in tensors.items() if k.startswith(MODEL)},
            optimizer={"param_groups": optimizer["param_groups"], "state": state},
            generator=tensors[GENERATOR],
            rows=json.loads(
                meta["rows"]  # checkpoints written before the rows moved out of the header
                if "rows" in meta
                else tensors[LOG].numpy().tobytes()
            ),
        )
    except (SafetensorError, OSError, ValueError, KeyError) as err:
        set_aside(path, f"is damaged ({type(err).__name__}: {err})")
        return None
