"""Atomic TSV writing shared by every step that produces a table."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd


def write_tsv(table: pd.DataFrame, path: Path, float_format: str | None = "%.6f") -> Path:
    """Write ``table`` as TSV to a temporary name, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    table.to_csv(tmp, sep="\t", index=False, float_format=float_format)
    os.replace(tmp, path)
    return path
