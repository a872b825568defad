"""PSNR/SSIM on Y: hand-checked values, errors, and the published bicubic baseline table."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.signal import correlate2d

from litesr.data.color import rgb_to_y
from litesr.data.resize import bicubic_upsample
from litesr.evaluate.metrics import psnr_rgb, psnr_y, ssim_y

# Bicubic upsampling of the MATLAB-made LR images, Y channel, border = scale: (PSNR, SSIM).
BICUBIC_TABLE = {
    ("Set5", 2): (33.66, 0.9299),
    ("Set5", 3): (30.39, 0.8682),
    ("Set5", 4): (28.42, 0.8104),
    ("Set14", 2): (30.24, 0.8688),
    ("Set14", 3): (27.55, 0.7742),
    ("Set14", 4): (26.00, 0.7027),
}
TOLERANCE = {"Set5": (0.02, 0.002), "Set14": (0.1, 0.005)}  # (dB, SSIM)
IMAGES = {"Set5": 5, "Set14": 14}


def _solid(rgb: tuple[int, int, int]) -> np.ndarray:
    return np.broadcast_to(np.array(rgb, dtype=np.uint8), (4, 4, 3))


@pytest.mark.parametrize(
    ("rgb", "y"),
    [((255, 255, 255), 235.0), ((0, 0, 0), 16.0), ((255, 0, 0), 16.0 + 65.481)],
)
def test_rgb_to_y_by_hand(rgb: tuple[int, int, int], y: float) -> None:
    out = rgb_to_y(_solid(rgb))
    assert out.dtype == np.float64 and out.shape == (4, 4)
    np.testing.assert_allclose(out, y, rtol=0, atol=1e-12)


def test_psnr_known_mse(rng: np.random.Generator) -> None:
    hr = rng.integers(20, 200, size=(16, 16, 3), dtype=np.uint8)
    sr = hr + np.uint8(10)
    # Every channel +10 moves Y by 10 * 219 / 255 everywhere, so MSE = (2190 / 255)^2.
    assert psnr_y(sr, hr, border=2) == pytest.approx(20 * math.log10(255 / (2190 / 255)))
    # RGB: MSE = 100 -> 10 log10(255^2 / 100).
    assert psnr_rgb(sr, hr) == pytest.approx(10 * math.log10(255**2 / 100))
    # A grayscale pair is measured on its own values: MSE = 100 again.
    assert psnr_y(sr[..., 0], hr[..., 0], border=0) == pytest.approx(28.130803608679106)


def test_identical_images_and_border(rng: np.random.Generator) -> None:
    hr = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    assert psnr_y(hr, hr, border=2) == math.inf
    assert psnr_rgb(hr, hr) == math.inf
    assert ssim_y(hr, hr, border=2) == pytest.approx(1.0, abs=1e-12)
    sr = hr.copy()
    sr[:3] = 0  # changes only inside the cropped border
    assert psnr_y(sr, hr, border=3) == math.inf
    assert psnr_y(sr, hr, border=2) < math.inf


def _ssim_valid_2d(x: np.ndarray, y: np.ndarray) -> float:
    """Direct MATLAB-style SSIM: 2-D 11x11 Gaussian window, 'valid' correlation."""
    t = np.arange(-5, 6)
    w = np.exp(-(t[:, None] ** 2 + t[None, :] ** 2) / (2 * 1.5**2))
    w /= w.sum()

    def f(z: np.ndarray) -> np.ndarray:
        return correlate2d(z, w, mode="valid")

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = f(x), f(y)
    vx, vy, cov = f(x * x) - mx**2, f(y * y) - my**2, f(x * y) - mx * my
    ssim_map = (2 * mx * my + c1) * (2 * cov + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return float(ssim_map.mean())


def test_ssim_equals_valid_region_definition(rng: np.random.Generator) -> None:
    hr = rng.integers(0, 256, size=(40, 52, 3), dtype=np.uint8)
    noise = rng.integers(-25, 26, size=hr.shape)
    sr = np.clip(hr.astype(int) + noise, 0, 255).astype(np.uint8)
    b = 3
    expected = _ssim_valid_2d(rgb_to_y(sr)[b:-b, b:-b], rgb_to_y(hr)[b:-b, b:-b])
    assert ssim_y(sr, hr, border=b) == pytest.approx(expected, rel=0, abs=1e-12)
    assert ssim_y(sr, hr, border=b) < 0.99


@pytest.mark.parametrize(
    ("sr", "hr", "match"),
    [
        (np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9, 3), np.uint8), r"\(8, 8, 3\).*\(8, 9, 3\)"),
        (np.zeros((8, 8, 3), np.float64), np.zeros((8, 8, 3), np.float64), "uint8"),
        (np.zeros((8, 8, 4), np.uint8), np.zeros((8, 8, 4), np.uint8), "HxWx3"),
        (np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.uint8), "border"),
    ],
)
def test_bad_inputs_raise(sr: np.ndarray, hr: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        psnr_y(sr, hr, border=4)
    with pytest.raises(ValueError, match=match):
        ssim_y(sr, hr, border=4)


@pytest.mark.shared_data
@pytest.mark.parametrize(("name", "scale"), list(BICUBIC_TABLE))
def test_bicubic_table(shared_data: Path, name: str, scale: int) -> None:
    folder = shared_data / "benchmark" / name / f"x{scale}"
    psnrs, ssims = [], []
    for i in range(1, IMAGES[name] + 1):
        hr = np.asarray(Image.open(folder / "HR" / f"img_{i:03d}.png"))
        lr = np.asarray(Image.open(folder / "LR" / f"img_{i:03d}.png"))
        sr = bicubic_upsample(lr, scale)
        psnrs.append(psnr_y(sr, hr, border=scale))
        ssims.append(ssim_y(sr, hr, border=scale))
    psnr_ref, ssim_ref = BICUBIC_TABLE[name, scale]
    tol_psnr, tol_ssim = TOLERANCE[name]
    assert np.mean(psnrs) == pytest.approx(psnr_ref, abs=tol_psnr)
    assert np.mean(ssims) == pytest.approx(ssim_ref, abs=tol_ssim)
