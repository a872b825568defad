"""What a model asks for, known before it is built: its size and its smallest input.

:func:`estimate_size` counts a registered architecture's parameters and convolution layers
from its arguments alone, by formula, so a config or a model file asking for a huge network
(``n_feats: 1000000``, ``n_resblocks: 10000000``) is refused at once instead of being built,
even on the memory-free ``meta`` device (building ten million blocks there still takes hours).
:func:`check_size` refuses a model above :data:`MAX_PARAMS` parameters (200 M; the largest
network of the papers, EDSR at 256 features and 32 blocks, has 43 M) or :data:`MAX_LAYERS`
layers; the environment variables ``LITESR_MAX_PARAMS`` and ``LITESR_MAX_LAYERS`` raise them.

:func:`min_input_size` is the smallest LR side a network accepts (RLFN's attention branch
pools a stride-2 convolution's output with a 7×7 window, so it needs 15 pixels): a constant
of the architecture where :data:`MIN_SIDES` knows it, else found by
:func:`probe_min_input_size`, which runs the network on ``meta`` tensors (they check shapes
without computing anything, but their first use imports torch's symbolic-shape machinery,
seconds that parsing the workflow should not spend). The tests check every constant against
the probe.
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch
from torch import nn

from litesr.models import _REGISTRY, arch_of, available, build

MAX_PARAMS = 200_000_000
MAX_LAYERS = 10_000
# The largest LR side the probe tries: a network refusing this much is refused outright.
MAX_PROBE = 4096
# The smallest LR side of each architecture, whatever its arguments (rlfn: its attention's
# stride-2 3×3 conv, then a 7×7 max-pool, needs (side - 3) // 2 + 1 >= 7).
MIN_SIDES = {"edsr": 1, "plain": 1, "rlfn": 15, "span": 1, "vdsr": 1}


@dataclass(frozen=True)
class Size:
    """A network's parameter count and number of convolution layers."""

    params: int
    layers: int

    def __add__(self, other: Size) -> Size:
        return Size(self.params + other.params, self.layers + other.layers)

    def __mul__(self, times: int) -> Size:
        return Size(self.params * times, self.layers * times)


NOTHING = Size(0, 0)


def conv(c_in: int, c_out: int, k: int, bias: bool = True) -> Size:
    """One ``k×k`` convolution from ``c_in`` to ``c_out`` channels."""
    return Size(c_out * c_in * k * k + (c_out if bias else 0), 1)


def _edsr(a: dict[str, Any]) -> Size:
    f, scale = a["n_feats"], a["scale"]
    widths = a["block_widths"]
    body = (
        (conv(f, f, 3) + conv(f, f, 3)) * a["n_resblocks"]
        if widths is None
        else sum((conv(f, w, 3) + conv(w, f, 3) for w in widths), NOTHING)
    )
    upsample = conv(f, 9 * f, 3) if scale == 3 else conv(f, 4 * f, 3) * (scale.bit_length() - 1)
    return conv(3, f, 3) + body + conv(f, f, 3) + upsample + conv(f, 3, 3)


def _rlfn(a: dict[str, Any]) -> Size:
    f, e, bias, expand = a["feature_channels"], a["esa_channels"], a["bias"], a["rrb_expand"]

    def conv3x3(c_in: int, c_out: int) -> Size:
        if expand:  # RepBlock: 3×3 to `expand`, 1×1 back, parallel 1×1
            return (
                conv(c_in, expand, 3, bias)
                + conv(expand, c_out, 1, bias)
                + conv(c_in, c_out, 1, bias)
            )
        return conv(c_in, c_out, 3, bias)

    esa = conv(f, e, 1) + conv(e, e, 1) + conv(e, e, 3) + conv(e, e, 3) + conv(e, f, 1)

    def block(m1: int, m2: int) -> Size:
        return conv3x3(f, m1) + conv3x3(m1, m2) + conv3x3(m2, f) + conv(f, f, 1, bias) + esa

    m = a["mid_channels"]
    widths = a["block_widths"]
    blocks = (
        block(m, m) * a["n_blocks"] if widths is None else sum((block(*w) for w in widths), NOTHING)
    )
    tail = conv(f, f, 3, bias) + conv(f, 3 * a["scale"] ** 2, 3, bias)
    return conv(3, f, 3, bias) + blocks + tail


def _span(a: dict[str, Any]) -> Size:
    f, gain = a["feature_channels"], a["conv3xc_gain"]

    def conv3x3(c_in: int, c_out: int) -> Size:
        if gain:  # Conv3XC: 1×1 to gain·in, 3×3 to gain·out, 1×1 back, parallel 1×1
            return (
                conv(c_in, gain * c_in, 1)
                + conv(gain * c_in, gain * c_out, 3)
                + conv(gain * c_out, c_out, 1)
                + conv(c_in, c_out, 1)
            )
        return conv(c_in, c_out, 3)

    body = conv3x3(f, f) * (3 * a["n_blocks"]) + conv3x3(f, f) + conv(4 * f, f, 1)
    return conv3x3(3, f) + body + conv(f, 3 * a["scale"] ** 2, 3)


def _vdsr(a: dict[str, Any]) -> Size:
    w = a["width"]
    return conv(1, w, 3, False) + conv(w, w, 3, False) * (a["depth"] - 2) + conv(w, 1, 3, False)


def _plain(a: dict[str, Any]) -> Size:
    scale, const = a["scale"], a["const"]
    bias = a["bias"] and not const
    widths = a["widths"] if a["widths"] is not None else [64] * 34 + [3 * scale * scale]
    factors = a["factors"] if a["factors"] is not None else [1] * (len(widths) - 1) + [scale]
    total, channels = NOTHING, a["in_channels"]
    for width, f in zip(widths, factors, strict=False):
        total += conv(channels, width, 3, bias) + Size(9 * width if const else 0, 0)
        channels = width // max(f * f, 1)
    return total


# One formula per registered architecture, from its full arguments (defaults filled in). An
# architecture registered elsewhere adds its own here; one without a formula is refused.
FORMULAS: dict[str, Callable[[dict[str, Any]], Size]] = {
    "edsr": _edsr,
    "rlfn": _rlfn,
    "span": _span,
    "vdsr": _vdsr,
    "plain": _plain,
}


# The architecture arguments that are not counts of channels, layers or blocks (or lists of
# them): every other argument of every formula must be a whole number, not negative.
NOT_COUNTS = frozenset({"res_scale", "bias", "acts", "const"})


def _bound(arch: str, args: dict[str, Any]) -> dict[str, Any]:
    """``args`` bound to ``arch``'s constructor, defaults filled in."""
    if arch not in _REGISTRY:
        raise ValueError(f"unknown model arch {arch!r}; available: {', '.join(available())}")
    signature = inspect.signature(_REGISTRY[arch])
    try:
        bound = signature.bind(**args)
    except TypeError as err:
        raise ValueError(
            f"bad arguments for model arch {arch!r}: {err}; signature: {arch}{signature}"
        ) from None
    bound.apply_defaults()
    return dict(bound.arguments)


def _ints(value: Any) -> bool:
    """Whether ``value`` is an integer, or a (nested) list of them."""
    if isinstance(value, list | tuple):
        return all(_ints(v) for v in value)
    return isinstance(value, int) and not isinstance(value, bool)


def estimate_size(arch: str, args: dict[str, Any]) -> Size:
    """Parameters and convolution layers of ``build(arch, **args)``, without building it."""
    full = _bound(arch, args)
    if arch not in FORMULAS:
        raise ValueError(f"model arch {arch!r} has no size formula in litesr.models.limits")
    wrong = sorted(
        k for k, v in full.items() if k not in NOT_COUNTS and v is not None and not _ints(v)
    )
    if wrong:
        raise ValueError(
            f"model arch {arch!r}: {', '.join(f'{k}={full[k]!r}' for k in wrong)} must be "
            "whole numbers"
        )
    if any(v < 0 for v in _flat(full, NOT_COUNTS)):
        raise ValueError(f"model arch {arch!r}: negative sizes in {args}")
    return FORMULAS[arch](full)


def _flat(full: dict[str, Any], skip: frozenset[str]) -> list[int]:
    out: list[int] = []
    stack = [v for k, v in full.items() if k not in skip and v is not None]
    while stack:
        value = stack.pop()
        if isinstance(value, list | tuple):
            stack.extend(value)
        else:
            out.append(value)
    return out


def _limit(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{name}={text!r} is not a whole number") from None


def check_size(arch: str, args: dict[str, Any]) -> Size:
    """:func:`estimate_size`, refused (``ValueError``) above the parameter or layer limit."""
    size = estimate_size(arch, args)
    max_params = _limit("LITESR_MAX_PARAMS", MAX_PARAMS)
    max_layers = _limit("LITESR_MAX_LAYERS", MAX_LAYERS)
    if size.params > max_params or size.layers > max_layers:
        raise ValueError(
            f"model {arch}{_short(args)} would have {size.params:,} parameters in "
            f"{size.layers:,} layers; the limit is {max_params:,} parameters and "
            f"{max_layers:,} layers (LITESR_MAX_PARAMS and LITESR_MAX_LAYERS raise it)"
        )
    return size


def _short(args: dict[str, Any]) -> str:
    text = json.dumps(args, sort_keys=True, default=str)
    return text if len(text) <= 200 else text[:200] + "...}"


def min_input_size(arch: str, args: dict[str, Any]) -> int:
    """The smallest LR side (in pixels, square input) that ``build(arch, **args)`` accepts.

    ``args`` are ``build``'s keyword arguments, ``scale`` included. The model is sized first
    (:func:`check_size`); the side is :data:`MIN_SIDES`' constant for the architecture, or
    else :func:`probe_min_input_size`'s.
    """
    check_size(arch, args)
    return MIN_SIDES[arch] if arch in MIN_SIDES else probe_min_input_size(arch, args)


def probe_min_input_size(arch: str, args: dict[str, Any]) -> int:
    """The smallest LR side ``build(arch, **args)`` runs on, found on ``meta`` tensors: the
    model is run at doubling sides until one passes, then bisected down to the smallest that
    does. ``ValueError`` when no side up to :data:`MAX_PROBE` passes."""
    check_size(arch, args)
    return _min_side(arch, json.dumps(args, sort_keys=True))


@lru_cache(maxsize=256)
def _min_side(arch: str, args_json: str) -> int:
    args = json.loads(args_json)
    with torch.device("meta"):
        model = build(arch, **args)
    channels = args.get("in_channels", 3)

    def fits(side: int) -> bool:
        try:
            with torch.no_grad():
                model(torch.empty(1, channels, side, side, device="meta"))
        except (RuntimeError, ValueError):
            return False
        return True

    high = 1
    while not fits(high):
        if high >= MAX_PROBE:
            raise ValueError(f"model {arch}{_short(args)} accepts no input up to {MAX_PROBE} px")
        high *= 2
    low = high // 2  # fails (or is 0)
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if fits(mid) else (mid, high)
    return high


def min_input_size_of(model: nn.Module) -> int:
    """:func:`min_input_size` of a model made by :func:`litesr.models.build`."""
    return min_input_size(*arch_of(model))
