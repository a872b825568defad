"""Atomic TSV writing shared by every step that produces a table."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from litesr.atomic import atomic_path


def write_tsv(
    table: pd.DataFrame, path: str | os.PathLike[str], float_format: str | None = "%.6f"
) -> Path:
    """Write ``table`` as TSV to a unique temporary name beside ``path``, then rename it into
    place (with the permissions the umask gives)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        table.to_csv(tmp, sep="\t", index=False, float_format=float_format)
    return path
