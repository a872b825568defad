"""Width choice by measured latency: the rounding rule on synthetic tables, and one tiny
table measured on CPU and read back from the cache folder."""

from __future__ import annotations

import pytest

from litesr.measure import width_latency
from litesr.measure.width_latency import (
    LayerShape,
    cost_target,
    fast_width,
    monotone,
    width_table,
)


def padded(block: int = 16, top: int = 64) -> dict[int, float]:
    """ms per width when channels are computed in blocks of ``block``: 1–16 cost 1, 17–32
    cost 2 ... (plus a small rise within a block, under the tolerance)."""
    return {w: -(-w // block) + 0.001 * ((w - 1) % block) for w in range(1, top + 1)}


@pytest.mark.parametrize(
    ("current", "target", "expected"),
    [
        (55, 38, 48),  # 38 costs what 48 does, and 48 is faster than 55 (block 64)
        (48, 33, 32),  # 33 saves nothing against 48: step down to the next faster width
        (32, 22, 16),
        (64, 44, 48),
        (48, 16, 16),  # already on a block: kept
        (48, 48, 48),  # nothing to prune
        (16, 11, 11),  # nothing faster than 16: the exact width
    ],
)
def test_fast_width_rounds_to_the_widest_width_of_the_targets_cost(current, target, expected):
    assert fast_width(padded(), current, target) == expected


def test_fast_width_on_a_smooth_table_stays_within_the_tolerance():
    linear = {w: float(w) for w in range(1, 65)}
    assert fast_width(linear, 55, 38) == 39  # 39 ≤ 38 · 1.05 < 40
    assert fast_width(linear, 55, 38, tolerance=0.0) == 38


def test_one_noisy_width_does_not_move_the_pick():
    noisy = padded() | {40: 1.0}  # 33-48 cost 3; 40 measured fast by chance
    assert fast_width(noisy, 48, 20) == 32
    assert monotone({1: 1.0, 2: 3.0, 3: 1.0, 4: 4.0}) == {1: 1.0, 2: 2.0, 3: 2.0, 4: 4.0}
    assert monotone(padded()) == padded()


def test_fast_width_needs_both_widths_in_the_table():
    with pytest.raises(ValueError, match=r"no width \[70\]"):
        fast_width(padded(), 70, 40)


def test_cost_target_follows_the_cost_section():
    assert cost_target({}) == {"device": "cpu", "threads": 1}
    assert cost_target({"device": "auto", "threads": 2}) == {"device": "cpu", "threads": 2}
    assert cost_target({"device": "cuda"}) == {"device": "cuda", "threads": 1}


def test_a_measured_table_is_cached_and_read_back(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # never the user's ~/.cache
    shape = LayerShape(8, 8, 3, (16, 16), inner=1)
    assert shape.label == "8-w-w-8_k3_16x16"
    table = width_table(shape, [4, 8, 12], repeats=1)
    assert sorted(table) == [4, 8, 12] and all(ms > 0 for ms in table.values())
    [entry] = (tmp_path / "litesr" / "widths").iterdir()
    assert entry.name.startswith("8-w-w-8_k3_16x16-cpu-1t-")

    def no_timing(*args, **kwargs):
        raise AssertionError("measured again instead of read from the cache")

    monkeypatch.setattr(width_latency, "measure_widths", no_timing)
    assert width_table(shape, [12, 8, 4], repeats=1) == table
    with pytest.raises(AssertionError, match="measured again"):
        width_table(shape, [4, 8, 12], threads=2, repeats=1)  # another key
