"""RLFN-style network (Kong et al., CVPRW 2022), the family of DIPNet's deployed student.

With ``feature_channels=44, mid_channels=38, esa_channels=16, n_blocks=4, scale=4`` and no
biases in the main convolutions (the default, as in DIPNet) this is DIPNet's deployed network,
243,252 parameters. RLFN itself uses ``bias=True``. The ESA branch (stride-2 conv, then a 7×7
max-pool with stride 3) needs LR inputs of at least 15×15 pixels. ``rgb_range`` is the pixel
value of white the weights were trained for: 1 (RGB in [0, 1], ours and DIPNet's) or 255
(the NTIRE 2024 challenge's RLFN); the network takes and gives RGB in [0, 1] either way.

Releases (:mod:`litesr.models.releases`): DIPNet's deployed ×4 network and the NTIRE 2024
efficient-SR challenge's RLFN baseline. Both use the RLFN authors' key layout
(:func:`rlfn_key_map`): the release's ``block_{i}`` (from 1) is our ``blocks.{i-1}``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from litesr.compress.reparam import RepBlock
from litesr.models import register
from litesr.models.releases import Release, register_releases

LEAKY_SLOPE = 0.05
DIPNET_ARGS: dict[str, Any] = {
    "feature_channels": 44,
    "mid_channels": 38,
    "esa_channels": 16,
    "n_blocks": 4,
    "bias": False,
}
"""DIPNet's deployed network (its release has no biases in the main convolutions)."""
NTIRE2024_ARGS: dict[str, Any] = {
    "feature_channels": 46,
    "mid_channels": 48,
    "esa_channels": 16,
    "n_blocks": 4,
    "bias": True,
    "rgb_range": 255,
}
"""The NTIRE 2024 efficient-SR challenge's RLFN baseline (``RLFN_Prune``), fed 0–255."""


class ESA(nn.Module):
    """RLFN's simplified enhanced spatial attention: ``x * sigmoid(mask(x))``."""

    def __init__(self, esa_channels: int, n_feats: int) -> None:
        super().__init__()
        f = esa_channels
        self.conv1 = nn.Conv2d(n_feats, f, 1)
        self.conv_f = nn.Conv2d(f, f, 1)
        self.conv2 = nn.Conv2d(f, f, 3, stride=2)
        self.conv3 = nn.Conv2d(f, f, 3, padding=1)
        self.conv4 = nn.Conv2d(f, n_feats, 1)

    def forward(self, x: Tensor) -> Tensor:
        c1 = self.conv1(x)
        low = F.max_pool2d(self.conv2(c1), kernel_size=7, stride=3)
        low = F.interpolate(self.conv3(low), x.shape[-2:], mode="bilinear", align_corners=False)
        return x * torch.sigmoid(self.conv4(low + self.conv_f(c1)))


class RLFB(nn.Module):
    """Residual local feature block: 3 × (conv3×3 + LeakyReLU), local skip, conv1×1, ESA."""

    def __init__(
        self,
        channels: int,
        mid_channels: int | tuple[int, int],
        esa_channels: int,
        bias: bool,
        rrb_expand: int = 0,
    ) -> None:
        super().__init__()
        m1, m2 = (mid_channels, mid_channels) if isinstance(mid_channels, int) else mid_channels

        def conv3x3(c_in: int, c_out: int) -> nn.Module:
            if rrb_expand:
                return RepBlock(c_in, c_out, rrb_expand, bias=bias)
            return nn.Conv2d(c_in, c_out, 3, padding=1, bias=bias)

        self.c1_r = conv3x3(channels, m1)
        self.c2_r = conv3x3(m1, m2)
        self.c3_r = conv3x3(m2, channels)
        self.c5 = nn.Conv2d(channels, channels, 1, bias=bias)
        self.esa = ESA(esa_channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        out = F.leaky_relu(self.c1_r(x), LEAKY_SLOPE)
        out = F.leaky_relu(self.c2_r(out), LEAKY_SLOPE)
        out = F.leaky_relu(self.c3_r(out), LEAKY_SLOPE)
        return self.esa(self.c5(out + x))


@register("rlfn")
class RLFN(nn.Module):
    """conv 3→F, ``n_blocks`` RLFBs, conv F→F plus the head features, conv + PixelShuffle."""

    def __init__(
        self,
        scale: int,
        feature_channels: int = 52,
        mid_channels: int = 52,
        esa_channels: int = 16,
        n_blocks: int = 6,
        bias: bool = False,
        block_widths: list[list[int]] | None = None,
        rrb_expand: int = 0,
        rgb_range: int = 1,
    ) -> None:
        super().__init__()
        if rgb_range < 1:
            raise ValueError(f"rgb_range must be a positive pixel value of white, got {rgb_range}")
        self.scale = scale
        self.rgb_range = rgb_range
        f = feature_channels
        if block_widths is None:
            widths = [(mid_channels, mid_channels)] * n_blocks
        elif len(block_widths) != n_blocks or any(len(w) != 2 for w in block_widths):
            raise ValueError(
                f"block_widths needs {n_blocks} pairs [c1_r, c2_r], got {block_widths}"
            )
        else:
            widths = [tuple(w) for w in block_widths]
        self.conv_1 = nn.Conv2d(3, f, 3, padding=1, bias=bias)
        self.blocks = nn.ModuleList(RLFB(f, w, esa_channels, bias, rrb_expand) for w in widths)
        self.conv_2 = nn.Conv2d(f, f, 3, padding=1, bias=bias)
        self.upsampler = nn.Sequential(
            nn.Conv2d(f, 3 * scale**2, 3, padding=1, bias=bias), nn.PixelShuffle(scale)
        )

    def forward(
        self, x: Tensor, return_features: bool = False
    ) -> Tensor | tuple[Tensor, list[Tensor]]:
        """SR image; with ``return_features`` also the output of every block."""
        if self.rgb_range != 1:
            x = x * self.rgb_range
        head = self.conv_1(x)
        feats = []
        out = head
        for block in self.blocks:
            out = block(out)
            feats.append(out)
        sr = self.upsampler(self.conv_2(out) + head)
        if self.rgb_range != 1:
            sr = sr / self.rgb_range
        return (sr, feats) if return_features else sr


def rlfn_key_map(n_blocks: int, bias: bool) -> dict[str, str]:
    """The RLFN authors' key names (also DIPNet's) → our state-dict keys; the ESA convs
    always have biases, the main convolutions where ``bias``."""
    params = ("weight", "bias") if bias else ("weight",)
    keys: dict[str, str] = {}
    for conv in ("conv_1", "conv_2", "upsampler.0"):
        keys |= {f"{conv}.{p}": f"{conv}.{p}" for p in params}
    for i in range(1, n_blocks + 1):
        for conv in ("c1_r", "c2_r", "c3_r", "c5"):
            keys |= {f"block_{i}.{conv}.{p}": f"blocks.{i - 1}.{conv}.{p}" for p in params}
        for conv in ("conv1", "conv_f", "conv2", "conv3", "conv4"):
            keys |= {
                f"block_{i}.esa.{conv}.{p}": f"blocks.{i - 1}.esa.{conv}.{p}"
                for p in ("weight", "bias")
            }
    return keys


def _x4(name: str, args: dict[str, Any], paper: str, description: str) -> Release:
    """A ×4-only release, the member of family ``name`` without its ``_x4``."""
    return Release(
        name=name,
        arch="rlfn",
        args=dict(args),
        scales=(4,),
        key_map=rlfn_key_map(args["n_blocks"], args["bias"]),
        size=args["feature_channels"],
        paper=paper,
        description=description,
        family=name.removesuffix("_x4"),
    )


register_releases(
    [
        _x4(
            "dipnet_x4",
            DIPNET_ARGS,
            "DIPNet",
            "DIPNet's deployed ×4 network (model_zoo/DIPNet.pth), RGB in [0, 1]",
        ),
        _x4(
            "rlfn_ntire2024_x4",
            NTIRE2024_ARGS,
            "RLFN",
            "The NTIRE 2024 efficient-SR challenge's RLFN baseline (Amazingren/NTIRE2024_ESR, "
            "model_zoo/team00_rlfn.pth), trained on RGB in [0, 255]",
        ),
    ]
)


@torch.no_grad()
def fold_rgb_range(model: RLFN) -> RLFN:
    """Fold ``rgb_range`` into the first and last convolutions (in place): the first conv's
    weights × range, the upsampler conv's weights and bias ÷ range; then ``rgb_range`` is 1.
    The outputs are the same up to float rounding, and the network is a plain [0, 1] one
    whose feature values keep their 0–range scale."""
    r = float(model.rgb_range)
    if r != 1:
        model.conv_1.weight.mul_(r)
        last = model.upsampler[0]
        last.weight.div_(r)
        if last.bias is not None:
            last.bias.div_(r)
        model.rgb_range = 1
        if hasattr(model, "litesr_arch"):
            arch, args = model.litesr_arch
            model.litesr_arch = (arch, {**args, "rgb_range": 1})
    return model
