"""VDSR (Kim et al., CVPR 2016) as used by AIL: a plain residual network on the bicubic Y channel.

The RGB interface upsamples the LR image with MATLAB-exact bicubic interpolation, converts it to
BT.601 YCbCr, refines Y with the network and recombines it with the bicubic Cb and Cr.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from litesr.data.color import rgb_to_ycbcr, ycbcr_to_rgb
from litesr.data.resize_torch import upsample_bicubic
from litesr.models import register


@register("vdsr")
class VDSR(nn.Module):
    """conv 1→W + ReLU, (depth − 2) × (conv W→W + ReLU), conv W→1, plus the input Y."""

    def __init__(self, scale: int, width: int = 64, depth: int = 20) -> None:
        super().__init__()
        if depth < 2:
            raise ValueError(f"VDSR depth must be >= 2, got {depth}")
        self.scale = scale
        self.head = nn.Conv2d(1, width, 3, padding=1, bias=False)
        self.body = nn.Sequential(
            *(
                layer
                for _ in range(depth - 2)
                for layer in (nn.Conv2d(width, width, 3, padding=1, bias=False), nn.ReLU())
            )
        )
        self.tail = nn.Conv2d(width, 1, 3, padding=1, bias=False)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward_y(self, y: Tensor) -> Tensor:
        """Refine an N×1×H×W bicubic-upsampled Y channel (the network proper)."""
        return y + self.tail(self.body(torch.relu(self.head(y))))

    def predict_y(self, x: Tensor) -> Tensor:
        """Predicted N×1×sH×sW Y channel from the N×3×h×w LR RGB image."""
        return self.forward_y(rgb_to_ycbcr(upsample_bicubic(x, self.scale))[:, :1])

    def forward(self, x: Tensor) -> Tensor:
        """SR RGB image: predicted Y with the bicubic Cb and Cr."""
        ycbcr = rgb_to_ycbcr(upsample_bicubic(x, self.scale))
        y = self.forward_y(ycbcr[:, :1])
        return ycbcr_to_rgb(torch.cat([y, ycbcr[:, 1:]], dim=1))
