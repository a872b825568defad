"""Save and load models as safetensors files that carry their own architecture and arguments.

Files are deterministic: the same weights, arch, args and meta give the same bytes (the
header's metadata and tensor entries are written in sorted order; safetensors itself writes
its metadata map in a random order). Loading first sizes the model its metadata describes by
formula (:func:`litesr.models.limits.check_size`: a file asking for ten million blocks is
refused at once), then checks every tensor's name and shape in the file's header against
that model built without memory on torch's ``meta`` device, before any real model or tensor
is allocated.

Every file written here carries the SHA-256 of each tensor's bytes and of its other metadata
(the ``sha256`` metadata entry), checked on every load and by :func:`verify_model_file`: a
flipped byte is refused, naming the file and the tensor. A file without that entry (written
before it existed, or by other tools) is loaded without the check.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes
from torch import nn

from litesr import __version__
from litesr.atomic import atomic_path
from litesr.models import build
from litesr.models.limits import check_size

HASH_KEY = "sha256"
RESERVED_KEYS = ("arch", "args", "litesr_version", HASH_KEY)
# The entry of the hash map that covers the metadata (every entry but the hash map itself).
META_ENTRY = "__metadata__"


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
    header, body = _split(save_bytes(tensors, metadata=metadata))
    header[META_ENTRY][HASH_KEY] = json.dumps(_digests(header, body), sort_keys=True)
    with atomic_path(path) as tmp:
        tmp.write_bytes(_canonical(header, body))


def _split(data: bytes) -> tuple[dict[str, Any], memoryview]:
    """A safetensors file's parsed header and its data section."""
    if len(data) < 8:
        raise ValueError("too short for a safetensors file")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise ValueError(f"its header claims {n} bytes, more than the file holds")
    try:
        header = json.loads(data[8 : 8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"its header is not JSON ({err})") from None
    if not isinstance(header, dict):
        raise ValueError("its header is not a JSON object")
    return header, memoryview(data)[8 + n :]


def _digests(header: dict[str, Any], body: memoryview) -> dict[str, str]:
    """SHA-256 of each tensor's bytes (by name), and of the metadata without the hash map."""
    meta = {k: v for k, v in (header.get(META_ENTRY) or {}).items() if k != HASH_KEY}
    digests = {META_ENTRY: hashlib.sha256(_meta_text(meta)).hexdigest()}
    for name, entry in header.items():
        if name != META_ENTRY:
            start, end = entry["data_offsets"]
            digests[name] = hashlib.sha256(body[start:end]).hexdigest()
    return digests


def _meta_text(meta: dict[str, str]) -> bytes:
    return json.dumps(dict(sorted(meta.items())), separators=(",", ":")).encode()


def _canonical(header: dict[str, Any], body: memoryview) -> bytes:
    """A safetensors file with its header in a fixed order: ``__metadata__`` first with
    sorted keys, then the tensors by name. The tensor bytes (already laid out by safetensors
    in a fixed order: by alignment, then name) and their offsets are unchanged."""
    header = dict(header)
    meta = header.pop(META_ENTRY, None) or {}
    ordered: dict[str, Any] = {META_ENTRY: dict(sorted(meta.items()))} if meta else {}
    ordered |= {name: header[name] for name in sorted(header)}
    text = json.dumps(ordered, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)  # safetensors pads the header to 8 bytes
    return struct.pack("<Q", len(text)) + text + bytes(body)


def verify_model_file(path: str | os.PathLike[str]) -> bool:
    """Check a model file's bytes against the SHA-256 digests it carries.

    ``True`` when every tensor and the metadata match, ``False`` when the file carries no
    digests (nothing to check); a mismatch raises ``ValueError`` naming the file and what
    differs.
    """
    return _verified(Path(path), Path(path).read_bytes())


def _verified(path: Path, data: bytes) -> bool:
    """:func:`verify_model_file` on the file's bytes ``data``."""
    try:
        header, body = _split(data)
    except ValueError as err:
        raise ValueError(f"{path} is not a readable safetensors file: {err}") from None
    stored = (header.get(META_ENTRY) or {}).get(HASH_KEY)
    if stored is None:
        return False
    try:
        expected = json.loads(stored)
        found = _digests(header, body)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: malformed tensor digests ({err}); the file is damaged") from None
    if not isinstance(expected, dict):
        raise ValueError(f"{path}: malformed tensor digests; the file is damaged")
    wrong = sorted(k for k in expected.keys() | found.keys() if expected.get(k) != found.get(k))
    if wrong:
        what = ", ".join("metadata" if k == META_ENTRY else f"tensor {k}" for k in wrong[:5])
        raise ValueError(
            f"{path} is corrupted: the SHA-256 of {what}{' ...' if len(wrong) > 5 else ''} "
            "differs from the one saved with it; restore or rebuild the file"
        )
    return True


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
    meta: dict[str, Any] = {key: _parse(value) for key, value in raw.items() if key != HASH_KEY}
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

    The model its metadata describes must be within the size limits, its tensor names and
    shapes in the file's header exactly those of that model (checked on a memory-free
    ``meta``-device model), and its bytes those of the digests it carries, so a small file
    asking for a huge model is refused before anything large is allocated and a corrupted
    one is refused before it is used.
    """
    path = Path(path)
    meta = read_meta(path)
    try:
        check_size(meta["arch"], meta["args"])
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
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
    data = path.read_bytes()
    _verified(path, data)
    try:
        state = load_bytes(data)
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
