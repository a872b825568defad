"""Locality of a super-resolution network: how far an output pixel reaches into the LR image.

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
window cut out at an odd offset inside a probe image. Networks whose output depends on the
image size or on the absolute position of a pixel fail it: RLFN's ESA (a stride-2
convolution, a 7×7 max-pool of stride 3 anchored at the image origin, then bilinear
upsampling to the full feature size) is such a network. They are refused with
:class:`NonLocalModelError`, unless ``allow_approximate`` is given: then the tiles overlap by
a generous margin (``max(32, measured spread)``) and the seams are only approximately those
of the whole-image output (:mod:`litesr.tools.tiles`).

**Cache.** The analysis runs once per model object, and, for a model registered with
:func:`cache_by_file`, once per model file content: it is kept in the cache folder
(:mod:`litesr.tools.cache`, kind ``locality``) under the SHA-256 of the file, so later runs
of ``litesr upscale`` skip it (EDSR 16×64 ×4: seconds per run).
"""

from __future__ import annotations

import copy
import math
import os
import weakref
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

_PROBE_SIZES = (33, 193)  # first and largest side of the spread probe (grown while filled)
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

    @property
    def exact(self) -> bool:
        return self.radius is not None

    def to_json(self) -> dict[str, Any]:
        """The analysis as JSON values (:meth:`from_json` reads it back)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Locality:
        """The analysis written by :meth:`to_json` (``TypeError``/``KeyError`` if it is not)."""
        return cls(**{**data, "convs": tuple(ConvSite(**site) for site in data["convs"])})


LOCALITY_VERSION = 1  # raise when the analysis changes what it finds: cached entries go stale
_CACHE: weakref.WeakKeyDictionary[nn.Module, Locality] = weakref.WeakKeyDictionary()
_FILE_KEYS: weakref.WeakKeyDictionary[nn.Module, str] = weakref.WeakKeyDictionary()


def arch_name(model: nn.Module) -> str:
    """The registry name of ``model``'s architecture, else its class name."""
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


def cache_by_file(model: nn.Module, model_file: str | os.PathLike[str]) -> str:
    """Keep :func:`analyse`'s result for ``model``, loaded from ``model_file``, in the cache
    folder under the SHA-256 of the file's content (see *Cache*); return that SHA-256."""
    from litesr.digest import file_sha256

    key = _FILE_KEYS[model] = file_sha256(model_file)
    return key


def analyse(model: nn.Module) -> Locality:
    """Measure (once per model object, or per model file: see *Cache*) the locality and the
    conv layout of ``model``."""
    cached = _CACHE.get(model)
    if cached is None:
        key = _FILE_KEYS.get(model)
        cached = _read_cached(key) if key else None
        if cached is None:
            cached = _analyse(model)
            if key:
                from litesr.tools import cache

                cache.write_json("locality", f"{key}.json", _stamp(), cached.to_json())
        _CACHE[model] = cached
    return cached


def _stamp() -> dict[str, Any]:
    return {"version": LOCALITY_VERSION, "torch": torch.__version__}


def _read_cached(key: str) -> Locality | None:
    from litesr.tools import cache

    value = cache.read_json("locality", f"{key}.json", _stamp())
    if value is None:
        return None
    try:
        return Locality.from_json(value)
    except (TypeError, KeyError, AttributeError):
        return None


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


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU without either)."""
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


@torch.no_grad()
def conv_layout(model: nn.Module) -> tuple[ConvSite, ...]:
    """The model's convolutions and their resolutions: from :func:`analyse` when it ran,
    else from one forward pass on a small probe, in the model's dtype and on its device."""
    cached = _CACHE.get(model)
    if cached is not None:
        return cached.convs
    size = _PROBE_SIZES[0]
    param = next(model.parameters(), None)
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    x = torch.rand(1, 3, size, size, generator=_gen(0)).to(model_device(model), dtype)
    convs: dict[str, tuple[nn.Conv2d, tuple[int, int]]] = {}
    _trace_convs(model, x, convs)
    return _conv_sites(convs, size)[1]
