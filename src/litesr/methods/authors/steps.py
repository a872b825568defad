"""The ``authors`` method's step: import one release at one scale."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from litesr.digest import file_sha256
from litesr.models.releases import import_weights, release_at
from litesr.tsv import write_tsv


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
    write_tsv(
        pd.DataFrame(
            [{"release": rel.name, "source": str(weights), "sha256": file_sha256(weights)}]
        ),
        log,
        float_format=None,
    )
    return Path(out)
