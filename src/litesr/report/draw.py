"""Every report figure by name: what the `litesr figure KIND` command draws.

The core's figures have plain names; a method's are ``<method>.<name>`` and come from the
method registry.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from litesr.methods.registry import entry
from litesr.report import figures

FIGURES: dict[str, Callable[..., Path]] = {
    "psnr_vs_cost": figures.psnr_vs_cost,
    "training_curves": figures.training_curves,
    "crops": figures.crops,
}


def make_figure(kind: str, out: Path, **inputs) -> Path:
    """Draw the figure ``kind`` from ``inputs`` into ``out``."""
    if "." in kind:
        return entry("figures", kind)(out=out, **inputs)
    if kind not in FIGURES:
        raise ValueError(f"unknown figure {kind!r}; known: {sorted(FIGURES)} and method.<name>")
    return FIGURES[kind](out=out, **inputs)
