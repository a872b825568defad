"""The ``authors`` method's steps: import one release, or copy one model file, at one scale."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from litesr.atomic import atomic_path
from litesr.digest import file_sha256
from litesr.models.releases import import_weights, release_at
from litesr.models.store import load_model
from litesr.tsv import write_tsv


def _log_source(log: Path, weights: Path, **row: str) -> None:
    """The step's log: one row naming where the model came from, with the file's SHA-256."""
    write_tsv(pd.DataFrame([{**row, "sha256": file_sha256(weights)}]), log, float_format=None)


def import_release(
    *,
    release: str,
    weights: Path,
    scale: int,
    out: Path,
    log: Path,
    stages: Path | None = None,
    device: str = "cpu",
) -> Path:
    """``weights`` (the file of release or family ``release`` at ``scale``) as the model
    ``out``; ``log`` gets a one-row TSV naming the source and its SHA-256 (nothing is
    trained). ``stages`` and ``device`` are accepted for the step interface and unused."""
    rel = release_at(release, scale)
    weights = Path(weights)
    if weights.name != rel.file:
        raise ValueError(f"{weights}: release {release!r} at ×{scale} is the file {rel.file}")
    import_weights(rel.name, weights.parent, scale, out)
    _log_source(log, weights, release=rel.name, source=str(weights))
    return Path(out)


def copy_file(
    *,
    weights: Path,
    scale: int,
    out: Path,
    log: Path,
    stages: Path | None = None,
    device: str = "cpu",
) -> Path:
    """The litesr model file ``weights`` as the model ``out``, byte for byte, once it loads
    (its digests, its size limits) and serves ``scale``; ``log`` gets a one-row TSV naming
    the source and its SHA-256. ``stages`` and ``device`` are accepted for the step
    interface and unused."""
    weights = Path(weights)
    model, _ = load_model(weights)
    if int(model.scale) != scale:
        raise ValueError(f"{weights}: the model is ×{int(model.scale)}, not ×{scale}")
    with atomic_path(out) as tmp:
        shutil.copyfile(weights, tmp)
    _log_source(log, weights, file=str(weights))
    return Path(out)
