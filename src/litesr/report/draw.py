"""Every report figure by name: what the `litesr figure KIND` command draws.

The core's figures have plain names; a method's are ``<method>.<name>``, found by the
caller's lookup (the command passes the method registry's): the report imports no method.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from litesr.report import figures

FIGURES: dict[str, Callable[..., Path]] = {
    "psnr_vs_cost": figures.psnr_vs_cost,
    "training_curves": figures.training_curves,
    "crops": figures.crops,
}


def make_figure(
    kind: str,
    out: Path,
    inputs: dict[str, Any],
    method_figure: Callable[[str], Callable[..., Path]] | None = None,
) -> Path:
    """Draw the figure ``kind`` from ``inputs`` into ``out``; a method's figure
    (``<method>.<name>``) is the function ``method_figure(kind)`` returns."""
    if "." in kind:
        if method_figure is None:
            raise ValueError(f"figure {kind!r} is a method's, and no method lookup was given")
        return method_figure(kind)(out=out, **inputs)
    if kind not in FIGURES:
        raise ValueError(f"unknown figure {kind!r}; known: {sorted(FIGURES)} and method.<name>")
    return FIGURES[kind](out=out, **inputs)
