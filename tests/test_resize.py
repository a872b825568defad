"""MATLAB-exact bicubic resizing: properties, hand-checked weights and the reference LR images."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from litesr.data.resize import (
    bicubic_degrade,
    bicubic_upsample,
    imresize,
    interp_matrix,
    modcrop,
)

BENCHMARK = {"Set5": 5, "Set14": 14}  # images per set in the reference data
SCALES = (2, 3, 4)
INTERIOR = 4  # pixels excluded at each side when comparing with MATLAB
CASES = [
    (name, scale, i)
    for name, count in BENCHMARK.items()
    for scale in SCALES
    for i in range(1, count + 1)
]


def _load(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


@pytest.mark.shared_data
@pytest.mark.parametrize(("name", "scale", "index"), CASES)
def test_degrade_matches_matlab_lr(shared_data: Path, name: str, scale: int, index: int) -> None:
    folder = shared_data / "benchmark" / name / f"x{scale}"
    hr = _load(folder / "HR" / f"img_{index:03d}.png")
    lr = _load(folder / "LR" / f"img_{index:03d}.png")
    out = bicubic_degrade(hr, scale)
    assert out.dtype == np.uint8 and out.shape == lr.shape
    b = INTERIOR
    assert np.mean(out[b:-b, b:-b] == lr[b:-b, b:-b]) >= 0.99
    # The default (clamped) boundary reproduces MATLAB's output on every pixel.
    assert np.array_equal(out, lr)
    # Mirrored boundary handling changes only pixels near the edges.
    sym = imresize(modcrop(hr, scale), 1 / scale, boundary="symmetric")
    assert np.array_equal(sym[b:-b, b:-b], lr[b:-b, b:-b])


@pytest.mark.parametrize(
    ("shape", "scale", "expected"),
    [((7, 10), 0.5, (4, 5)), ((10, 11, 3), 1 / 3, (4, 4, 3)), ((5, 6), 2.5, (13, 15))],
)
def test_output_shape_is_ceil(shape: tuple, scale: float, expected: tuple) -> None:
    img = np.zeros(shape, dtype=np.uint8)
    assert imresize(img, scale).shape == expected


@pytest.mark.parametrize("scale", [0.25, 1 / 3, 0.5, 2.0, 3.0, 4.0])
@pytest.mark.parametrize("boundary", ["replicate", "symmetric"])
def test_constant_image_stays_constant(scale: float, boundary: str) -> None:
    img = np.full((24, 18, 3), 137, dtype=np.uint8)
    out = imresize(img, scale, boundary=boundary)
    assert out.dtype == np.uint8 and np.all(out == 137)
    np.testing.assert_allclose(imresize(img.astype(np.float64), scale, boundary=boundary), 137.0)


def test_float_path_is_not_rounded(rng: np.random.Generator) -> None:
    img = rng.integers(0, 256, size=(30, 40, 3), dtype=np.uint8)
    as_uint8 = imresize(img, 0.5)
    as_float = imresize(img.astype(np.float32), 0.5)
    assert as_uint8.dtype == np.uint8 and as_float.dtype == np.float64
    assert not np.allclose(as_float, np.round(as_float))
    # Rounding after each pass moves a value by at most one grey level overall here.
    assert np.abs(as_float - as_uint8).max() <= 1.0


@pytest.mark.parametrize(
    ("in_len", "scale"), [(1, 2.0), (5, 0.5), (17, 1 / 3), (9, 4.0), (64, 0.25)]
)
@pytest.mark.parametrize("boundary", ["replicate", "symmetric"])
def test_interp_matrix_rows_sum_to_one(in_len: int, scale: float, boundary: str) -> None:
    m = interp_matrix(in_len, scale, boundary=boundary)
    assert m.shape == (math.ceil(in_len * scale), in_len) and m.dtype == np.float64
    np.testing.assert_allclose(m.sum(axis=1), 1.0, rtol=0, atol=1e-12)


def test_interp_matrix_hand_weights() -> None:
    # x2 upsampling, output 5 (1-based): u = 2.75, taps at offsets 1.75, 0.75, -0.25, -1.25.
    m = interp_matrix(10, 2.0)
    expected = np.zeros(10)
    expected[:4] = [-0.0234375, 0.2265625, 0.8671875, -0.0703125]
    np.testing.assert_allclose(m[4], expected, atol=1e-15)
    np.testing.assert_allclose(interp_matrix(6, 1.0), np.eye(6), atol=1e-15)
    assert interp_matrix(10, 0.5, out_len=3).shape == (3, 10)


def test_boundaries_differ_only_at_edges() -> None:
    rep, sym = interp_matrix(40, 0.25), interp_matrix(40, 0.25, boundary="symmetric")
    np.testing.assert_array_equal(rep[2:-2], sym[2:-2])
    assert not np.array_equal(rep[0], sym[0])


def test_modcrop_and_upsample_shapes(rng: np.random.Generator) -> None:
    img = rng.integers(0, 256, size=(31, 26, 3), dtype=np.uint8)
    assert modcrop(img, 4).shape == (28, 24, 3)
    assert bicubic_degrade(img, 3).shape == (10, 8, 3)
    up = bicubic_upsample(img[:10, :8], 3)
    assert up.shape == (30, 24, 3) and up.dtype == np.uint8
    assert bicubic_upsample(img[:10, :8, 0], 2).shape == (20, 16)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: imresize(np.zeros((4, 4), np.uint8), 0.0), "positive finite"),
        (lambda: imresize(np.zeros((4, 4), np.uint8), math.nan), "positive finite"),
        (lambda: imresize(np.zeros((2, 4, 4, 3), np.uint8), 0.5), "HxW or HxWxC"),
        (lambda: imresize(np.zeros((4, 4), np.uint8), 0.5, boundary="wrap"), "boundary"),
        (lambda: interp_matrix(0, 2.0), "in_len"),
        (lambda: modcrop(np.zeros((3, 8), np.uint8), 4), "smaller than scale"),
        (lambda: bicubic_degrade(np.zeros((8, 8), np.uint8), 2.5), "positive integer"),
        (lambda: bicubic_upsample(np.zeros((8, 8), np.float32), 2), "uint8"),
    ],
)
def test_bad_arguments_raise(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()
