"""A plain SR network (MemSR, Wu et al., ICML 2022): 3×3 convolutions and ReLUs, no skips.

Layer ``i`` is a 3×3 convolution to ``widths[i]`` channels, its activation ``acts[i]``
(``"relu"`` or ``"identity"``; by default ReLU on every layer except the last) and, where
``factors[i] > 1``, a PixelShuffle by that factor. By default only the last
layer shuffles, by ``scale``, and its width must then be ``3 · scale²`` (the usual student
shape); the default widths are MemSR's student of an EDSR-baseline teacher (34 hidden layers
of 64 channels: head, two per block, body end). With ``factors`` the exact plain form of
EDSR keeps its sub-pixel upsampler (conv, shuffle, conv, shuffle, conv) and can be rebuilt
from its arguments.

With ``const`` every layer reads a constant channel instead of having a bias, as MemSR's
authors build their students: a ones channel, zero-padded like the features, whose 3×3
kernel (``consts[i]``, shape ``(widths[i], 3, 3)``) adds a constant inside the image and a
different one on the border ring. It is applied in place on the convolution's output (the sum
of the kernel, less the taps that fall into the padding on the border rows and columns), so
it costs no activation map.

At inference no more than the input and the output of one layer are alive at a time (the
ReLU works in place on the convolution's output), which is MemSR's memory argument. Without
gradients the maps are channels-last (oneDNN then reads and writes them without reordered
copies of whole maps, which made a body layer hold about four maps instead of two), and a
layer with a shuffle is run a band of input rows at a time: each band's convolution (its
halo rows read from the neighbours, zero rows only at the image's top and bottom), constant
channel, activation and shuffle, written into the preallocated output. So the layer's
pre-shuffle map never exists whole: it holds its input, its output and one band's
temporaries (1/32 of the layer's rows), which measured within 1.2x of the two-map floor
(benchmarks/bench_memsr.py). The result equals the whole layer's to fp32 rounding (the same
sums, in another order).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from litesr.models import register

ACTS = ("relu", "identity")
SHUFFLE_BANDS = 32  # a shuffling layer at inference: its input rows in this many bands


def add_constant_channel(
    y: Tensor, kernel: Tensor, *, top: bool = True, bottom: bool = True
) -> Tensor:
    """Add, in place, what a 3×3 conv with ``kernel`` (out, 3, 3) makes of a ones channel
    that is zero-padded by one pixel: the kernel's sum inside, less the taps that fall into
    the padding on the border (inclusion-exclusion at the corners). For a band of rows, ``top``
    / ``bottom`` say whether its first / last row is the image's (else its neighbours are
    inside the image and nothing falls into the padding there)."""
    view = (1, -1, 1)
    y.add_(kernel.sum((1, 2)).view(1, -1, 1, 1))
    if top:
        y[..., 0, :].sub_(kernel[:, 0, :].sum(1).view(view))
    if bottom:
        y[..., -1, :].sub_(kernel[:, 2, :].sum(1).view(view))
    y[..., :, 0].sub_(kernel[:, :, 0].sum(1).view(view))
    y[..., :, -1].sub_(kernel[:, :, 2].sum(1).view(view))
    for row, col in ((0, 0), (0, -1), (-1, 0), (-1, -1)):
        if top if row == 0 else bottom:  # a corner of the image, not of a band
            y[..., row, col].add_(kernel[:, 2 * (row < 0), 2 * (col < 0)].view(1, -1))
    return y


@register("plain")
class PlainSR(nn.Module):
    """A stack of conv 3×3 (+ activation, + PixelShuffle where asked); by default ReLU on
    all but the last layer, biases, no constant channel."""

    def __init__(
        self,
        scale: int,
        widths: list[int] | None = None,
        factors: list[int] | None = None,
        in_channels: int = 3,
        bias: bool = True,
        acts: list[str] | None = None,
        const: bool = False,
    ) -> None:
        super().__init__()
        if widths is None:  # the student of an EDSR-baseline teacher at the authors' r = 64
            widths = [64] * 34 + [3 * scale * scale]
        if not widths:
            raise ValueError("plain: widths must list at least one layer")
        factors = list(factors) if factors is not None else [1] * (len(widths) - 1) + [scale]
        if len(factors) != len(widths):
            raise ValueError(f"plain: {len(factors)} factors for {len(widths)} widths")
        if any(f < 1 for f in factors) or math.prod(factors) != scale:
            raise ValueError(f"plain: the shuffle factors {factors} must multiply to {scale}")
        acts = list(acts) if acts is not None else ["relu"] * (len(widths) - 1) + ["identity"]
        if len(acts) != len(widths) or set(acts) - set(ACTS):
            raise ValueError(f"plain: acts {acts} must give one of {ACTS} per layer")
        channels = in_channels
        self.convs = nn.ModuleList()
        for i, (width, f) in enumerate(zip(widths, factors, strict=True)):
            if width % (f * f):
                raise ValueError(f"plain: layer {i} width {width} is not a multiple of {f}²")
            self.convs.append(nn.Conv2d(channels, width, 3, padding=1, bias=bias and not const))
            channels = width // (f * f)
        if const:
            self.consts = nn.ParameterList(torch.zeros(w, 3, 3) for w in widths)
        if channels != 3:
            raise ValueError(
                f"plain: the last layer must give 3 channels after its shuffle, got {channels} "
                f"(widths {widths}, factors {factors})"
            )
        self.scale = scale
        self.factors = factors
        self.acts = acts
        self.const = const

    def forward(
        self, x: Tensor, return_features: bool = False
    ) -> Tensor | tuple[Tensor, list[Tensor]]:
        """SR image; with ``return_features`` also every hidden layer's output (after its
        activation and shuffle)."""
        feats = []
        last = len(self.convs) - 1
        lean = not torch.is_grad_enabled()  # inference: channels-last, banded shuffles
        if lean and x.dim() == 4:  # oneDNN reads and writes these without reordered copies
            x = x.contiguous(memory_format=torch.channels_last)
        for i, (conv, f) in enumerate(zip(self.convs, self.factors, strict=True)):
            observed = conv._forward_hooks or conv._forward_pre_hooks  # e.g. tiling's tracer
            if f > 1 and lean and not observed:
                x = self._shuffled_layer(i, x)
            else:
                x = self._activate(i, conv(x))
                if f > 1:
                    x = nn.functional.pixel_shuffle(x, f)
            if return_features and i < last:
                feats.append(x)
        return (x, feats) if return_features else x

    def _activate(self, i: int, x: Tensor, *, top: bool = True, bottom: bool = True) -> Tensor:
        """Layer ``i``'s constant channel (``top`` / ``bottom``: see ``add_constant_channel``)
        and activation, in place."""
        if self.const:
            x = add_constant_channel(x, self.consts[i], top=top, bottom=bottom)
        if self.acts[i] == "relu":
            x = torch.relu_(x)  # in place: the convolution's backward does not need it
        return x

    def _shuffled_layer(self, i: int, x: Tensor) -> Tensor:
        """Layer ``i`` with its shuffle by ``f``, a band of input rows at a time (see the
        module docstring)."""
        f, conv = self.factors[i], self.convs[i]
        n, _, height, width = x.shape
        shape = (n, conv.out_channels // (f * f), height * f, width * f)
        out = torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=torch.channels_last)
        step = math.ceil(height / SHUFFLE_BANDS)
        for r0 in range(0, height, step):
            r1 = min(r0 + step, height)
            top, bottom = r0 == 0, r1 == height
            band = x[:, :, r0 - (not top) : r1 + (not bottom)]  # with its halo rows
            if top or bottom:
                band = nn.functional.pad(band, (0, 0, int(top), int(bottom)))
            y = nn.functional.conv2d(band, conv.weight, conv.bias, padding=(0, 1))
            y = self._activate(i, y, top=top, bottom=bottom)
            out[:, :, r0 * f : r1 * f] = nn.functional.pixel_shuffle(y, f)
        return out
