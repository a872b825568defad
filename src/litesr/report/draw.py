"""Every report figure by name: what the `litesr figure KIND` command draws."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from litesr.report import ail, figures

FIGURES: dict[str, Callable[..., Path]] = {
    "psnr_vs_cost": figures.psnr_vs_cost,
    "training_curves": figures.training_curves,
    "crops": figures.crops,
    "ail_importance": ail.importance_maps,
    "ail_rounds": ail.round_curves,
    "ail_width": ail.width_figure,
}


def make_figure(kind: str, out: Path, **inputs) -> Path:
    """Draw the figure ``kind`` from ``inputs`` into ``out``."""
    if kind not in FIGURES:
        raise ValueError(f"unknown figure {kind!r}; known: {sorted(FIGURES)}")
    return FIGURES[kind](out=out, **inputs)
