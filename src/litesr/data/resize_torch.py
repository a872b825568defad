"""MATLAB ``imresize`` bicubic upsampling for torch tensors, with the matrices of ``resize``.

The numpy path (``litesr.data.resize``) degrades and upsamples uint8 images for the data and
the bicubic baseline; this one upsamples float tensors inside networks (VDSR, AIL) on any
device, without rounding, with the same MATLAB interpolation matrices.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor

from litesr.data.resize import interp_matrix
from litesr.device import full_precision


@lru_cache(maxsize=64)
def bicubic_matrix(in_len: int, scale: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """The ``(scale·in_len, in_len)`` MATLAB bicubic matrix along one axis (cached)."""
    return torch.from_numpy(interp_matrix(in_len, float(scale), in_len * scale)).to(device, dtype)


def upsample_bicubic(x: Tensor, scale: int) -> Tensor:
    """MATLAB ``imresize(x, scale, 'bicubic')`` of an N×C×h×w float tensor (no rounding), at
    its precision even under autocast (a bf16 training step's bicubic input stays fp32)."""
    rows = bicubic_matrix(x.shape[-2], scale, x.device, x.dtype)
    cols = bicubic_matrix(x.shape[-1], scale, x.device, x.dtype)
    with full_precision(x.device):
        return rows @ x @ cols.T
