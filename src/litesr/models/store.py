"""Save and load models as safetensors files that carry their own architecture and arguments.

Files are deterministic: the same weights, arch, args and meta give the same bytes (the
header's metadata and tensor entries are written in sorted order; safetensors itself writes
its metadata map in a random order). Loading checks every tensor's name and shape in the
file's header against the model its metadata describes, built without memory on torch's
``meta`` device, before any real model or tensor is allocated.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from safetensors.torch import save as save_bytes
from torch import nn

from litesr import __version__
from litesr.atomic import atomic_path
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
    metadata = {
        "arch": arch,
        "args": json.dumps(args, sort_keys=True),
        "litesr_version": __version__,
    }
    metadata |= {str(key): json.dumps(value, sort_keys=True) for key, value in meta.items()}
    tensors = {key: t.detach().cpu().contiguous() for key, t in model.state_dict().items()}
    data = _canonical(save_bytes(tensors, metadata=metadata))
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def _canonical(data: bytes) -> bytes:
    """The same safetensors file with its header in a fixed order: ``__metadata__`` first with
    sorted keys, then the tensors by name. The tensor bytes (already laid out by safetensors
    in a fixed order: by alignment, then name) and their offsets are unchanged."""
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    meta = header.pop("__metadata__", None) or {}
    ordered: dict[str, Any] = {"__metadata__": dict(sorted(meta.items()))} if meta else {}
    ordered |= {name: header[name] for name in sorted(header)}
    text = json.dumps(ordered, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)  # safetensors pads the header to 8 bytes
    return struct.pack("<Q", len(text)) + text + data[8 + n :]


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
    """Rebuild the model saved at ``path`` (in eval mode, on ``device``) and return its metadata.

    The tensor names and shapes in the file's header must be exactly those of the model its
    metadata describes; this is checked on a memory-free ``meta``-device model, so a small
    file asking for a huge model is refused before anything large is allocated.
    """
    path = Path(path)
    meta = read_meta(path)
    with torch.device("meta"):
        try:
            skeleton = build(meta["arch"], **meta["args"])
        except (ValueError, TypeError, RuntimeError) as err:
            raise ValueError(f"{path}: cannot rebuild the model: {err}") from err
    expected = {key: tuple(t.shape) for key, t in skeleton.state_dict().items()}
    del skeleton
    _check_header(path, expected, f"{meta['arch']}{meta['args']}")
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


def _check_header(path: Path, expected: dict[str, tuple[int, ...]], what: str) -> None:
    """Refuse a file whose tensors (from its header alone) are not exactly ``expected``."""
    try:
        with safe_open(path, framework="pt") as f:
            found = {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}
    except SafetensorError as err:
        raise ValueError(f"{path} is not a readable safetensors file: {err}") from err
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = sorted(
        f"{key} {found[key]} (expected {expected[key]})"
        for key in set(found) & set(expected)
        if found[key] != expected[key]
    )
    if missing or unexpected or wrong:
        parts = [
            f"{label}: {', '.join(items[:5])}{' ...' if len(items) > 5 else ''}"
            for label, items in (
                ("missing tensors", missing),
                ("unexpected tensors", unexpected),
                ("wrong shapes", wrong),
            )
            if items
        ]
        raise ValueError(
            f"{path}: the tensors in the file do not match the model its metadata describes "
            f"({what}); nothing was loaded. {'; '.join(parts)}"
        )
