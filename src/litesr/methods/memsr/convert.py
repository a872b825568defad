"""Exact conversion of an EDSR teacher into a plain network (conv 3×3 + ReLU, no skips).

The teacher is first written as a list of :class:`Affine` layers on *true* feature values:
``v_out = conv3×3(v_in, W) + b`` (zero padding, as in the teacher), then a ReLU on the
channels where the teacher has one, then an optional PixelShuffle. Skips become identity
kernels: a residual block is two layers, the first carrying ``out`` and the global skip
``h`` beside the block's hidden ReLU features, the second adding ``out`` (and carrying
``h``); the mean subtraction (a 1×1 conv without activation) is folded into the head conv.

The plain network stores ``s = v + o·1_in`` for an offset ``o`` per channel (0 on ReLU
channels) and a constant channel ``1_in`` (1 on the image, 0 in the zero padding). Then:

- ``ReLU(v + o) = v + o`` wherever ``v > -o``: linear channels pass the plain ReLU unchanged;
- a layer reading stored values computes ``W * v = W * s - (Σ_c o_c W_c) * 1_in``: the
  constant channel's full 3×3 kernel ``-Σ_c o_c W_c`` removes the offsets *including at the
  borders*, because ``1_in`` is zero-padded exactly as the true features are;
- the bias and the new offset go to the constant channel's centre tap (always inside);
- the constant channel re-makes itself (centre tap 1, ReLU(1) = 1), ``f²`` times before a
  PixelShuffle by ``f`` so that the shuffle yields one constant channel again; the first
  layer makes it from its bias, the last drops it.

Offsets: a per-layer power of two ``≥ margin · max(-v)`` seen on calibration inputs
(``offset="auto"``), or one constant for every linear channel (e.g. 1000). In float32 a
stored value near ``o`` carries a rounding error near ``o · 2⁻²⁴`` that the correction does
not remove, so ``o`` should be as small as the activations allow (see ``convert``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from litesr.models import build
from litesr.models.edsr import EDSR, ResBlock

SUPPORTED = (EDSR, ResBlock, nn.Sequential, nn.ModuleList, nn.ReLU, nn.PixelShuffle, nn.Conv2d)


@dataclass
class Affine:
    """One plain layer on true values: conv 3×3 ``W`` (out, in, 3, 3) + ``b``, a ReLU on the
    ``relu`` channels, then PixelShuffle by ``factor``; ``in_shift`` is added to the true
    input before the conv (the folded mean subtraction, per input channel)."""

    W: Tensor
    b: Tensor
    relu: Tensor
    factor: int = 1
    in_shift: Tensor | None = None

    def __call__(self, v: Tensor) -> Tensor:
        if self.in_shift is not None:
            v = v + self.in_shift.view(1, -1, 1, 1)
        y = F.conv2d(v, self.W, self.b, padding=1)
        y = torch.where(self.relu.view(1, -1, 1, 1), y.clamp_min(0), y)
        return F.pixel_shuffle(y, self.factor) if self.factor > 1 else y


def _identity(channels: int) -> Tensor:
    eye = torch.zeros(channels, channels, 3, 3, dtype=torch.float64)
    eye[:, :, 1, 1] = torch.eye(channels, dtype=torch.float64)
    return eye


def _w(conv: nn.Conv2d) -> tuple[Tensor, Tensor]:
    if conv.kernel_size != (3, 3) or conv.stride != (1, 1) or conv.padding != (1, 1):
        raise ValueError(f"plain conversion needs 3×3 stride-1 convolutions, got {conv}")
    bias = conv.bias if conv.bias is not None else torch.zeros(conv.out_channels)
    return conv.weight.detach().double(), bias.detach().double()


def _blocks(rows: list[list[Tensor | None]], widths_in: list[int]) -> Tensor:
    """Assemble a kernel from blocks: ``rows[i][j]`` maps input group j to output group i."""
    out = []
    for row in rows:
        height = next(t.shape[0] for t in row if t is not None)
        out.append(
            torch.cat(
                [
                    t if t is not None else torch.zeros(height, w, 3, 3, dtype=torch.float64)
                    for t, w in zip(row, widths_in, strict=True)
                ],
                dim=1,
            )
        )
    return torch.cat(out, dim=0)


def edsr_affines(model: EDSR) -> list[Affine]:
    """EDSR as affine layers on true values: lift, head, two per block, body end, upsampler
    convs (with their shuffles), tail."""
    nf = model.head.out_channels
    zeros = torch.zeros
    mean = model.rgb_mean.detach().double().flatten()
    relu = lambda *groups: torch.cat(  # noqa: E731
        [torch.full((n,), flag, dtype=torch.bool) for n, flag in groups]
    )
    layers = [Affine(_identity(3), zeros(3, dtype=torch.float64), relu((3, False)))]
    hw, hb = _w(model.head)
    layers.append(Affine(hw, hb, relu((nf, False)), in_shift=-mean))
    eye = _identity(nf)
    for j, block in enumerate(model.body):
        w1, b1 = _w(block.body[0])
        w2, b2 = _w(block.body[2])
        if j == 0:  # the input is h alone; `out` and `h` are both read from it
            rows = [[w1], [eye], [eye]]
            widths = [nf]
        else:
            rows = [[w1, None], [eye, None], [None, eye]]
            widths = [nf, nf]
        bias_a = torch.cat([b1, zeros(2 * nf, dtype=torch.float64)])
        layers.append(Affine(_blocks(rows, widths), bias_a, relu((nf, True), (2 * nf, False))))
        rs = float(block.res_scale)
        rows_b = [[rs * w2, eye, None], [None, None, eye]]
        bias_b = torch.cat([rs * b2, zeros(nf, dtype=torch.float64)])
        layers.append(Affine(_blocks(rows_b, [nf] * 3), bias_b, relu((2 * nf, False))))
    ew, eb = _w(model.body_end)
    rows_c = [[ew, eye]] if len(model.body) else [[ew + eye]]
    layers.append(Affine(_blocks(rows_c, [nf] * len(rows_c[0])), eb, relu((nf, False))))
    convs = [m for m in model.upsample if isinstance(m, nn.Conv2d)]
    shuffles = [m.upscale_factor for m in model.upsample if isinstance(m, nn.PixelShuffle)]
    for conv, f in zip(convs, shuffles, strict=True):
        uw, ub = _w(conv)
        layers.append(Affine(uw, ub, relu((uw.shape[0], False)), factor=f))
    tw, tb = _w(model.tail)
    layers.append(Affine(tw, tb + mean, relu((3, False))))
    return layers


def edsr_acts(model: EDSR) -> list[str]:
    """The teacher's own activation per plain layer: ``"relu"`` where EDSR has one (each
    block's first conv), ``"identity"`` elsewhere (lift, head, each block's second conv, body
    end, upsampler, tail); what the authors' student copies."""
    return ["relu" if bool(layer.relu.any()) else "identity" for layer in edsr_affines(model)]


def check_convertible(model: nn.Module) -> None:
    """Refuse a network with a layer that has no exact plain form, naming the layer."""
    bad = [
        f"{name} ({type(m).__name__})"
        for name, m in model.named_modules()
        if name and not isinstance(m, SUPPORTED)
    ]
    if bad or not isinstance(model, EDSR):
        arch = getattr(model, "litesr_arch", (type(model).__name__,))[0]
        raise ValueError(
            f"cannot convert {arch} to a plain network: layer {bad[0] if bad else '(root)'} "
            "has no exact plain form (the converter knows EDSR: 3×3 convs, ReLU, residual "
            "blocks, the mean shift and the PixelShuffle upsampler)"
            + (f"; other such layers: {', '.join(bad[1:4])}" if len(bad) > 1 else "")
        )


@torch.no_grad()
def auto_offsets(layers: list[Affine], calibration: Tensor, margin: float = 4.0) -> list[float]:
    """Per layer, the smallest power of two ``≥ margin · max(-v)`` over the linear channels
    of its output on ``calibration`` (0 where they are never negative); the last layer's
    offset is 0."""
    v = calibration.double()
    offsets = []
    for layer in layers:
        v = layer(v)
        linear = ~layer.relu
        pre = v if layer.factor == 1 else F.pixel_unshuffle(v, layer.factor)
        low = float(pre[:, linear].min()) if linear.any() else 0.0
        offsets.append(0.0 if low >= 0 else 2.0 ** math.ceil(math.log2(margin * -low)))
    offsets[-1] = 0.0
    return offsets


def assemble(
    layers: list[Affine], offsets: list[float], scale: int, dtype: torch.dtype = torch.float32
) -> nn.Module:
    """The plain network (arch ``plain``, parameters in ``dtype``) storing ``v + offset`` on
    linear channels."""
    widths, factors, weights, biases = [], [], [], []
    o_in = torch.zeros(layers[0].W.shape[1], dtype=torch.float64)
    last = len(layers) - 1
    for i, (layer, offset) in enumerate(zip(layers, offsets, strict=True)):
        W, n_out, f = layer.W, layer.W.shape[0], layer.factor
        o_out = torch.where(layer.relu, 0.0, offset).double() if i < last else torch.zeros(n_out)
        o_out = o_out.double()
        shift = o_in if layer.in_shift is None else o_in - layer.in_shift
        n_const = f * f if i < last else 0
        weight = torch.zeros(n_out + n_const, W.shape[1] + (i > 0), 3, 3, dtype=torch.float64)
        bias = torch.zeros(n_out + n_const, dtype=torch.float64)
        weight[:n_out, : W.shape[1]] = W
        if i == 0:  # no constant channel yet: biases are true biases, shift must be 0
            if shift.abs().max() > 0:
                raise ValueError("the first plain layer cannot shift its input")
            bias[:n_out] = layer.b + o_out
            bias[n_out:] = 1.0
        else:
            const = weight[:n_out, -1]
            const -= torch.einsum("oikl,i->okl", W, shift)
            const[:, 1, 1] += layer.b + o_out
            weight[n_out:, -1, 1, 1] = 1.0
        weights.append(weight)
        biases.append(bias)
        widths.append(n_out + n_const)
        factors.append(f)
        o_in = o_out.view(-1, f * f)[:, 0] if f > 1 else o_out
    plain = build("plain", scale=scale, widths=widths, factors=factors).to(dtype)
    for conv, weight, bias in zip(plain.convs, weights, biases, strict=True):
        conv.weight.data.copy_(weight)
        conv.bias.data.copy_(bias)
    return plain


def convert(
    model: nn.Module,
    *,
    offset: float | str = "auto",
    calibration: Tensor | None = None,
    margin: float = 4.0,
    dtype: torch.dtype = torch.float32,
) -> tuple[nn.Module, list[float]]:
    """The plain network computing ``model``'s function, and the offsets used per layer.

    ``offset="auto"`` sizes each layer's offset from ``calibration`` (images in [0, 1];
    default: uniform noise) with ``margin``; a number uses it for every linear channel
    (the authors' B = 1000). The lift layer's offset is 0 when the calibration input is
    non-negative, so the network is exact for images (inputs ≥ 0). The weights are
    composed in float64 and stored in ``dtype`` (float64 to check the algebra exactly).
    """
    check_convertible(model)
    layers = edsr_affines(model)
    if offset == "auto":
        if calibration is None:
            calibration = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
        offsets = auto_offsets(layers, calibration, margin)
    else:
        offsets = [float(offset)] * (len(layers) - 1) + [0.0]
    return assemble(layers, offsets, int(model.scale), dtype), offsets
