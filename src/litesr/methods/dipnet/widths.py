"""DIPNet's pruned widths rounded to widths that are fast on the cost device
(``prune.widths: latency``; :mod:`litesr.measure.width_latency`).

Each pruned conv of a block keeps :func:`litesr.compress.prune.kept_channels` of its width,
then :func:`~litesr.measure.width_latency.fast_width` rounds that on the latency table of the
layers the width runs through: ``c1_r`` and ``c2_r`` pruned together at one width run
``F → w → w → F``; one of them alone, ``c1_r``: ``F → w → c2_r``'s width, ``c2_r``:
``c1_r``'s width ``→ w → F``. Tables span widths 1 to the current one, on the LR size of a
720p output (the cost table's).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
from torch import nn

from litesr.compress.prune import kept_channels
from litesr.measure.cost import lr_size_for_output
from litesr.measure.width_latency import LayerShape, device_name, fast_width, width_table


def block_shape(
    block: nn.Module, conv: str, convs: Sequence[str], lr_hw: tuple[int, int]
) -> LayerShape:
    """The :class:`LayerShape` that the kept width of ``conv`` (``c1_r`` or ``c2_r``) of an
    RLFN block runs through, when ``convs`` are pruned."""
    c1, c2, c3 = block.c1_r, block.c2_r, block.c3_r
    if set(convs) == {"c1_r", "c2_r"} and c1.out_channels == c2.out_channels:
        return LayerShape(c1.in_channels, c3.out_channels, 3, lr_hw, inner=1)
    producer, consumer = (c1, c2) if conv == "c1_r" else (c2, c3)
    return LayerShape(producer.in_channels, consumer.out_channels, 3, lr_hw)


def exact_kept(model: nn.Module, convs: Sequence[str], ratio: float) -> dict[str, int]:
    """The width each pruned conv of ``model`` keeps without rounding, by conv name."""
    return {
        f"blocks.{i}.{c}": kept_channels(getattr(b, c).out_channels, ratio)
        for i, b in enumerate(model.blocks)
        for c in convs
    }


def widths_after(model: nn.Module, kept: dict[str, int]) -> list[list[int]]:
    """``[c1_r, c2_r]`` widths of each block of ``model`` once pruned to ``kept``."""
    return [
        [kept.get(f"blocks.{i}.{c}", getattr(b, c).out_channels) for c in ("c1_r", "c2_r")]
        for i, b in enumerate(model.blocks)
    ]


class LatencyWidths:
    """Kept widths of one pruning round by latency tables measured on ``device`` with
    ``threads`` threads (the run's cost settings) for a ×``scale`` network; keeps every table
    it used, for the step's record."""

    def __init__(self, scale: int, device: str, threads: int) -> None:
        self.lr_hw = lr_size_for_output(scale=scale)
        self.device, self.threads = device, threads
        self.tables: dict[str, dict[int, float]] = {}

    def kept(self, model: nn.Module, convs: Sequence[str], ratio: float) -> dict[str, int]:
        """The width each pruned conv of ``model`` keeps, by conv name."""
        kept = exact_kept(model, convs, ratio)
        for i, block in enumerate(model.blocks):
            for conv in convs:
                n, name = getattr(block, conv).out_channels, f"blocks.{i}.{conv}"
                shape = block_shape(block, conv, convs, self.lr_hw)
                table = width_table(
                    shape, range(1, n + 1), device=self.device, threads=self.threads
                )
                self.tables[f"{shape.label}, widths 1-{n}"] = table
                kept[name] = fast_width(table, n, kept[name])
        return kept

    def record(self) -> pd.DataFrame:
        """Every table used: one row per layer shape and width, in ms."""
        where = {"device": device_name(self.device), "threads": self.threads}
        rows: list[dict[str, Any]] = [
            {"table": label, "width": w, "ms": ms, **where}
            for label, table in self.tables.items()
            for w, ms in sorted(table.items())
        ]
        return pd.DataFrame(rows)
