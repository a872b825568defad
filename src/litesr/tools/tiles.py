"""Exact tiled inference: super-resolve an image of any size in overlapping LR tiles.

Each tile runs in a window with the network's receptive radius (:mod:`litesr.tools.locality`)
of context on every side; networks that are not local are refused, or tiled approximately
with a generous overlap.

**Exactness on CPU.** For a tileable network, each window's centre is mathematically the
whole-image output (the float64 check of :mod:`litesr.tools.locality`). Bit-for-bit float32
equality also needs every operation to round the same way on a window as on the whole image:

- *Convolutions.* PyTorch picks, per call, between oneDNN and its native im2col+GEMM
  convolution from the input size (batch-1 float32 with kernels up to 3×3: oneDNN only
  when C·H·W > 20480), and the two round differently (about 1e-7). So every window has
  the same size, and the windows are enlarged until every ``nn.Conv2d`` selects, for the
  window, the backend it selects for the whole image (asked of PyTorch itself through
  ``torch._C._select_conv_backend`` on zero-stride expanded tensors, or by the rule above
  where that private function is missing). Within one backend, conv results on CPU do not
  depend on the input size or position (checked up to 1000×1000). Hence EDSR's tiled
  output equals its whole-image output bit for bit (tested, odd sizes, ×2 and ×4).
- *Dense matrix products.* VDSR's bicubic upsampling multiplies by an H×H and a W×W
  matrix; MKL sums such products in blocks of the inner dimension placed by the matrix
  size, so the few non-zero terms of an output pixel are grouped differently for a window
  than for the whole image once the image is a few hundred pixels wide. VDSR's tiles then
  differ from the whole image by float rounding, amplified by the network: about 5e-6 at
  most and, after rounding to uint8, one level in about 2 values in 10^5 (VDSR 64×20 ×3,
  150×211 LR, random weights). Up to about 130 LR pixels a side they are bit-identical
  (tested). Computing the bicubic as a 5-tap convolution per output phase (as
  ``litesr.tools.export`` does) would remove this; that is a change to VDSR itself.

On CUDA, cuDNN picks algorithms by size and uses TF32 by default, so tiled output there
matches the whole-image output only to about 1e-4 (measured on an H100). Convolutions
called functionally (``F.conv2d`` outside an ``nn.Conv2d``) are not seen by the backend
matching.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from litesr.tools.locality import NonLocalModelError, analyse, arch_name, model_device

log = logging.getLogger(__name__)

APPROXIMATE_MARGIN = 32  # LR pixels of overlap at least, for networks that are not local
_NATIVE_MAX_NUMEL = 20480  # PyTorch's oneDNN threshold for batch-1 float32 ≤3×3 convolutions


@dataclass(frozen=True)
class Tile:
    """One tile: the LR window to run, and where its kept centre goes in the output."""

    window: tuple[slice, slice]  # LR rows, columns fed to the network
    keep: tuple[slice, slice]  # rows, columns of the window's output that are kept
    out: tuple[slice, slice]  # rows, columns of the whole output they fill


def overlap(model: nn.Module, radius: int | None, allow_approximate: bool) -> tuple[int, bool]:
    """The overlap (LR pixels) to tile ``model`` with, ``radius`` unless None, and whether
    the result is exact."""
    if radius is not None:
        return int(radius), True
    info = analyse(model)
    if info.radius is not None:
        return info.radius, True
    if not allow_approximate:
        raise NonLocalModelError(
            f"{info.reason}. Run it on the whole image (no tile or memory limit), or allow "
            "approximate tiling (--approximate; allow_approximate=True)"
        )
    margin = max(APPROXIMATE_MARGIN, info.spread or 0)
    log.warning(
        "%s is not local: tiling it approximately with an overlap of %d LR pixels; the "
        "output near tile seams differs slightly from the whole-image output",
        info.arch,
        margin,
    )
    return margin, False


def _backend_key(model: nn.Module, dtype: torch.dtype) -> Callable[[int, int], tuple]:
    """A function (H, W) → the convolution backends the model's convolutions select."""
    info = analyse(model)
    modules = dict(model.named_modules())
    sites = [(modules[s.name], s) for s in info.convs if s.name in modules]
    select = getattr(torch._C, "_select_conv_backend", None)

    def key(h: int, w: int) -> tuple:
        out = []
        for conv, site in sites:
            ch, cw = max(1, round(site.fy * h)), max(1, round(site.fx * w))
            if select is not None and isinstance(conv.padding, tuple):
                weight = conv.weight
                x = torch.empty((1, site.in_channels, 1, 1), dtype=dtype, device=weight.device)
                try:
                    out.append(
                        str(
                            select(
                                x.expand(1, site.in_channels, ch, cw),
                                weight,
                                conv.bias,
                                list(conv.stride),
                                list(conv.padding),
                                list(conv.dilation),
                                False,
                                [0, 0],
                                conv.groups,
                                None,
                            )
                        )
                    )
                    continue
                except (RuntimeError, TypeError):
                    pass
            out.append(site.in_channels * ch * cw > _NATIVE_MAX_NUMEL)
        return tuple(out)

    return key


def plan_tiles(
    model: nn.Module,
    hw: tuple[int, int],
    tile: int,
    margin: int,
    dtype: torch.dtype = torch.float32,
    min_window: int = 1,
) -> list[Tile]:
    """Tiles of at most ``tile``×``tile`` LR pixels (as many per axis as that needs, of equal
    size) covering an H×W image, each run in a window with ``margin`` LR pixels of context
    on every side that has image there.

    All windows have one size, so that every convolution selects the same backend on
    each; the size is grown until that is also the backend it selects on the whole image
    (and the tiles with it: ``tile`` is then a lower bound). No window side is below
    ``min_window`` (the smallest input the model accepts) unless the image's is.
    """
    if isinstance(tile, bool) or not isinstance(tile, int) or tile < 1:
        raise ValueError(f"tile must be a positive number of LR pixels, got {tile!r}")
    h, w = hw
    scale = int(model.scale)
    # Even tiles: ceil(h / tile) of them per axis, as equal as can be (no thin last tile).
    tile_h, tile_w = (math.ceil(n / math.ceil(n / tile)) for n in (h, w))
    wh = min(h, max(tile_h + 2 * margin, min_window))
    ww = min(w, max(tile_w + 2 * margin, min_window))
    if (wh, ww) != (h, w) and model_device(model).type == "cpu":
        key = _backend_key(model, dtype)
        whole = key(h, w)
        while (wh, ww) != (h, w) and key(wh, ww) != whole:
            wh, ww = min(h, wh + 8), min(w, ww + 8)
    # A window grown past tile + 2·margin gets a larger core too: fewer tiles, same memory.
    th = h if wh == h else wh - 2 * margin
    tw = w if ww == w else ww - 2 * margin
    tiles = []
    for y0, y1, wy in _axis(h, th, margin, wh):
        for x0, x1, wx in _axis(w, tw, margin, ww):
            tiles.append(
                Tile(
                    window=(slice(wy, wy + wh), slice(wx, wx + ww)),
                    keep=(
                        slice((y0 - wy) * scale, (y1 - wy) * scale),
                        slice((x0 - wx) * scale, (x1 - wx) * scale),
                    ),
                    out=(slice(y0 * scale, y1 * scale), slice(x0 * scale, x1 * scale)),
                )
            )
    return tiles


def _axis(n: int, tile: int, margin: int, win: int) -> Iterator[tuple[int, int, int]]:
    """(core start, core end, window start) along one axis; the window of length ``win``
    holds the core and ``margin`` pixels each side, clipped to the image, shifted inside."""
    for start in range(0, n, tile):
        end = min(n, start + tile)
        yield start, end, min(max(0, start - margin), n - win)


def iter_tiles(
    model: nn.Module,
    lr: Tensor,
    tile: int,
    *,
    radius: int | None = None,
    allow_approximate: bool = False,
    progress: bool = False,
    desc: str = "tiles",
    prepare: Callable[[Tensor], Tensor] | None = None,
    min_window: int = 1,
    forward: Callable[[Tensor], Tensor] | None = None,
) -> Iterator[tuple[tuple[slice, slice], Tensor]]:
    """Run ``model`` tile by tile on an N×C×H×W LR tensor; yield (output rows and columns,
    that part of the output). See :func:`tiled_forward`. ``prepare``, if given, maps each
    window to the model's input (an elementwise map, e.g. uint8 to float, keeps exactness);
    ``min_window`` is the smallest window side (:func:`plan_tiles`); ``forward``, if given,
    computes each window's output in place of ``model`` (another backend of the same
    network: ``model`` still gives the locality and the plan)."""
    from tqdm.auto import tqdm

    if lr.ndim != 4:
        raise ValueError(f"expected an N×C×H×W tensor, got shape {tuple(lr.shape)}")
    margin, _ = overlap(model, radius, allow_approximate)
    dtype = lr.dtype if prepare is None else prepare(lr[..., :1, :1]).dtype
    tiles = plan_tiles(model, tuple(lr.shape[-2:]), tile, margin, dtype, min_window)
    device = model_device(model)
    scale = int(model.scale)
    with torch.inference_mode():
        for t in tqdm(tiles, desc=desc, leave=False, disable=not progress or len(tiles) == 1):
            window = lr[(..., *t.window)]
            if prepare is not None:
                window = prepare(window)
            out = (forward or model)(window.to(device))
            expected = (window.shape[-2] * scale, window.shape[-1] * scale)
            if tuple(out.shape[-2:]) != expected:
                raise ValueError(
                    f"{arch_name(model)}: output {tuple(out.shape[-2:])} for an input of "
                    f"{tuple(window.shape[-2:])}, not {scale}× the input"
                )
            yield t.out, out[(..., *t.keep)]


def tiled_forward(
    model: nn.Module,
    lr: Tensor,
    tile: int,
    *,
    radius: int | None = None,
    allow_approximate: bool = False,
    progress: bool = False,
) -> Tensor:
    """``model(lr)`` computed in ``tile``×``tile`` LR tiles with overlapping margins.

    The margin is ``receptive_radius(model)`` unless ``radius`` is given. On CPU the result
    of a convolutional network equals the whole-image forward bit for bit (for VDSR, up to
    float rounding of its matrix-form bicubic: see the module docstring); the output is
    kept on ``lr``'s device, each window runs on the model's. Networks that are not local
    raise :class:`NonLocalModelError`, or, with ``allow_approximate``, are tiled with a
    generous overlap (a warning says so).
    """
    out: Tensor | None = None
    n, _, h, w = lr.shape
    scale = int(model.scale)
    for where, part in iter_tiles(
        model, lr, tile, radius=radius, allow_approximate=allow_approximate, progress=progress
    ):
        if out is None:
            out = torch.empty(
                (n, part.shape[1], h * scale, w * scale), dtype=part.dtype, device=lr.device
            )
        out[(..., *where)] = part.to(lr.device)
    assert out is not None
    return out
