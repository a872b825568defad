"""The order test sets are reported in: the field's benchmarks in the order its papers print
them (Set5, Set14, B100, Urban100, Manga109), then any other set by name, its digits read as
numbers (so a folder of ``Set5`` and ``Set14`` reads as in a paper, not alphabetically)."""

from __future__ import annotations

import re
from collections.abc import Iterable

FIELD_ORDER = ("Set5", "Set14", "B100", "BSD100", "Urban100", "Manga109")


def set_key(name: str) -> tuple:
    """Sort key of a set name: its place in :data:`FIELD_ORDER`, then the name with digits
    as numbers (strings and numbers alternate, so two keys always compare)."""
    rank = FIELD_ORDER.index(name) if name in FIELD_ORDER else len(FIELD_ORDER)
    return (rank, *(int(t) if i % 2 else t for i, t in enumerate(re.split(r"(\d+)", name))))


def in_set_order(names: Iterable[str]) -> list[str]:
    """The distinct ``names`` in report order."""
    return sorted(set(names), key=set_key)


def column_key(column: tuple | str) -> tuple:
    """Sort key of a table column by set then scale: a ``(set, scale)`` pair (the scale an
    int or ``×4``) or its label ``"Set5 ×4"``."""
    name, scale = column if isinstance(column, tuple) else str(column).rsplit(" ×", 1)
    return (set_key(name), int(str(scale).lstrip("×")))
