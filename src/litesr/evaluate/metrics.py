"""PSNR and SSIM as computed for super-resolution tables.

Academic tables measure on the Y channel of ITU-R BT.601 after cropping ``border`` pixels from
each side, in float64 with peak 255. A grayscale (HxW) image is measured on its own values, as
the usual MATLAB evaluation scripts do (they convert only 3-channel images to Y).
"""

from __future__ import annotations

import math

import numpy as np
from skimage.metrics import structural_similarity

from litesr.data.color import rgb_to_y

PEAK = 255.0
SSIM_SIGMA = 1.5
# The side of the Gaussian window: scikit-image truncates it at 3.5 sigma, 2 * 5 + 1 pixels.
SSIM_WINDOW = 2 * int(3.5 * SSIM_SIGMA + 0.5) + 1


def ssim_min_side(border: int) -> int:
    """The smallest image side SSIM can measure after cropping ``border`` pixels per side."""
    return SSIM_WINDOW + 2 * border


def _check_pair(sr: np.ndarray, hr: np.ndarray, border: int) -> None:
    if sr.shape != hr.shape:
        raise ValueError(f"shape mismatch: sr {sr.shape} vs hr {hr.shape}")
    for img in (sr, hr):
        rgb = img.ndim == 3 and img.shape[2] == 3
        if img.dtype != np.uint8 or not (rgb or img.ndim == 2):
            raise ValueError(f"expected uint8 HxWx3 (or HxW gray), got {img.dtype} {img.shape}")
    if border < 0 or 2 * border >= min(hr.shape[:2]):
        raise ValueError(f"border {border} is negative or too large for shape {hr.shape}")


def _luma(img: np.ndarray, border: int) -> np.ndarray:
    """Cropped float64 Y (RGB input) or gray values (HxW input)."""
    y = rgb_to_y(img) if img.ndim == 3 else img.astype(np.float64)
    return y[border : y.shape[0] - border, border : y.shape[1] - border]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR for peak 255; ``math.inf`` when the images are identical."""
    mse = float(np.mean((a - b) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(PEAK**2 / mse)


def psnr_y(sr: np.ndarray, hr: np.ndarray, border: int) -> float:
    """PSNR on BT.601 Y after cropping ``border`` pixels per side; ``math.inf`` if identical."""
    _check_pair(sr, hr, border)
    return _psnr(_luma(sr, border), _luma(hr, border))


def psnr_rgb(sr: np.ndarray, hr: np.ndarray, border: int = 4) -> float:
    """PSNR over all RGB values after cropping ``border`` pixels (NTIRE); inf if identical."""
    _check_pair(sr, hr, border)
    crop = (slice(border, sr.shape[0] - border), slice(border, sr.shape[1] - border))
    return _psnr(sr[crop].astype(np.float64), hr[crop].astype(np.float64))


def ssim_y(sr: np.ndarray, hr: np.ndarray, border: int) -> float:
    """Mean SSIM on BT.601 Y after cropping ``border`` pixels per side.

    Wang et al. (2004) as in MATLAB ``ssim_index``: 11x11 Gaussian window (sigma 1.5),
    K1 = 0.01, K2 = 0.03, mean over the 'valid' region. scikit-image computes exactly this
    with the options below (checked against a direct 'valid' 2-D correlation in the tests).
    """
    _check_pair(sr, hr, border)
    h, w = hr.shape[:2]
    if min(h, w) < ssim_min_side(border):
        raise ValueError(
            f"image of {w}x{h} pixels is {w - 2 * border}x{h - 2 * border} after cropping "
            f"{border} pixels per side, smaller than SSIM's {SSIM_WINDOW}x{SSIM_WINDOW} window "
            f"(test images need both sides of at least {ssim_min_side(border)} pixels)"
        )
    return float(
        structural_similarity(
            _luma(sr, border),
            _luma(hr, border),
            gaussian_weights=True,
            sigma=SSIM_SIGMA,
            use_sample_covariance=False,
            data_range=PEAK,
        )
    )
