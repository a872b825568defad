"""Save and load models as safetensors files that carry their own architecture and arguments."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from litesr import __version__
from litesr.models import build

RESERVED_KEYS = ("arch", "args", "litesr_version")


def save_model(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    arch: str,
    args: dict[str, Any],
    meta: dict[str, Any] | None = None,
) -> None:
    """Write ``model``'s state dict to ``path`` atomically, with arch, args and ``meta``.

    ``args`` must rebuild the model through ``build(arch, **args)``; ``meta`` values are stored
    as JSON strings and must not use the reserved keys ``arch``, ``args``, ``litesr_version``.
    """
    path = Path(path)
    meta = meta or {}
    clash = sorted(set(meta) & set(RESERVED_KEYS))
    if clash:
        raise ValueError(f"meta keys {clash} are reserved")
    metadata = {"arch": arch, "args": json.dumps(args), "litesr_version": __version__}
    metadata |= {str(key): json.dumps(value) for key, value in meta.items()}
    tensors = {key: t.detach().cpu().contiguous() for key, t in model.state_dict().items()}

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Metadata of a saved model: ``arch``, ``args`` (a dict), ``litesr_version`` and the meta."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    try:
        with safe_open(path, framework="pt") as f:
            raw = f.metadata() or {}
    except SafetensorError as err:
        raise ValueError(f"{path} is not a readable safetensors file: {err}") from err
    missing = [key for key in ("arch", "args") if key not in raw]
    if missing:
        raise ValueError(f"{path} lacks litesr metadata {missing}; was it saved by save_model?")
    try:
        args = json.loads(raw["args"])
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} has malformed model args {raw['args']!r}: {err}") from err
    if not isinstance(args, dict):
        raise ValueError(f"{path} has model args that are not a mapping: {raw['args']!r}")
    meta: dict[str, Any] = {key: _parse(value) for key, value in raw.items()}
    meta |= {key: raw[key] for key in ("arch", "litesr_version") if key in raw}
    meta["args"] = args
    return meta


def _parse(value: str) -> Any:
    """A metadata value as JSON, or the plain string where it is not JSON."""
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def load_model(
    path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model saved at ``path`` (in eval mode, on ``device``) and return its metadata."""
    path = Path(path)
    meta = read_meta(path)
    try:
        model = build(meta["arch"], **meta["args"])
    except ValueError as err:
        raise ValueError(f"{path}: cannot rebuild the model: {err}") from err
    try:
        state = load_file(path, device=str(device))
    except SafetensorError as err:
        raise ValueError(f"{path} is not a readable safetensors file: {err}") from err
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(
            f"{path}: weights do not match {meta['arch']}{meta['args']}: {err}"
        ) from err
    return model.to(device).eval(), meta
