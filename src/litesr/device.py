"""The device setting of the config (``cpu``, ``cuda`` or ``auto``) as a torch device."""

from __future__ import annotations

import contextlib

import torch

DEVICES = ("cpu", "cuda", "auto")


def resolve_device(device: str) -> torch.device:
    """``cpu``, ``cuda`` or ``auto`` (CUDA when present); a clear error for CUDA without GPU."""
    if device not in DEVICES:
        raise ValueError(f"device {device!r}: use one of {DEVICES}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but CUDA is not available; use cpu or auto")
    return torch.device(device)


def full_precision(device: torch.device) -> contextlib.AbstractContextManager:
    """A region that runs at its inputs' precision even inside a training step's autocast;
    nothing on devices autocast does not know (``meta``, used to probe input sizes)."""
    if device.type in ("cpu", "cuda"):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()
