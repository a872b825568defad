"""MATLAB-exact ``imresize(..., 'bicubic')`` and the bicubic SR degradation.

The weights follow MATLAB's ``contributions``: Keys cubic kernel (a = -0.5), widened by
``1/scale`` when shrinking (antialiasing), index map ``u = x/scale + 0.5 (1 - 1/scale)`` and
weights normalised per output. On uint8 input MATLAB resizes one dimension at a time and
rounds to uint8 after each pass; that is reproduced here.

Out-of-range indices: MATLAB's ``imresize.m`` has handled them in two ways over its versions,
clamping (``"replicate"``: the edge pixel is repeated) and mirroring (``"symmetric"``: indices
``1..n, n..1`` repeated). The MATLAB-made LR images of the standard benchmarks (SelfExSR
release of Set5/Set14) match ``"replicate"`` on every pixel, so it is the default; the two
differ only within a few pixels of the image edges.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from scipy import sparse

Boundary = Literal["replicate", "symmetric"]
KERNEL_WIDTH = 4.0


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``)."""
    ax = np.abs(x)
    ax2, ax3 = ax**2, ax**3
    near = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return near + far


def _check_scale(scale: float) -> None:
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive finite number, got {scale!r}")


def _boundary_index(indices: np.ndarray, in_len: int, boundary: Boundary) -> np.ndarray:
    """Map 1-based, possibly out-of-range indices to valid 0-based ones."""
    zero_based = indices.astype(np.int64) - 1
    if boundary == "replicate":
        return np.clip(zero_based, 0, in_len - 1)
    if boundary == "symmetric":
        mirror = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
        return mirror[zero_based % (2 * in_len)]
    raise ValueError(f"boundary must be 'replicate' or 'symmetric', got {boundary!r}")


def _sparse_matrix(
    in_len: int, scale: float, out_len: int | None, boundary: Boundary
) -> sparse.csr_array:
    """The interpolation matrix of MATLAB's ``contributions``, as a sparse array."""
    _check_scale(scale)
    if in_len < 1:
        raise ValueError(f"in_len must be >= 1, got {in_len}")
    if out_len is None:
        out_len = math.ceil(in_len * scale)
    if out_len < 1:
        raise ValueError(f"out_len must be >= 1, got {out_len}")

    width = KERNEL_WIDTH
    if scale < 1:  # antialiasing: a kernel stretched by 1/scale
        width = KERNEL_WIDTH / scale

        def kernel(t: np.ndarray) -> np.ndarray:
            return scale * _cubic(scale * t)
    else:
        kernel = _cubic

    x = np.arange(1, out_len + 1, dtype=np.float64)[:, None]
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    indices = np.floor(u - width / 2.0) + np.arange(math.ceil(width) + 2)
    weights = kernel(u - indices)
    weights /= weights.sum(axis=1, keepdims=True)

    cols = _boundary_index(indices, in_len, boundary)
    rows = np.broadcast_to(np.arange(out_len)[:, None], cols.shape)
    # Repeated (row, col) pairs from the boundary handling are summed.
    return sparse.csr_array(
        (weights.ravel(), (rows.ravel(), cols.ravel())), shape=(out_len, in_len)
    )


def interp_matrix(
    in_len: int, scale: float, out_len: int | None = None, *, boundary: Boundary = "replicate"
) -> np.ndarray:
    """Dense ``(out_len, in_len)`` float64 matrix of MATLAB's bicubic resize along one axis.

    ``out_len`` defaults to ``ceil(in_len * scale)``; the kernel always uses ``scale``.
    Each row sums to 1.
    """
    return _sparse_matrix(in_len, scale, out_len, boundary).toarray()


def _round_uint8(x: np.ndarray) -> np.ndarray:
    """MATLAB's uint8 cast (round half away from zero, saturate to 0..255), in place, float64.

    ``floor(x + 0.5)`` differs from rounding away from zero only for negative x, which
    saturates to 0 either way.
    """
    x += 0.5
    np.floor(x, out=x)
    return np.clip(x, 0, 255, out=x)


def _resize_axis(img: np.ndarray, scale: float, axis: int, boundary: Boundary) -> np.ndarray:
    """Apply the interpolation matrix along ``axis`` of a float64 image."""
    matrix = _sparse_matrix(img.shape[axis], scale, None, boundary)
    moved = np.moveaxis(img, axis, 0)
    out = matrix @ moved.reshape(moved.shape[0], -1)
    return np.moveaxis(out.reshape(matrix.shape[0], *moved.shape[1:]), 0, axis)


def imresize(img: np.ndarray, scale: float, *, boundary: Boundary = "replicate") -> np.ndarray:
    """Resize an HxW or HxWxC image by ``scale`` like MATLAB's ``imresize(img, scale)``.

    Height is resized first, then width (MATLAB's order when both scales are equal). uint8
    input is rounded to uint8 after each pass and returned as uint8; other input is returned
    as float64 without rounding.
    """
    _check_scale(scale)
    if img.ndim not in (2, 3) or 0 in img.shape:
        raise ValueError(f"expected a non-empty HxW or HxWxC image, got shape {img.shape}")
    is_uint8 = img.dtype == np.uint8
    out = img.astype(np.float64)
    for axis in (0, 1):
        out = _resize_axis(out, scale, axis, boundary)
        if is_uint8:
            out = _round_uint8(out)
    return out.astype(np.uint8) if is_uint8 else out


def _check_int_scale(scale: int) -> None:
    if isinstance(scale, bool) or not isinstance(scale, int | np.integer) or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")


def _check_uint8_image(img: np.ndarray) -> None:
    if img.dtype != np.uint8 or img.ndim not in (2, 3):
        raise ValueError(f"expected a uint8 HxW or HxWxC image, got {img.dtype} {img.shape}")


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom and right so that height and width are multiples of ``scale``."""
    _check_int_scale(scale)
    if img.ndim not in (2, 3):
        raise ValueError(f"expected an HxW or HxWxC image, got shape {img.shape}")
    h, w = img.shape[0] - img.shape[0] % scale, img.shape[1] - img.shape[1] % scale
    if h == 0 or w == 0:
        raise ValueError(f"image of shape {img.shape} is smaller than scale {scale}")
    return img[:h, :w]


def bicubic_degrade(hr: np.ndarray, scale: int) -> np.ndarray:
    """uint8 LR image: ``modcrop`` then MATLAB ``imresize(hr, 1/scale)``."""
    _check_uint8_image(hr)
    return imresize(modcrop(hr, scale), 1.0 / scale)


def bicubic_upsample(lr: np.ndarray, scale: int) -> np.ndarray:
    """uint8 bicubic upsampling by an integer ``scale`` (the "Bicubic" row of SR tables)."""
    _check_uint8_image(lr)
    _check_int_scale(scale)
    return imresize(lr, float(scale))
