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
ReLU works in place on the convolution's output), which is MemSR's memory argument. A layer
with a shuffle to at least 16 channels (an upsampler, not a last conv + shuffle to RGB, where
measured peaks grew) is run a group of output channels at a time (without gradients), each group
shuffled into the preallocated output (channels-last, which the next convolution reads
without a reordered copy), so its whole pre-shuffle map never exists.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from litesr.models import register

ACTS = ("relu", "identity")
SHUFFLE_GROUPS = 16  # a shuffling layer at inference: its output channels in this many groups


def add_constant_channel(y: Tensor, kernel: Tensor) -> Tensor:
    """Add, in place, what a 3×3 conv with ``kernel`` (out, 3, 3) makes of a ones channel
    that is zero-padded by one pixel: the kernel's sum inside, less the taps that fall into
    the padding on the border (inclusion-exclusion at the corners)."""
    view = (1, -1, 1)
    y.add_(kernel.sum((1, 2)).view(1, -1, 1, 1))
    y[..., 0, :].sub_(kernel[:, 0, :].sum(1).view(view))
    y[..., -1, :].sub_(kernel[:, 2, :].sum(1).view(view))
    y[..., :, 0].sub_(kernel[:, :, 0].sum(1).view(view))
    y[..., :, -1].sub_(kernel[:, :, 2].sum(1).view(view))
    for row, col in ((0, 0), (0, -1), (-1, 0), (-1, -1)):
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
        for i, (conv, f) in enumerate(zip(self.convs, self.factors, strict=True)):
            observed = conv._forward_hooks or conv._forward_pre_hooks  # e.g. tiling's tracer
            wide = conv.out_channels >= SHUFFLE_GROUPS * f * f  # an upsampler, not an RGB tail
            if f > 1 and wide and not torch.is_grad_enabled() and not observed:
                x = self._shuffled_layer(i, x)
            else:
                x = self._activate(i, conv(x), slice(None))
                if f > 1:
                    x = nn.functional.pixel_shuffle(x, f)
            if return_features and i < last:
                feats.append(x)
        return (x, feats) if return_features else x

    def _activate(self, i: int, x: Tensor, rows: slice) -> Tensor:
        """Layer ``i``'s constant channel (output channels ``rows``) and activation, in place."""
        if self.const:
            x = add_constant_channel(x, self.consts[i][rows])
        if self.acts[i] == "relu":
            x = torch.relu_(x)  # in place: the convolution's backward does not need it
        return x

    def _shuffled_layer(self, i: int, x: Tensor) -> Tensor:
        """Layer ``i`` with its shuffle by ``f``, a group of ``f²``-channel blocks at a time."""
        f = self.factors[i]
        channels = self.convs[i].out_channels // (f * f)
        # channels-last: the next convolution reads it without a reordered copy (oneDNN)
        shape = (x.shape[0], channels, x.shape[2] * f, x.shape[3] * f)
        out = torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=torch.channels_last)
        step = math.ceil(channels / SHUFFLE_GROUPS)
        for c in range(0, channels, step):
            rows = slice(c * f * f, min(c + step, channels) * f * f)
            conv = self.convs[i]
            bias = conv.bias[rows] if conv.bias is not None else None
            y = nn.functional.conv2d(x, conv.weight[rows], bias, padding=1)
            out[:, c : c + step] = nn.functional.pixel_shuffle(self._activate(i, y, rows), f)
        return out
