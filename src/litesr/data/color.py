"""ITU-R BT.601 colour conversion, once, for numpy images and torch tensors.

The SR literature measures on BT.601 Y (16..235 for 8-bit images) and Y-channel networks
(VDSR, AIL) train on it. Everything here uses the same matrix.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from litesr.device import full_precision

# BT.601 with everything in [0, 1]: ycbcr = RGB_TO_YCBCR @ rgb + YCBCR_OFFSET.
RGB_TO_YCBCR = (
    np.array([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]])
    / 255.0
)
YCBCR_OFFSET = np.array([16.0, 128.0, 128.0]) / 255.0
YCBCR_TO_RGB = np.linalg.inv(RGB_TO_YCBCR)


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """Y of BT.601 (range 16..235) as float64 from a uint8 H×W×3 RGB image."""
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected a uint8 HxWx3 RGB image, got {img.dtype} {img.shape}")
    rgb = img.astype(np.float64)
    # The first row of RGB_TO_YCBCR (times 255), in the order MATLAB's rgb2ycbcr sums it.
    return 16.0 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255.0


def _transform(x: Tensor, matrix: np.ndarray) -> Tensor:
    # At the input's precision even under autocast: a bf16 training step's targets stay fp32.
    with full_precision(x.device):
        m = torch.as_tensor(matrix, dtype=x.dtype, device=x.device)
        return torch.einsum("ij,njhw->nihw", m, x)


def _offset(x: Tensor) -> Tensor:
    return torch.as_tensor(YCBCR_OFFSET, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)


def rgb_to_ycbcr(x: Tensor) -> Tensor:
    """N×3×H×W RGB in [0, 1] to BT.601 YCbCr in [0, 1] (Y in [16/255, 235/255])."""
    return _transform(x, RGB_TO_YCBCR) + _offset(x)


def ycbcr_to_rgb(x: Tensor) -> Tensor:
    """Exact inverse of :func:`rgb_to_ycbcr` (no clamping)."""
    return _transform(x - _offset(x), YCBCR_TO_RGB)


def luma(x: Tensor) -> Tensor:
    """The N×1×H×W BT.601 Y channel of an N×3×H×W RGB tensor in [0, 1]."""
    return rgb_to_ycbcr(x)[:, :1]
