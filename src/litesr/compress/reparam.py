"""Structural re-parameterisation: merge linear multi-branch blocks into one convolution.

All convolutions here have stride 1, dilation 1, one group and "same" zero padding
(``kernel_size // 2``), but the unpadded k×k of :func:`merge_1x1_then_valid`. Kernels are
combined in float64 and cast back to the weights' dtype.

Order matters for sequential merges: in conv3×3 → conv1×1 the 1×1 sees ``conv3x3(x) + b1``
at every pixel, borders included (the zero padding is applied to ``x``), so the merged
kernel ``W2 · W1`` with bias ``W2 · b1 + b2`` is exact everywhere. The reverse order,
conv1×1 → conv3×3 with "same" padding, would pad the 1×1's output with zeros where the merged
conv pads ``x`` with zeros, i.e. it would need the padding value ``b1``; it is not offered. It
is exact when the *input* is zero-padded first and the k×k conv has no padding of its own
(SPAN's Conv3XC): then the 1×1 turns the padded zeros into ``b1`` at the border, as the merged
conv's bias does (:func:`merge_1x1_then_valid`).

Two training-time blocks merge into one 3×3 conv: DIPNet's :class:`RepBlock` and SPAN's
:class:`Conv3XC`; :func:`reparameterize` merges every one of either in a network.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _check_same_conv(conv: nn.Conv2d) -> None:
    k = conv.kernel_size
    if (
        k[0] != k[1]
        or k[0] % 2 == 0
        or conv.stride != (1, 1)
        or conv.dilation != (1, 1)
        or conv.groups != 1
        or conv.padding != (k[0] // 2, k[1] // 2)
        or conv.padding_mode != "zeros"
    ):
        raise ValueError(
            f"expected a stride-1, zero-padded 'same' conv with an odd square kernel: {conv}"
        )


def _conv_from(weight: Tensor, bias: Tensor | None, like: nn.Conv2d) -> nn.Conv2d:
    """A 'same' conv with the given float64 kernel and bias, on ``like``'s device and dtype."""
    out_ch, in_ch, k, _ = weight.shape
    conv = nn.Conv2d(in_ch, out_ch, k, padding=k // 2, bias=bias is not None)
    conv = conv.to(device=like.weight.device, dtype=like.weight.dtype)
    with torch.no_grad():
        conv.weight.copy_(weight)
        if bias is not None:
            conv.bias.copy_(bias)
    return conv


def _bias64(conv: nn.Conv2d) -> Tensor:
    if conv.bias is None:
        return torch.zeros(conv.out_channels, dtype=torch.float64, device=conv.weight.device)
    return conv.bias.detach().double()


def identity_kernel(
    channels: int,
    kernel_size: int = 3,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """``channels × channels × k × k`` kernel of a 'same' conv computing the identity."""
    kernel = torch.zeros(channels, channels, kernel_size, kernel_size, dtype=dtype, device=device)
    centre = kernel_size // 2
    kernel[:, :, centre, centre] = torch.eye(channels, dtype=dtype, device=device)
    return kernel


def merge_sequential_1x1(first: nn.Conv2d, second: nn.Conv2d) -> nn.Conv2d:
    """One k×k conv equal to ``second(first(x))`` where ``first`` is k×k and ``second`` 1×1."""
    _check_same_conv(first)
    _check_same_conv(second)
    if second.kernel_size != (1, 1) or second.in_channels != first.out_channels:
        raise ValueError(f"{second} is not a 1×1 conv taking the output of {first}")
    w2 = second.weight.detach().double().flatten(1)  # out × mid
    weight = torch.einsum("om,mikl->oikl", w2, first.weight.detach().double())
    bias = w2 @ _bias64(first) + _bias64(second)
    has_bias = first.bias is not None or second.bias is not None
    return _conv_from(weight, bias if has_bias else None, first)


def merge_1x1_then_valid(first: nn.Conv2d, second: nn.Conv2d) -> nn.Conv2d:
    """One k×k 'same' conv equal to ``second(first(pad(x)))``: ``first`` 1×1, ``second`` k×k
    without padding, ``pad`` zero-padding ``x`` by ``k // 2`` on every side."""
    _check_same_conv(first)
    k = second.kernel_size
    if (
        first.kernel_size != (1, 1)
        or k[0] != k[1]
        or k[0] % 2 == 0
        or second.stride != (1, 1)
        or second.dilation != (1, 1)
        or second.groups != 1
        or second.padding != (0, 0)
        or second.in_channels != first.out_channels
    ):
        raise ValueError(f"{second} is not an unpadded k×k conv taking the output of 1×1 {first}")
    w1 = first.weight.detach().double().flatten(1)  # mid × in
    w2 = second.weight.detach().double()  # out × mid × k × k
    weight = torch.einsum("omkl,mi->oikl", w2, w1)
    bias = w2.sum((2, 3)) @ _bias64(first) + _bias64(second)
    has_bias = first.bias is not None or second.bias is not None
    return _conv_from(weight, bias if has_bias else None, first)


def merge_parallel(convs: Sequence[nn.Conv2d]) -> nn.Conv2d:
    """One conv equal to ``sum(conv(x) for conv in convs)``; kernels are zero-padded to the
    largest size (1×1 → 3×3 puts the weight at the centre)."""
    if not convs:
        raise ValueError("merge_parallel needs at least one conv")
    for conv in convs:
        _check_same_conv(conv)
    shapes = {(c.in_channels, c.out_channels) for c in convs}
    if len(shapes) != 1:
        raise ValueError(f"parallel convs must share in/out channels, got {sorted(shapes)}")
    size = max(c.kernel_size[0] for c in convs)
    weight = sum(
        F.pad(c.weight.detach().double(), [(size - c.kernel_size[0]) // 2] * 4) for c in convs
    )
    bias = sum(_bias64(c) for c in convs)
    has_bias = any(c.bias is not None for c in convs)
    return _conv_from(weight, bias if has_bias else None, convs[0])


class RepBlock(nn.Module):
    """DIPNet's re-parameterisable residual block (RRB), training-time form.

    ``conv1x1(conv3x3(x))`` through ``expand`` channels, plus a parallel ``conv1x1(x)``, plus
    ``x`` itself when ``in_channels == out_channels``. :meth:`merge` returns the single
    3×3 conv computing the same function.
    """

    def __init__(
        self, in_channels: int, out_channels: int, expand: int = 256, bias: bool = True
    ) -> None:
        super().__init__()
        self.expand_conv = nn.Conv2d(in_channels, expand, 3, padding=1, bias=bias)
        self.reduce_conv = nn.Conv2d(expand, out_channels, 1, bias=bias)
        self.skip_conv = nn.Conv2d(in_channels, out_channels, 1, bias=bias)
        self.identity = in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        out = self.reduce_conv(self.expand_conv(x)) + self.skip_conv(x)
        return out + x if self.identity else out

    def merge(self) -> nn.Conv2d:
        """The equivalent 3×3 conv (new parameters, same device and dtype)."""
        merged = merge_parallel(
            [merge_sequential_1x1(self.expand_conv, self.reduce_conv), self.skip_conv]
        )
        if self.identity:
            with torch.no_grad():
                merged.weight += identity_kernel(
                    merged.in_channels, dtype=merged.weight.dtype, device=merged.weight.device
                )
        return merged


class Conv3XC(nn.Module):
    """SPAN's re-parameterisable 3×3 conv (Wan et al., CVPRW 2024), training-time form.

    On ``x`` zero-padded by one pixel: a 1×1 conv to ``gain · in_channels``, an unpadded 3×3
    conv to ``gain · out_channels``, a 1×1 conv to ``out_channels``; plus a parallel 1×1 conv
    of ``x``. All convs have biases. :meth:`merge` returns the single 3×3 conv computing the
    same function (SPAN's deploy form).
    """

    def __init__(self, in_channels: int, out_channels: int, gain: int = 2) -> None:
        super().__init__()
        self.expand_conv = nn.Conv2d(in_channels, gain * in_channels, 1)
        self.mid_conv = nn.Conv2d(gain * in_channels, gain * out_channels, 3)
        self.reduce_conv = nn.Conv2d(gain * out_channels, out_channels, 1)
        self.skip_conv = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        out = self.reduce_conv(self.mid_conv(self.expand_conv(F.pad(x, [1, 1, 1, 1]))))
        return out + self.skip_conv(x)

    def merge(self) -> nn.Conv2d:
        """The equivalent 3×3 conv (new parameters, same device and dtype)."""
        inner = merge_1x1_then_valid(self.expand_conv, self.mid_conv)
        return merge_parallel([merge_sequential_1x1(inner, self.reduce_conv), self.skip_conv])


MERGEABLE = (RepBlock, Conv3XC)
"""The training-time blocks :func:`reparameterize` merges, each by its ``merge()``."""


def reparameterize(model: nn.Module) -> nn.Module:
    """Replace every :class:`RepBlock` and :class:`Conv3XC` in ``model`` by its merged conv,
    in place.

    Returns ``model`` (or the merged conv when ``model`` itself is such a block).
    """
    if isinstance(model, MERGEABLE):
        return model.merge()
    for name, child in model.named_children():
        setattr(model, name, reparameterize(child))
    return model
