"""read_image's stated conversion rule, its clear errors, write_png and list_images."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from litesr.data.images import ImageError, list_images, read_image, write_png


def _rgb(rng: np.random.Generator, h: int = 5, w: int = 7) -> np.ndarray:
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _round16(v: np.ndarray) -> np.ndarray:
    """The stated 16 -> 8 bit rule, in floating point."""
    return np.round(v.astype(np.float64) * 255 / 65535).astype(np.uint8)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _paeth(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def _png16(path: Path, v: np.ndarray, color_type: int, extra: bytes = b"") -> None:
    """Write a 16-bit PNG by hand (Pillow cannot), cycling rows through all five filters."""
    h, w, c = v.shape
    rows = np.frombuffer(v.astype(">u2").tobytes(), np.uint8).reshape(h, w * c * 2).astype(int)
    bpp = 2 * c
    prev = np.zeros(rows.shape[1], int)
    out = []
    for y, row in enumerate(rows):
        left = np.concatenate([np.zeros(bpp, int), row[:-bpp]])
        upleft = np.concatenate([np.zeros(bpp, int), prev[:-bpp]])
        ftype = y % 5
        pred = [0, left, prev, (left + prev) // 2, _paeth(left, prev, upleft)][ftype]
        out.append(bytes([ftype]) + ((row - pred) % 256).astype(np.uint8).tobytes())
        prev = row
    ihdr = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + extra
        + _chunk(b"IDAT", zlib.compress(b"".join(out)))
        + _chunk(b"IEND", b"")
    )


def _u16(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    v = rng.integers(0, 65536, shape, dtype=np.uint16)
    v.flat[:4] = [0, 65535, 511, 128]  # 511: the high byte (1) differs from the rounded value (2)
    return v


def test_rgb_kept(tmp_path: Path, rng: np.random.Generator) -> None:
    img = _rgb(rng)
    Image.fromarray(img).save(tmp_path / "a.png")
    out = read_image(tmp_path / "a.png")
    assert out.dtype == np.uint8 and out.shape == (5, 7, 3)
    np.testing.assert_array_equal(out, img)


@pytest.mark.parametrize("mode", ["L", "1"])
def test_grayscale_replicated(tmp_path: Path, rng: np.random.Generator, mode: str) -> None:
    gray = rng.integers(0, 256, (4, 6), dtype=np.uint8)
    if mode == "1":
        gray = np.where(gray >= 128, 255, 0).astype(np.uint8)
    img = Image.fromarray(gray if mode == "L" else gray > 0)
    assert img.mode == mode
    img.save(tmp_path / "g.png")
    np.testing.assert_array_equal(read_image(tmp_path / "g.png"), np.stack([gray] * 3, axis=2))


def test_palette_to_rgb(tmp_path: Path, rng: np.random.Generator) -> None:
    pal = Image.fromarray(_rgb(rng, 8, 8)).quantize(16)
    pal.save(tmp_path / "p.png")
    np.testing.assert_array_equal(read_image(tmp_path / "p.png"), np.asarray(pal.convert("RGB")))


def test_palette_transparency(tmp_path: Path) -> None:
    idx = np.array([[0, 1], [1, 0]], np.uint8)
    pal = Image.fromarray(idx, "P")
    pal.putpalette([255, 0, 0, 0, 0, 255, 0, 255, 0])
    pal.save(tmp_path / "unused.png", transparency=2)  # index 2 is transparent but unused
    assert read_image(tmp_path / "unused.png")[0, 0].tolist() == [255, 0, 0]
    pal.save(tmp_path / "used.png", transparency=1)
    with pytest.raises(ImageError, match=r"used\.png.*transparent"):
        read_image(tmp_path / "used.png")


def test_gray16_rounded(tmp_path: Path, rng: np.random.Generator) -> None:
    v = _u16(rng, (6, 5))
    Image.fromarray(v).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode == "I;16"
    np.testing.assert_array_equal(read_image(tmp_path / "g16.png"), np.stack([_round16(v)] * 3, 2))


def test_gray_i32_in_range_and_out_of_range(tmp_path: Path) -> None:
    v = np.array([[0, 65535], [511, 300]], np.int32)
    Image.fromarray(v, "I").save(tmp_path / "i.tif")
    np.testing.assert_array_equal(read_image(tmp_path / "i.tif")[..., 0], _round16(v))
    Image.fromarray(v * 2, "I").save(tmp_path / "big.tif")
    with pytest.raises(ImageError, match=r"big\.tif.*outside 0\.\.65535"):
        read_image(tmp_path / "big.tif")


def test_rgb48_png_exact(tmp_path: Path, rng: np.random.Generator) -> None:
    v = _u16(rng, (11, 9, 3))
    _png16(tmp_path / "c48.png", v, color_type=2)
    expected = _round16(v)
    assert np.any(np.asarray(Image.open(tmp_path / "c48.png")) != expected)  # Pillow truncates
    np.testing.assert_array_equal(read_image(tmp_path / "c48.png"), expected)


def test_rgba64_and_la32_png(tmp_path: Path, rng: np.random.Generator) -> None:
    v = _u16(rng, (6, 5, 4))
    v[..., 3] = 65535
    _png16(tmp_path / "c64.png", v, color_type=6)
    np.testing.assert_array_equal(read_image(tmp_path / "c64.png"), _round16(v[..., :3]))
    v[2, 3, 3] = 65534
    _png16(tmp_path / "c64t.png", v, color_type=6)
    with pytest.raises(ImageError, match=r"c64t\.png.*1 pixel"):
        read_image(tmp_path / "c64t.png")
    la = _u16(rng, (4, 3, 2))
    la[..., 1] = 65535
    _png16(tmp_path / "la32.png", la, color_type=4)
    np.testing.assert_array_equal(
        read_image(tmp_path / "la32.png"), np.stack([_round16(la[..., 0])] * 3, 2)
    )


def test_rgb48_png_colour_key(tmp_path: Path) -> None:
    v = np.full((2, 2, 3), 1000, np.uint16)
    v[0, 0] = [1, 2, 3]
    _png16(tmp_path / "key.png", v, 2, extra=_chunk(b"tRNS", struct.pack(">HHH", 1, 2, 3)))
    with pytest.raises(ImageError, match=r"key\.png.*colour key"):
        read_image(tmp_path / "key.png")


def test_rgb48_png_exif_orientation(tmp_path: Path, rng: np.random.Generator) -> None:
    v = _u16(rng, (3, 5, 3))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    _png16(tmp_path / "rot.png", v, 2, extra=_chunk(b"eXIf", exif.tobytes()[6:]))
    np.testing.assert_array_equal(read_image(tmp_path / "rot.png"), np.rot90(_round16(v), -1))


def test_exif_orientation_applied(tmp_path: Path, rng: np.random.Generator) -> None:
    img = _rgb(rng, 3, 5)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(img).save(tmp_path / "rot.png", exif=exif)
    np.testing.assert_array_equal(read_image(tmp_path / "rot.png"), np.rot90(img, -1))


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_opaque_alpha_dropped(tmp_path: Path, rng: np.random.Generator, mode: str) -> None:
    rgb = Image.fromarray(_rgb(rng))
    base = rgb if mode == "RGBA" else rgb.convert("L")
    img = base.convert(mode)
    img.save(tmp_path / "o.png")
    np.testing.assert_array_equal(read_image(tmp_path / "o.png"), np.asarray(base.convert("RGB")))


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_transparency_refused(tmp_path: Path, rng: np.random.Generator, mode: str) -> None:
    img = Image.fromarray(_rgb(rng)).convert(mode)
    img.putpixel((1, 1), (0, 0, 0, 128) if mode == "RGBA" else (0, 128))
    img.save(tmp_path / "t.png")
    with pytest.raises(ImageError, match=r"t\.png.*not fully opaque"):
        read_image(tmp_path / "t.png")


def test_rgb_colour_key_refused(tmp_path: Path, rng: np.random.Generator) -> None:
    img = _rgb(rng)
    img[0, 0] = [1, 2, 3]
    Image.fromarray(img).save(tmp_path / "k.png", transparency=(1, 2, 3))
    with pytest.raises(ImageError, match=r"k\.png.*transparent"):
        read_image(tmp_path / "k.png")


def test_cmyk_and_float_refused(tmp_path: Path, rng: np.random.Generator) -> None:
    Image.fromarray(_rgb(rng)).convert("CMYK").save(tmp_path / "c.jpg")
    with pytest.raises(ImageError, match=r"c\.jpg.*'CMYK'"):
        read_image(tmp_path / "c.jpg")
    Image.fromarray(rng.random((3, 4), dtype=np.float32), "F").save(tmp_path / "f.tif")
    with pytest.raises(ImageError, match=r"f\.tif.*'F'"):
        read_image(tmp_path / "f.tif")


def test_rgb48_tiff_refused(tmp_path: Path) -> None:
    """Hand-made little-endian uncompressed 16-bit RGB TIFF (Pillow cannot write one)."""
    h, w = 2, 3
    data = np.arange(h * w * 3, dtype="<u2").tobytes()
    bps_at = 8 + 2 + 12 * 9 + 4  # header, entry count, 9 entries, next-IFD offset
    short, long_ = (lambda v: (3, struct.pack("<HH", v, 0))), (lambda v: (4, struct.pack("<I", v)))
    entries = [
        (256, 1, short(w)),
        (257, 1, short(h)),
        (258, 3, long_(bps_at)),
        (259, 1, short(1)),
        (262, 1, short(2)),
        (273, 1, long_(bps_at + 6)),
        (277, 1, short(3)),
        (278, 1, short(h)),
        (279, 1, long_(len(data))),
    ]
    ifd = b"".join(
        struct.pack("<HHI", tag, kind if tag != 258 else 3, n) + value
        for tag, n, (kind, value) in entries
    )
    (tmp_path / "c48.tif").write_bytes(
        b"II*\x00"
        + struct.pack("<IH", 8, len(entries))
        + ifd
        + struct.pack("<I3H", 0, 16, 16, 16)
        + data
    )
    assert Image.open(tmp_path / "c48.tif").mode == "RGB"
    with pytest.raises(ImageError, match=r"c48\.tif.*16-bit colour TIFF"):
        read_image(tmp_path / "c48.tif")


def test_corrupt_files(tmp_path: Path, rng: np.random.Generator) -> None:
    Image.fromarray(_rgb(rng, 64, 64)).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "half.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.png").write_bytes(rng.integers(0, 256, 500, dtype=np.uint8).tobytes())
    (tmp_path / "empty.png").write_bytes(b"")
    for name in ("half.png", "junk.png", "empty.png"):
        with pytest.raises(ImageError, match=rf"{name}.*cannot decode"):
            read_image(tmp_path / name)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"nothere\.png: file not found"):
        read_image(tmp_path / "nothere.png")


@pytest.mark.parametrize("shape", [(4, 6, 3), (4, 6)])
def test_write_png_round_trip(
    tmp_path: Path, rng: np.random.Generator, shape: tuple[int, ...]
) -> None:
    img = rng.integers(0, 256, shape, dtype=np.uint8)
    path = tmp_path / "sub" / "dir" / "x.png"
    write_png(path, img)
    expected = img if img.ndim == 3 else np.stack([img] * 3, axis=2)
    np.testing.assert_array_equal(read_image(path), expected)
    write_png(path, img[::-1])  # overwrite in place
    np.testing.assert_array_equal(read_image(path), expected[::-1])
    assert [p.name for p in path.parent.iterdir()] == ["x.png"]


def test_write_png_refuses_bad_arrays(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="uint8"):
        write_png(tmp_path / "f.png", np.zeros((2, 2, 3), np.float32))
    with pytest.raises(ValueError, match=r"shape \(2, 2, 4\)"):
        write_png(tmp_path / "f.png", np.zeros((2, 2, 4), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_list_images(tmp_path: Path) -> None:
    for name in ("b.PNG", "a.jpg", "c.tiff", "d.Jpeg", "e.bmp", "f.tif", "notes.txt", "._a.png"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub.png").mkdir()
    assert [p.name for p in list_images(tmp_path)] == [
        "a.jpg",
        "b.PNG",
        "c.tiff",
        "d.Jpeg",
        "e.bmp",
        "f.tif",
    ]


def test_list_images_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing"):
        list_images(tmp_path / "missing")
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(ImageError, match="no images"):
        list_images(tmp_path)


def _png_header_only(path: Path, w: int, h: int) -> None:
    """A tiny PNG whose header declares ``w`` x ``h`` pixels (a decompression bomb's shape)."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(("w", "h"), [(12_000, 10_000), (100_000, 100_000)])
def test_pixel_limit_refuses_from_the_header(tmp_path: Path, w: int, h: int) -> None:
    """Both over our 100 MP limit; the second is also over Pillow's own bomb limit, whose
    DecompressionBombError must not surface: the error is ours, naming the file and size."""
    import time

    from PIL import Image as PILImage

    before = PILImage.MAX_IMAGE_PIXELS
    _png_header_only(tmp_path / "bomb.png", w, h)
    start = time.perf_counter()
    with pytest.raises(ImageError, match=rf"bomb\.png: image is {w}x{h} = .* megapixels, over"):
        read_image(tmp_path / "bomb.png")
    assert time.perf_counter() - start < 1.0
    assert PILImage.MAX_IMAGE_PIXELS == before  # Pillow's setting is restored


def test_pixel_limit_argument_and_environment(
    tmp_path: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from litesr.data.images import DEFAULT_MAX_PIXELS, MAX_PIXELS_ENV, max_pixels_limit

    Image.fromarray(_rgb(rng)).save(tmp_path / "a.png")  # 7 x 5 = 35 pixels
    assert read_image(tmp_path / "a.png", max_pixels=35).shape == (5, 7, 3)
    with pytest.raises(ImageError, match=r"a\.png: image is 7x5 .* LITESR_MAX_PIXELS"):
        read_image(tmp_path / "a.png", max_pixels=34)
    monkeypatch.setenv(MAX_PIXELS_ENV, "34")
    with pytest.raises(ImageError, match=r"a\.png: image is 7x5"):
        read_image(tmp_path / "a.png")
    monkeypatch.setenv(MAX_PIXELS_ENV, "1_000")
    assert read_image(tmp_path / "a.png").shape == (5, 7, 3)
    monkeypatch.setenv(MAX_PIXELS_ENV, "lots")
    with pytest.raises(ValueError, match="LITESR_MAX_PIXELS='lots'"):
        read_image(tmp_path / "a.png")
    monkeypatch.delenv(MAX_PIXELS_ENV)
    assert max_pixels_limit() == DEFAULT_MAX_PIXELS == 100_000_000
    with pytest.raises(ValueError, match="max_pixels"):
        max_pixels_limit(0)


def test_list_images_refuses_a_broken_symlink(tmp_path: Path, rng: np.random.Generator) -> None:
    Image.fromarray(_rgb(rng)).save(tmp_path / "a.png")
    (tmp_path / "b.png").symlink_to(tmp_path / "gone.png")
    (tmp_path / "c.png").symlink_to(tmp_path / "a.png")  # a working link is read
    with pytest.raises(ImageError, match=r"broken symbolic link.*b\.png -> .*gone\.png"):
        list_images(tmp_path)
    (tmp_path / "b.png").unlink()
    assert [p.name for p in list_images(tmp_path)] == ["a.png", "c.png"]


def test_list_images_warns_about_images_in_subfolders(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    from litesr.data.images import ImageWarning

    Image.fromarray(_rgb(rng)).save(tmp_path / "a.png")
    (tmp_path / "x4" / "deep").mkdir(parents=True)
    Image.fromarray(_rgb(rng)).save(tmp_path / "x4" / "deep" / "b.png")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no images here")
    with pytest.warns(ImageWarning, match=r"subfolder\(s\) x4 are not read"):
        assert [p.name for p in list_images(tmp_path)] == ["a.png"]


def test_list_images_refuses_two_images_with_one_stem(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    Image.fromarray(_rgb(rng)).save(tmp_path / "a.png")
    Image.fromarray(_rgb(rng)).save(tmp_path / "a.jpg")
    Image.fromarray(_rgb(rng)).save(tmp_path / "b.png")
    with pytest.raises(ImageError, match=rf"{tmp_path}: .*a\.jpg and a\.png"):
        list_images(tmp_path)
