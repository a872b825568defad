"""Exact tiled inference: super-resolve an image of any size in overlapping LR tiles.

**Receptive radius.** ``receptive_radius(model)`` is the number ``r`` of LR pixels on each
side that one output pixel depends on. It is measured, not only computed: in float64 on a
copy of the model, one LR pixel of a random probe image is changed and the output pixels
that change at all are located (two probes with different images); the furthest one, in LR
pixels, is the spread. The measurement sees every operation, including functional ones
that no module list shows (VDSR's matrix-form MATLAB bicubic upsampling, whose support is
2 LR pixels on each side at integer upscaling). It is floored by an analytic count: the sum
of ``dilation·(k−1)/2`` over every stride-1 ``nn.Conv2d``, divided by the resolution the
convolution runs at (HR convolutions count ``1/scale`` per layer). That floor guards the
measurement against paths the probe happens to leave unused (dead ReLUs, exactly zero
weights); for parallel branches it over-counts, which costs time, never exactness.

**Locality check.** A network is tileable when a window with ``r`` LR pixels of margin
around a tile reproduces the whole-image output there. This is checked in float64 on a
window cut out at an odd offset inside a probe image. Networks
whose output depends on the image size or on the absolute position of a pixel fail it:
RLFN's ESA (a stride-2 convolution, a 7×7 max-pool of stride 3 anchored at the image
origin, then bilinear upsampling to the full feature size) is such a network. They are
refused with :class:`NonLocalModelError`, unless ``allow_approximate`` is given: then the
tiles overlap by a generous margin (``max(32, measured spread)``) and the seams are only
approximately those of the whole-image output.

**Exactness on CPU.** For a tileable network, each window's centre is mathematically the
whole-image output (the float64 check above). Bit-for-bit float32 equality also needs every
operation to round the same way on a window as on the whole image:

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

**Memory.** ``tile_for_memory`` estimates the working memory of one window's forward pass
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

import copy
import logging
import math
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

log = logging.getLogger(__name__)

MEMORY_FACTOR = 5.0
APPROXIMATE_MARGIN = 32  # LR pixels of overlap at least, for networks that are not local
MIN_TILE = 16  # smallest tile tile_for_memory will propose
_PROBE_SIZES = (33, 193)  # first and largest side of the spread probe (grown while filled)
_NATIVE_MAX_NUMEL = 20480  # PyTorch's oneDNN threshold for batch-1 float32 ≤3×3 convolutions
_SHIFT_VARIANT = {
    "max_pool2d",
    "avg_pool2d",
    "lp_pool2d",
    "adaptive_avg_pool2d",
    "adaptive_max_pool2d",
    "fractional_max_pool2d",
    "interpolate",
    "upsample",
    "upsample_bilinear",
    "upsample_nearest",
    "grid_sample",
}


class NonLocalModelError(ValueError):
    """The network's output at a pixel depends on more than a bounded neighbourhood."""


@dataclass(frozen=True)
class ConvSite:
    """One ``nn.Conv2d`` of the model and the resolution it runs at (input size / LR size)."""

    name: str
    in_channels: int
    out_channels: int
    fy: float
    fx: float


@dataclass(frozen=True)
class Locality:
    """What tiling needs to know about a model (see the module docstring)."""

    arch: str
    radius: int | None  # the exact margin; None when the network is not local
    spread: int | None  # measured spread of a one-pixel change; None when it filled the probe
    conv_bound: int  # analytic count over the stride-1 convolutions
    reason: str | None  # why the network is not tileable exactly
    convs: tuple[ConvSite, ...]
    bytes_per_pixel: float  # estimated working memory per LR pixel of a window

    @property
    def exact(self) -> bool:
        return self.radius is not None


@dataclass(frozen=True)
class Tile:
    """One tile: the LR window to run, and where its kept centre goes in the output."""

    window: tuple[slice, slice]  # LR rows, columns fed to the network
    keep: tuple[slice, slice]  # rows, columns of the window's output that are kept
    out: tuple[slice, slice]  # rows, columns of the whole output they fill


_CACHE: weakref.WeakKeyDictionary[nn.Module, Locality] = weakref.WeakKeyDictionary()


def arch_name(model: nn.Module) -> str:
    arch = getattr(model, "litesr_arch", None)
    return arch[0] if arch else type(model).__name__


def receptive_radius(model: nn.Module) -> int:
    """LR pixels on each side that an output pixel depends on (see the module docstring).

    Raises :class:`NonLocalModelError` for networks whose output is not a function of a
    bounded, position-independent neighbourhood (RLFN's ESA).
    """
    info = analyse(model)
    if info.radius is None:
        raise NonLocalModelError(info.reason)
    return info.radius


def analyse(model: nn.Module) -> Locality:
    """Measure (once per model object) the locality, conv layout and memory of ``model``."""
    cached = _CACHE.get(model)
    if cached is None:
        cached = _CACHE[model] = _analyse(model)
    return cached


class _OpRecorder(TorchFunctionMode):
    """Records shift-variant functional ops (pooling, resizing) and the module calling them."""

    def __init__(self, stack: list[str], found: list[tuple[str, str]]) -> None:
        super().__init__()
        self.stack, self.found = stack, found

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in _SHIFT_VARIANT and (name, self.stack[-1]) not in self.found:
            self.found.append((name, self.stack[-1] or "the model"))
        return func(*args, **(kwargs or {}))


@torch.no_grad()
def _analyse(model: nn.Module) -> Locality:
    arch = arch_name(model)
    probe = copy.deepcopy(model).to("cpu", torch.float64).eval()
    stack: list[str] = [""]
    found: list[tuple[str, str]] = []
    convs: dict[str, tuple[nn.Conv2d, tuple[int, int]]] = {}
    first = _PROBE_SIZES[0]
    x = torch.rand(1, 3, first, first, dtype=torch.float64, generator=_gen(0))
    with _OpRecorder(stack, found):
        _trace_convs(probe, x, convs, stack)
    bound, sites = _conv_sites(convs, first)

    spread: int | None = None
    for size in _probe_sizes(bound):
        x = torch.rand(1, 3, size, size + 3, dtype=torch.float64, generator=_gen(size))
        whole = probe(x)
        spread = _spread(probe, x, whole)
        if spread is not None:
            break
    radius: int | None = None
    reason: str | None = None
    if spread is None:
        reason = (
            "a change of one LR pixel changes output pixels at the border of every probe "
            "image (its reach is not bounded)"
        )
    else:
        radius = max(spread, bound)
        if size < 2 * radius + 13:  # the conv bound underestimated: a larger check image
            h, w = 2 * radius + 13, 2 * radius + 16
            x = torch.rand(1, 3, h, w, dtype=torch.float64, generator=_gen(h))
            whole = probe(x)
        diff = _window_mismatch(probe, x, whole, radius)
        if diff > 0:
            reason = (
                f"a tile with a margin of {radius} LR pixels (the measured reach of one "
                f"pixel) differs from the whole-image output by up to {diff:.2g}: the "
                "output depends on the image size or on the position of a pixel"
            )
            radius = None
    if reason is not None:
        where: dict[str, list[str]] = {}
        for op, module in found:
            where.setdefault(op, []).append(module)
        for name, (conv, _) in convs.items():
            if tuple(conv.stride) != (1, 1):
                where.setdefault("strided conv2d", []).append(name)
        if where:
            shown = ", ".join(
                f"{op} in {mods[0]}" + (f" (+{len(mods) - 1} more)" if len(mods) > 1 else "")
                for op, mods in where.items()
            )
            reason += f"; shift-variant operations: {shown}"
        reason = f"{arch} cannot be tiled exactly: {reason}"
    return Locality(
        arch=arch,
        radius=radius,
        spread=spread,
        conv_bound=bound,
        reason=reason,
        convs=sites,
        bytes_per_pixel=_bytes_per_pixel(sites),
    )


def _trace_convs(
    model: nn.Module,
    x: Tensor,
    convs: dict[str, tuple[nn.Conv2d, tuple[int, int]]],
    stack: list[str] | None = None,
) -> None:
    """Run ``model`` on ``x``, recording each ``nn.Conv2d`` and its input size in ``convs``
    and keeping ``stack`` the names of the modules being called."""
    stack = [""] if stack is None else stack
    handles = []
    for name, module in model.named_modules():

        def push(mod, inputs, name=name):
            stack.append(name)
            if isinstance(mod, nn.Conv2d) and name not in convs:
                convs[name] = (mod, tuple(inputs[0].shape[-2:]))

        def pop(mod, inputs, output):
            stack.pop()

        handles += [module.register_forward_pre_hook(push), module.register_forward_hook(pop)]
    try:
        model(x)
    finally:
        for handle in handles:
            handle.remove()


def _bytes_per_pixel(sites: tuple[ConvSite, ...]) -> float:
    """The memory estimate per LR pixel of the module docstring, from the conv layout."""
    widest = max(((s.in_channels + s.out_channels) * s.fy * s.fx * 4 for s in sites), default=24)
    return MEMORY_FACTOR * widest


@torch.no_grad()
def bytes_per_pixel(model: nn.Module) -> float:
    """Estimated working memory per LR pixel of a forward pass (see *Memory*). Cheap: one
    forward pass on a small probe, without the locality measurement of :func:`analyse`."""
    cached = _CACHE.get(model)
    if cached is not None:
        return cached.bytes_per_pixel
    size = _PROBE_SIZES[0]
    param = next(model.parameters(), None)
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    x = torch.rand(1, 3, size, size, generator=_gen(0)).to(_model_device(model), dtype)
    convs: dict[str, tuple[nn.Conv2d, tuple[int, int]]] = {}
    _trace_convs(model, x, convs)
    return _bytes_per_pixel(_conv_sites(convs, size)[1])


def _probe_sizes(bound: int) -> list[int]:
    """Odd probe sides, from one that holds the window check at the analytic bound to a cap."""
    size = max(_PROBE_SIZES[0], 2 * bound + 13) | 1
    cap = max(_PROBE_SIZES[-1], size)
    sizes = [size]
    while sizes[-1] < cap:
        sizes.append(min(cap, 2 * sizes[-1] - 1))
    return sizes


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _conv_sites(
    convs: dict[str, tuple[nn.Conv2d, tuple[int, int]]], size: int
) -> tuple[int, tuple[ConvSite, ...]]:
    """Analytic radius bound and the conv layout, from the convolutions seen on a probe."""
    total = 0.0
    sites = []
    for name, (conv, (h, w)) in convs.items():
        fy, fx = h / size, w / size
        sites.append(ConvSite(name, conv.in_channels, conv.out_channels, fy, fx))
        if tuple(conv.stride) == (1, 1):
            ky, kx = conv.kernel_size
            dy, dx = conv.dilation
            total += max(dy * (ky - 1) / 2 / fy, dx * (kx - 1) / 2 / fx)
    return math.ceil(total - 1e-9), tuple(sites)


def _spread(probe: nn.Module, x: Tensor, base: Tensor) -> int | None:
    """LR distance of the furthest output pixel that a change of the centre pixel of ``x``
    changes (``base`` is ``probe(x)``); None when the change reaches the probe's border."""
    (h, w), scale = x.shape[-2:], int(probe.scale)
    if base.shape[-2:] != (h * scale, w * scale):
        raise ValueError(
            f"{arch_name(probe)}: output {tuple(base.shape[-2:])} for a {h}×{w} input "
            f"is not {scale}× the input; tiling needs a plain upscaling network"
        )
    cy, cx = h // 2, w // 2
    moved = x.clone()
    moved[..., cy, cx] = 1.0 - moved[..., cy, cx]
    changed = (probe(moved) != base).any(dim=1)[0]
    ys, xs = torch.nonzero(changed, as_tuple=True)
    if ys.numel() == 0:
        return 0
    ly, lx = ys // scale, xs // scale
    if ly.min() == 0 or lx.min() == 0 or ly.max() == h - 1 or lx.max() == w - 1:
        return None
    return int(max((ly - cy).abs().max(), (lx - cx).abs().max()))


def _window_mismatch(probe: nn.Module, x: Tensor, whole: Tensor, radius: int) -> float:
    """Largest |tile − whole| on the kept centre of a window of the float64 probe ``x`` (``whole``
    is ``probe(x)``); the window is cut out at an odd offset, away from every image border."""
    core, scale = 5, int(probe.scale)
    y0, x0 = radius + 3, radius + 4
    win = x[..., 3 : y0 + core + radius, 4 : x0 + core + radius]
    n = core * scale
    got = probe(win)[..., radius * scale : radius * scale + n, radius * scale : radius * scale + n]
    ref = whole[..., y0 * scale : y0 * scale + n, x0 * scale : x0 * scale + n]
    diff = (got - ref).abs().max().item()
    # float64 sums may be grouped differently by BLAS at other sizes: 1e-12 is rounding.
    return diff if diff > 1e-12 * max(1.0, ref.abs().max().item()) else 0.0


def _margin(model: nn.Module, radius: int | None, allow_approximate: bool) -> tuple[int, bool]:
    """The overlap to use and whether the result is exact."""
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


def _model_device(model: nn.Module) -> torch.device:
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


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
    if (wh, ww) != (h, w) and _model_device(model).type == "cpu":
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
) -> Iterator[tuple[tuple[slice, slice], Tensor]]:
    """Run ``model`` tile by tile on an N×C×H×W LR tensor; yield (output rows and columns,
    that part of the output). See :func:`tiled_forward`. ``prepare``, if given, maps each
    window to the model's input (an elementwise map, e.g. uint8 to float, keeps exactness);
    ``min_window`` is the smallest window side (:func:`plan_tiles`)."""
    from tqdm.auto import tqdm

    if lr.ndim != 4:
        raise ValueError(f"expected an N×C×H×W tensor, got shape {tuple(lr.shape)}")
    margin, _ = _margin(model, radius, allow_approximate)
    dtype = lr.dtype if prepare is None else prepare(lr[..., :1, :1]).dtype
    tiles = plan_tiles(model, tuple(lr.shape[-2:]), tile, margin, dtype, min_window)
    device = _model_device(model)
    scale = int(model.scale)
    with torch.inference_mode():
        for t in tqdm(tiles, desc=desc, leave=False, disable=not progress or len(tiles) == 1):
            window = lr[(..., *t.window)]
            if prepare is not None:
                window = prepare(window)
            out = model(window.to(device))
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


def tile_for_memory(
    model: nn.Module,
    max_memory_mb: float,
    *,
    image_hw: tuple[int, int] | None = None,
    allow_approximate: bool = False,
) -> int:
    """The largest tile (LR pixels) whose forward pass fits in ``max_memory_mb``.

    The budget is for the memory that the work needs beyond the loaded model (what
    ``litesr.measure.memprobe`` reports as peak − baseline): one window's activations,
    estimated as in the module docstring, plus, when ``image_hw`` is given, the image
    itself (uint8 LR and SR, as ``litesr.tools.upscale`` holds them). When the whole image
    fits, with its float32 input, its longer side is returned (one tile). Raises
    ``ValueError`` when not even a ``MIN_TILE`` tile fits.
    """
    if not (isinstance(max_memory_mb, int | float) and max_memory_mb > 0):
        raise ValueError(f"max memory must be a positive number of MB, got {max_memory_mb!r}")
    per_pixel = bytes_per_pixel(model)
    budget = max_memory_mb * 2**20
    scale = int(model.scale)
    if image_hw is not None:
        h, w = image_hw
        budget -= h * w * (3 + 3 * scale**2)
        if h * w * (per_pixel + 3 * 4) <= budget:
            return max(image_hw)
    margin, _ = _margin(model, None, allow_approximate)
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


def estimate_memory_mb(model: nn.Module, window_hw: tuple[int, int]) -> float:
    """Estimated working memory (MB) of one forward pass on a window of ``window_hw``."""
    return bytes_per_pixel(model) * window_hw[0] * window_hw[1] / 2**20
