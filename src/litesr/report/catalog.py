"""The catalog of models: what each model file says it is (method, variant, size).

Tables and figures group models by these columns, read from the metadata stored in each
safetensors file, never parsed out of model names.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from litesr.models.store import read_meta
from litesr.tsv import write_tsv

COLUMNS = ["model", "scale", "arch", "method", "variant", "size"]


def catalog(files: list[Path], names: list[str]) -> pd.DataFrame:
    """One row per model file; ``method``/``variant`` are empty for plainly trained models."""
    if len(files) != len(names):
        raise ValueError(f"{len(files)} model files but {len(names)} names")
    rows = []
    for name, path in zip(names, files, strict=True):
        meta = read_meta(path)
        rows.append(
            {
                "model": name,
                "scale": int(meta["args"]["scale"]),
                "arch": meta["arch"],
                "method": meta.get("method", ""),
                "variant": meta.get("variant", ""),
                "size": meta.get("size"),
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS)


def write_catalog(files: list[Path], names: list[str], out: Path) -> Path:
    return write_tsv(catalog(files, names), out)
