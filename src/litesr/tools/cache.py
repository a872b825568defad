"""A per-user cache of what ``litesr upscale`` learns about a model file, kept between runs.

Entries are keyed by the SHA-256 of the model file's content (a copy or a rename of the file
hits the same entry; an edited file misses), live in ``$XDG_CACHE_HOME/litesr`` (else
``~/.cache/litesr``) in one folder per kind, and are written atomically
(:func:`litesr.atomic.atomic_path`): a killed run never leaves half an entry. An entry that
cannot be read back (damaged, or written by another version: each kind stores its own
version and the versions it depends on) is ignored and computed again. A cache folder that
cannot be written costs time, never the run: a warning says so, once.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from litesr.atomic import atomic_path

log = logging.getLogger(__name__)

_warned: set[str] = set()


def cache_dir() -> Path:
    """The cache folder: ``$XDG_CACHE_HOME/litesr``, else ``~/.cache/litesr``."""
    base = os.environ.get("XDG_CACHE_HOME") or ""
    root = Path(base) if os.path.isabs(base) else Path.home() / ".cache"  # spec: absolute only
    return root / "litesr"


def entry_path(kind: str, name: str) -> Path:
    """Where the entry ``name`` of ``kind`` (a sub-folder: ``locality``, ``onnx`` ...) lives."""
    return cache_dir() / kind / name


def read_json(kind: str, name: str, stamp: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON entry ``name`` of ``kind`` when it was written with this ``stamp`` (the
    versions it depends on), else None (missing, damaged or stale)."""
    path = entry_path(kind, name)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        log.warning("cache entry %s is unreadable (%s); computing it again", path, err)
        return None
    if not isinstance(data, dict) or data.get("stamp") != stamp or "value" not in data:
        return None
    return data["value"]


def write_json(kind: str, name: str, stamp: dict[str, Any], value: dict[str, Any]) -> None:
    """Write the JSON entry ``name`` of ``kind`` atomically; a warning (once per folder), not
    an error, when the cache folder cannot be written."""
    path = entry_path(kind, name)
    try:
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps({"stamp": stamp, "value": value}, indent=1))
    except OSError as err:
        warn_unwritable(path.parent, err)


def warn_unwritable(folder: Path, err: OSError) -> None:
    """Say once per folder that the cache could not be written there."""
    if str(folder) not in _warned:
        _warned.add(str(folder))
        log.warning(
            "cannot write the cache folder %s (%s): results are not kept for the next run",
            folder,
            err.strerror or err,
        )
