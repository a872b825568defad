"""EDSR (Lim et al., CVPRW 2017): the residual teacher network, RGB in [0, 1]."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from litesr.models import register

DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)


def conv3x3(in_ch: int, out_ch: int) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 3, padding=1)


class ResBlock(nn.Module):
    """conv-ReLU-conv, scaled by ``res_scale``, plus the identity; the inner width ``mid``
    (between the two convs) defaults to ``n_feats`` (a channel-pruned block has fewer)."""

    def __init__(self, n_feats: int, res_scale: float = 1.0, mid: int | None = None) -> None:
        super().__init__()
        mid = n_feats if mid is None else mid
        self.body = nn.Sequential(conv3x3(n_feats, mid), nn.ReLU(), conv3x3(mid, n_feats))
        self.res_scale = res_scale

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x) * self.res_scale


def upsampler(n_feats: int, scale: int) -> nn.Sequential:
    """Sub-pixel upsampler: conv F→4F + PixelShuffle(2) per factor 2, or conv F→9F + shuffle 3."""
    if scale == 3:
        return nn.Sequential(conv3x3(n_feats, 9 * n_feats), nn.PixelShuffle(3))
    if scale < 2 or scale & (scale - 1):
        raise ValueError(f"EDSR supports scale 3 or a power of two >= 2, got {scale}")
    layers: list[nn.Module] = []
    for _ in range(scale.bit_length() - 1):
        layers += [conv3x3(n_feats, 4 * n_feats), nn.PixelShuffle(2)]
    return nn.Sequential(*layers)


@register("edsr")
class EDSR(nn.Module):
    """EDSR: head conv, residual blocks, body-end conv, global skip, upsampler, tail conv.

    The DIV2K mean is subtracted from the input and added back to the output.
    ``block_widths`` (optional, one per residual block) are the inner widths of channel-pruned
    blocks; without it every block is ``n_feats`` wide.
    """

    def __init__(
        self,
        scale: int,
        n_resblocks: int = 16,
        n_feats: int = 64,
        res_scale: float = 1.0,
        block_widths: list[int] | None = None,
    ) -> None:
        super().__init__()
        widths = [n_feats] * n_resblocks if block_widths is None else list(block_widths)
        if len(widths) != n_resblocks or min(widths, default=1) < 1:
            raise ValueError(
                f"block_widths needs {n_resblocks} positive widths (one per block), got {widths}"
            )
        self.scale = scale
        self.register_buffer(
            "rgb_mean", torch.tensor(DIV2K_RGB_MEAN).view(1, 3, 1, 1), persistent=False
        )
        self.head = conv3x3(3, n_feats)
        self.body = nn.ModuleList(ResBlock(n_feats, res_scale, w) for w in widths)
        self.body_end = conv3x3(n_feats, n_feats)
        self.upsample = upsampler(n_feats, scale)
        self.tail = conv3x3(n_feats, 3)

    def forward(
        self, x: Tensor, return_features: bool = False
    ) -> Tensor | tuple[Tensor, list[Tensor]]:
        """SR image; with ``return_features`` also the output of every residual block."""
        head = self.head(x - self.rgb_mean)
        feats = []
        out = head
        for block in self.body:
            out = block(out)
            if return_features:  # else each block's output is freed by the next block
                feats.append(out)
        out = self.body_end(out) + head
        sr = self.tail(self.upsample(out)) + self.rgb_mean
        return (sr, feats) if return_features else sr
