"""SPAN, the swift parameter-free attention network (Wan et al., CVPRW 2024), winner of the
NTIRE 2024 efficient-SR challenge.

A 3×3 conv 3→F; ``n_blocks`` SPABs, each three 3×3 convs (``c1_r``, ``c2_r``, ``c3_r``) with
SiLU after the first two and the parameter-free attention ``(out3 + x) · (sigmoid(out3) − 0.5)``
of the third conv's output ``out3``; a 3×3 conv on the last block's output; a 1×1 conv over
the concatenation [head, that conv's output, the first block's output, the last block's first
conv after its SiLU]; a 3×3 conv and PixelShuffle. Every 3×3 conv but the upsampler's is
re-parameterisable: ``conv3xc_gain`` > 0 builds the training form, each conv a
:class:`~litesr.compress.reparam.Conv3XC` of that gain (the authors train with 2), which
:func:`~litesr.compress.reparam.reparameterize` merges into the deploy form (``conv3xc_gain``
0, plain 3×3 convs under the same names). Every conv has a bias.

The network takes and gives RGB in [0, 1]: inside, it subtracts the DIV2K mean and multiplies
by 255 (the authors' ``img_range``); its output is not shifted back. It has no smallest input
beyond one pixel.

Release (:mod:`litesr.models.releases`): the challenge's winner, 28 channels, deploy form. Its
authors' key names wrap each merged conv as ``<name>.eval_conv`` and number the blocks
``block_{i}`` from 1 (:func:`span_key_map`). The authors' SPAB applies SiLU in place, so the
first conv's output it hands to the concatenation is the activated one, as here.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from litesr.compress.reparam import Conv3XC
from litesr.models import register
from litesr.models.releases import Release, register_releases

IMG_RANGE = 255.0
RGB_MEAN = (0.4488, 0.4371, 0.4040)
"""DIV2K's mean RGB, subtracted from the input before scaling it to 0–255."""
NTIRE2024_ARGS: dict[str, Any] = {"feature_channels": 28, "n_blocks": 6}
"""The NTIRE 2024 winner (``SPAN30(3, 3, upscale=4, feature_channels=28)``), deploy form."""


def _conv3x3(c_in: int, c_out: int, gain: int) -> nn.Module:
    """A 3×3 conv; its training form (:class:`Conv3XC`) where ``gain`` > 0."""
    return Conv3XC(c_in, c_out, gain) if gain else nn.Conv2d(c_in, c_out, 3, padding=1)


class SPAB(nn.Module):
    """Swift parameter-free attention block: three 3×3 convs, SiLU, sigmoid attention."""

    def __init__(self, channels: int, gain: int) -> None:
        super().__init__()
        self.c1_r = _conv3x3(channels, channels, gain)
        self.c2_r = _conv3x3(channels, channels, gain)
        self.c3_r = _conv3x3(channels, channels, gain)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The block's output and its first conv's activated output."""
        out1 = F.silu(self.c1_r(x))
        out3 = self.c3_r(F.silu(self.c2_r(out1)))
        return (out3 + x) * (torch.sigmoid(out3) - 0.5), out1


@register("span")
class SPAN(nn.Module):
    """conv 3→F, ``n_blocks`` SPABs, conv F→F, 1×1 conv over four features, conv + shuffle."""

    def __init__(
        self, scale: int, feature_channels: int = 48, n_blocks: int = 6, conv3xc_gain: int = 0
    ) -> None:
        super().__init__()
        if n_blocks < 1:
            raise ValueError(f"SPAN needs at least one block, got n_blocks={n_blocks}")
        self.scale = scale
        f = feature_channels
        self.register_buffer("mean", torch.tensor(RGB_MEAN).view(1, 3, 1, 1), persistent=False)
        self.conv_1 = _conv3x3(3, f, conv3xc_gain)
        self.blocks = nn.ModuleList(SPAB(f, conv3xc_gain) for _ in range(n_blocks))
        self.conv_2 = _conv3x3(f, f, conv3xc_gain)
        self.conv_cat = nn.Conv2d(4 * f, f, 1)
        self.upsampler = nn.Sequential(
            nn.Conv2d(f, 3 * scale**2, 3, padding=1), nn.PixelShuffle(scale)
        )

    def forward(self, x: Tensor) -> Tensor:
        head = self.conv_1((x - self.mean) * IMG_RANGE)
        out, first = head, None
        for block in self.blocks:
            out, inner = block(out)
            first = out if first is None else first
        out = self.conv_cat(torch.cat([head, self.conv_2(out), first, inner], dim=1))
        return self.upsampler(out)


def span_key_map(n_blocks: int) -> dict[str, str]:
    """The SPAN authors' deploy-form key names → our state-dict keys (deploy form)."""
    keys: dict[str, str] = {}
    for p in ("weight", "bias"):
        keys |= {f"{conv}.eval_conv.{p}": f"{conv}.{p}" for conv in ("conv_1", "conv_2")}
        keys |= {f"{conv}.{p}": f"{conv}.{p}" for conv in ("conv_cat", "upsampler.0")}
        for i in range(1, n_blocks + 1):
            keys |= {
                f"block_{i}.{conv}.eval_conv.{p}": f"blocks.{i - 1}.{conv}.{p}"
                for conv in ("c1_r", "c2_r", "c3_r")
            }
    return keys


register_releases(
    [
        Release(
            name="span_ch28_ntire2024_x4",
            arch="span",
            args=dict(NTIRE2024_ARGS),
            scales=(4,),
            key_map=span_key_map(NTIRE2024_ARGS["n_blocks"]),
            size=NTIRE2024_ARGS["feature_channels"],
            paper="SPAN",
            description="The NTIRE 2024 efficient-SR challenge's winner, SPAN at 28 channels "
            "in its deploy form (Amazingren/NTIRE2024_ESR, model_zoo/team38_span_ch28_slim.pth), "
            "RGB in [0, 1]",
            family="span_ch28_ntire2024",
        )
    ]
)
