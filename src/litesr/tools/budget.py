"""Running within a memory budget: the largest tile whose forward pass fits.

``tile_for_memory`` estimates the working memory of one window's forward pass
as ``MEMORY_FACTOR × widest × window pixels``, where ``widest`` is the largest
``(C_in + C_out) · (resolution factor)² · 4`` bytes per LR pixel over the convolutions
(the input and output of the widest layer, seen with hooks on the probe). The factor, 5,
covers what is alive beside it (skip connections, the pixel-shuffle copy, oneDNN's blocked
copies of activations, the tile's conversion to uint8) and allocator slack. It is
calibrated on forward passes measured as ``litesr.measure.memprobe`` measures them (peak −
baseline RSS, fresh process): on whole images of 200×300 and 400×400 LR pixels the
measured/widest ratio was 2.7–4.2 for EDSR (4×32, 2×16, 16×64 ×4) and 2.1 for VDSR, and up
to about 5 for tiled runs. RLFN's ESA keeps many more small tensors (ratio 8): for it, with
``allow_approximate``, the estimate is about 60 % of the real need.
``benchmarks/bench_tiling.py`` prints estimate and measurement side by side.
"""

from __future__ import annotations

import math

from torch import nn

from litesr.tools.locality import arch_name, conv_layout
from litesr.tools.tiles import overlap

MEMORY_FACTOR = 5.0
MIN_TILE = 16  # smallest tile tile_for_memory will propose


def bytes_per_pixel(model: nn.Module) -> float:
    """Estimated working memory per LR pixel of a forward pass (see *Memory*). Cheap: one
    forward pass on a small probe, without the locality measurement (when that was done,
    its conv layout is reused)."""
    sites = conv_layout(model)
    widest = max(((s.in_channels + s.out_channels) * s.fy * s.fx * 4 for s in sites), default=24)
    return MEMORY_FACTOR * widest


def tile_for_memory(
    model: nn.Module,
    max_memory_mb: float,
    *,
    image_hw: tuple[int, int] | None = None,
    allow_approximate: bool = False,
    memory_ratio: float = 1.0,
) -> int:
    """The largest tile (LR pixels) whose forward pass fits in ``max_memory_mb``.

    The budget is for the memory that the work needs beyond the loaded model (what
    ``litesr.measure.memprobe`` reports as peak − baseline): one window's activations,
    estimated as in the module docstring, plus, when ``image_hw`` is given, the image
    itself (uint8 LR and SR, as ``litesr.tools.upscale`` holds them). When the whole image
    fits, with its float32 input, its longer side is returned (one tile). ``memory_ratio``
    scales the activations' estimate for a backend that needs more than torch
    (``litesr.tools.backends.ORT_MEMORY_RATIO``). Raises ``ValueError`` when not even a
    ``MIN_TILE`` tile fits.
    """
    if not (isinstance(max_memory_mb, int | float) and max_memory_mb > 0):
        raise ValueError(f"max memory must be a positive number of MB, got {max_memory_mb!r}")
    per_pixel = bytes_per_pixel(model) * memory_ratio
    budget = max_memory_mb * 2**20
    scale = int(model.scale)
    if image_hw is not None:
        h, w = image_hw
        budget -= h * w * (3 + 3 * scale**2)
        if h * w * (per_pixel + 3 * 4) <= budget:
            return max(image_hw)
    margin, _ = overlap(model, None, allow_approximate)
    tile = math.isqrt(max(0, int(budget / per_pixel))) - 2 * margin
    if tile < MIN_TILE:
        need = per_pixel * (MIN_TILE + 2 * margin) ** 2 / 2**20
        image_mb = max_memory_mb - budget / 2**20
        extra = f" plus {image_mb:.0f} MB for the image" if image_mb >= 0.5 else ""
        raise ValueError(
            f"a memory limit of {max_memory_mb:g} MB is too small for {arch_name(model)}: a "
            f"{MIN_TILE}-pixel tile with its {margin}-pixel margins needs about "
            f"{need:.0f} MB{extra}"
        )
    return tile
