"""VDSR (Kim et al., CVPR 2016) as used by AIL: a plain residual network on the bicubic Y channel.

The RGB interface upsamples the LR image with MATLAB-exact bicubic interpolation, converts it to
BT.601 YCbCr, refines Y with the network and recombines it with the bicubic Cb and Cr.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from torch import Tensor, nn

from litesr.data.resize import interp_matrix
from litesr.models import register

# BT.601 with everything in [0, 1]: ycbcr = _RGB_TO_YCBCR @ rgb + _YCBCR_OFFSET.
_RGB_TO_YCBCR = (
    np.array([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]])
    / 255.0
)
_YCBCR_OFFSET = np.array([16.0, 128.0, 128.0]) / 255.0
_YCBCR_TO_RGB = np.linalg.inv(_RGB_TO_YCBCR)


def _color_transform(x: Tensor, matrix: np.ndarray) -> Tensor:
    return torch.einsum("ij,njhw->nihw", torch.as_tensor(matrix, dtype=x.dtype, device=x.device), x)


def _offset(x: Tensor) -> Tensor:
    return torch.as_tensor(_YCBCR_OFFSET, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)


def rgb_to_ycbcr(x: Tensor) -> Tensor:
    """N×3×H×W RGB in [0, 1] to BT.601 YCbCr in [0, 1] (Y in [16/255, 235/255])."""
    return _color_transform(x, _RGB_TO_YCBCR) + _offset(x)


def ycbcr_to_rgb(x: Tensor) -> Tensor:
    """Exact inverse of :func:`rgb_to_ycbcr` (no clamping)."""
    return _color_transform(x - _offset(x), _YCBCR_TO_RGB)


@lru_cache(maxsize=64)
def _bicubic_matrix(in_len: int, scale: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    return torch.from_numpy(interp_matrix(in_len, float(scale), in_len * scale)).to(device, dtype)


def upsample_bicubic(x: Tensor, scale: int) -> Tensor:
    """MATLAB ``imresize(x, scale, 'bicubic')`` of an N×C×h×w float tensor (no rounding)."""
    rows = _bicubic_matrix(x.shape[-2], scale, x.device, x.dtype)
    cols = _bicubic_matrix(x.shape[-1], scale, x.device, x.dtype)
    return rows @ x @ cols.T


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
