"""Read images as uint8 RGB arrays, write PNGs atomically, list the images of a folder.

Rule applied by :func:`read_image` (anything else raises :class:`ImageError` naming the file):

- EXIF orientation is applied first (as ``PIL.ImageOps.exif_transpose`` does).
- RGB is kept; palette images (``P``, ``PA``) are expanded to RGB.
- Grayscale (1-bit, ``L``, 16-bit ``I;16``, ``I`` with values in 0..65535) is replicated to
  three channels.
- 16-bit samples (grayscale, or 48/64-bit colour PNG) become 8-bit by ``round(v * 255 / 65535)``.
  Pillow reduces 16-bit colour PNGs to their high byte, so those are decoded twice (high and low
  bytes) to rebuild the exact 16-bit values. 16-bit colour in other formats (TIFF) is refused.
- An alpha channel (``RGBA``, ``LA``, ``PA``, palette or ``tRNS`` colour-key transparency) is
  dropped only when every pixel is fully opaque; any transparent pixel is refused, since the
  super-resolution of transparent pixels is undefined.
- CMYK, YCbCr, LAB, HSV, float (``F``) and any other mode are refused.
- Multi-frame images (animated GIF, PNG or WebP, multi-page TIFF) are refused: which frame is
  meant is the user's choice, so none is picked silently.
- Images larger than a pixel limit (:data:`DEFAULT_MAX_PIXELS`, or ``LITESR_MAX_PIXELS``, or
  the ``max_pixels`` argument) are refused from their header, before any pixel is decoded.

:func:`list_images` lists the images directly in a folder. A broken symbolic link is an error
(the image it stood for would silently drop out of the set); images in subfolders are not read
and are reported with a warning (subfolders of other material, such as per-scale LR copies,
are common); two images with the same name stem (``a.png`` and ``a.jpg``) are an error, since
both would become ``a.png`` once prepared.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from litesr.atomic import atomic_path

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

# 100 megapixels: 3.3 times the largest image of the SR data sets in use (DIV8K, 7680 x 4320 =
# 33 MP; DIV2K and Flickr2K are at most 2040 x 2040 = 4.2 MP). Decoded as uint8 RGB that is
# 300 MB, and the float64 working copies of modcrop + bicubic stay within a few GB, so the
# limit stops decompression bombs (a PNG of a few KB can declare 2^31 x 2^31 pixels) before
# they exhaust memory, without refusing any real photograph.
DEFAULT_MAX_PIXELS = 100_000_000
MAX_PIXELS_ENV = "LITESR_MAX_PIXELS"
# Pillow's own limit (Image.MAX_IMAGE_PIXELS, a warning then DecompressionBombError at twice
# it) is a process-wide setting; ours replaces it while read_image opens a file.
_PIL_LIMIT_LOCK = threading.RLock()

_GRAY16 = ("I;16", "I;16B", "I;16L", "I;16N")
# Pillow's 16-bit colour PNG raw modes, and the raw mode that yields the low bytes of the same
# decoded (unfiltered) data. LA;16B (mode RGBA) becomes plain RGBA: gray hi, gray lo, alpha hi,
# alpha lo, which has the same 4-byte pixel stride so PNG unfiltering is unchanged.
_PNG16_LOW = {"RGB;16B": "RGB;16L", "RGBA;16B": "RGBA;16L", "LA;16B": "RGBA"}


class ImageError(ValueError):
    """An image file that is missing, unreadable, or outside the supported rule."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason


class ImageWarning(UserWarning):
    """Something in an image folder that is not read, reported rather than silently ignored."""


def max_pixels_limit(max_pixels: int | None = None) -> int:
    """The pixel limit: ``max_pixels`` if given, else ``$LITESR_MAX_PIXELS``, else the default."""
    if max_pixels is not None:
        if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
            raise ValueError(f"max_pixels must be a positive integer, got {max_pixels!r}")
        return max_pixels
    raw = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{MAX_PIXELS_ENV}={raw!r} is not a positive integer (a pixel count)")
    return value


@contextmanager
def _pil_pixel_limit(limit: int) -> Iterator[None]:
    """Pillow's process-wide bomb limit set to ours while one image is read (readers in
    several threads of one process take turns; the workflow reads in separate processes)."""
    with _PIL_LIMIT_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = limit
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _open_checked(path: Path, limit: int) -> Image.Image:
    """``Image.open`` (which reads only the header), then our limit applied to the declared
    size before anything is decoded. Pillow's own check is off during the open, so that the
    error is always ours, with the size; it is back on (at our limit) for the decoding."""
    Image.MAX_IMAGE_PIXELS = None
    try:
        img = Image.open(path)
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    w, h = img.size
    if w * h > limit:
        img.close()
        raise ImageError(
            path,
            f"image is {w}x{h} = {w * h / 1e6:.1f} megapixels, over the limit of "
            f"{limit / 1e6:g} megapixels (if it is genuine, raise the limit with "
            f"{MAX_PIXELS_ENV}=<pixels>)",
        )
    return img


# Modes Pillow gives an image stored with one channel (an alpha channel aside), as MATLAB's
# imread returns it as an H x W array.
_ONE_CHANNEL_MODES = ("1", "L", "LA", "I", *_GRAY16)


def stored_grey(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is stored with one colour channel (read from its header only).

    The field's evaluation scripts branch on this stored channel count, not on the pixels: a
    one-channel image is measured on its grey values, an RGB one on Y even when its three
    channels are equal. :func:`read_image` replicates a grey image to RGB, so the flag is
    read separately.
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            return img.mode in _ONE_CHANNEL_MODES
    except Exception as exc:  # Pillow raises many unrelated types on corrupt input
        raise ImageError(path, f"cannot read image header ({type(exc).__name__}: {exc})") from exc


def read_image(path: str | os.PathLike[str], *, max_pixels: int | None = None) -> np.ndarray:
    """Read ``path`` as a uint8 H x W x 3 RGB array following the module's stated rule.

    Images of more than ``max_pixels`` pixels (default: ``$LITESR_MAX_PIXELS``, else
    :data:`DEFAULT_MAX_PIXELS`) are refused from their header, before decoding.
    """
    path = Path(path)
    limit = max_pixels_limit(max_pixels)
    if not path.is_file():
        raise ImageError(path, "file not found")
    with _pil_pixel_limit(limit):
        return _read_limited(path, limit)


def _read_limited(path: Path, limit: int) -> np.ndarray:
    try:
        with _open_checked(path, limit) as img:
            frames = getattr(img, "n_frames", 1)
            if frames > 1:
                raise ImageError(
                    path,
                    f"image has {frames} frames (an animation or a multi-page file); only "
                    "single-frame images are supported (save the wanted frame on its own)",
                )
            rawmode = _rawmode(img)
            if img.format == "PNG" and rawmode in _PNG16_LOW:
                return _from_png16(path, rawmode, limit)
            if img.mode in ("RGB", "RGBA", "LA") and rawmode and ";16" in rawmode:
                raise ImageError(path, f"16-bit colour {img.format} images are not supported")
            img.load()
            img = ImageOps.exif_transpose(img)
    except ImageError:
        raise
    except Exception as exc:  # Pillow's decoders raise many unrelated types on corrupt input
        raise ImageError(path, f"cannot decode image ({type(exc).__name__}: {exc})") from exc
    return _to_rgb(path, img)


def _rawmode(img: Image.Image) -> str | None:
    """Raw (file) pixel layout of an opened, not yet loaded image, if Pillow states one."""
    if not img.tile:
        return None
    args = img.tile[0][3]
    if isinstance(args, tuple):
        args = args[0] if args else None
    return args if isinstance(args, str) else None


def _to_rgb(path: Path, img: Image.Image) -> np.ndarray:
    """Apply the stated rule to a decoded 8-bit or 16-bit-grayscale Pillow image."""
    mode = img.mode
    key = img.info.get("transparency")
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or key is not None
        img = img.convert("RGBA" if has_alpha else "RGB")
        mode, key = img.mode, None
    if mode == "1":
        img, mode = img.convert("L"), "L"
    arr = np.asarray(img)
    if mode in _GRAY16 or mode == "I":
        if arr.min(initial=0) < 0 or arr.max(initial=0) > 65535:
            raise ImageError(path, f"32-bit integer image ({mode}) has values outside 0..65535")
        arr = arr.astype(np.uint16)
        _check_key(path, arr, key)
        return _gray_to_rgb(_u16_to_u8(arr))
    if mode == "L":
        _check_key(path, arr, key)
        return _gray_to_rgb(arr)
    if mode == "RGB":
        _check_key(path, arr, key)
        return np.ascontiguousarray(arr)
    if mode == "LA":
        _check_opaque(path, arr[..., 1], 255)
        return _gray_to_rgb(arr[..., 0])
    if mode == "RGBA":
        _check_opaque(path, arr[..., 3], 255)
        return np.ascontiguousarray(arr[..., :3])
    raise ImageError(
        path,
        f"unsupported image mode {mode!r} (supported: RGB, RGBA, LA, L, 1, P, 16-bit grayscale)",
    )


def _from_png16(path: Path, rawmode: str, limit: int) -> np.ndarray:
    """Decode a 16-bit-per-sample colour PNG exactly: high bytes, then low bytes, combined."""
    with _open_checked(path, limit) as hi_img, _open_checked(path, limit) as lo_img:
        lo_img.tile = [(t[0], t[1], t[2], _PNG16_LOW[rawmode]) for t in lo_img.tile]
        hi_img.load()
        lo_img.load()
        hi = np.asarray(ImageOps.exif_transpose(hi_img)).astype(np.uint16)
        lo = np.asarray(ImageOps.exif_transpose(lo_img)).astype(np.uint16)
        key = hi_img.info.get("transparency")
    if rawmode == "LA;16B":
        gray, alpha = lo[..., 0] << 8 | lo[..., 1], lo[..., 2] << 8 | lo[..., 3]
        _check_opaque(path, alpha, 65535)
        return _gray_to_rgb(_u16_to_u8(gray))
    v = hi << 8 | lo
    if rawmode == "RGBA;16B":
        _check_opaque(path, v[..., 3], 65535)
        v = v[..., :3]
    _check_key(path, v, key)
    return _u16_to_u8(v)


def _u16_to_u8(v: np.ndarray) -> np.ndarray:
    """``round(v * 255 / 65535)``; exact in integers since ``v / 257`` never ends in .5."""
    return ((v.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[..., None], 3, axis=2)


def _check_opaque(path: Path, alpha: np.ndarray, opaque: int) -> None:
    n = int(np.count_nonzero(alpha != opaque))
    if n:
        raise ImageError(
            path,
            f"{n} pixel(s) are not fully opaque; transparent images are "
            "not supported (flatten them onto a background first)",
        )


def _check_key(path: Path, arr: np.ndarray, key: object) -> None:
    """Refuse an image whose ``tRNS`` colour key makes some pixel transparent."""
    if key is None or isinstance(key, bytes):
        return
    hits = arr == np.asarray(key) if arr.ndim == 2 else np.all(arr == np.asarray(key), axis=-1)
    n = int(np.count_nonzero(hits))
    if n:
        raise ImageError(
            path,
            f"{n} pixel(s) are transparent (colour key {key}); transparent "
            "images are not supported",
        )


def write_png(path: str | os.PathLike[str], img: np.ndarray) -> None:
    """Write a uint8 H x W x 3 (or H x W) array as PNG atomically, creating parent folders."""
    path = Path(path)
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8:
        raise TypeError(
            f"{path}: write_png needs a uint8 array, got "
            f"{getattr(img, 'dtype', type(img).__name__)}"
        )
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)) or 0 in img.shape:
        raise ValueError(
            f"{path}: write_png needs a non-empty H x W x 3 or H x W array, got shape {img.shape}"
        )
    with atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(img)).save(tmp, format="PNG")


def list_images(folder: str | os.PathLike[str]) -> list[Path]:
    """Sorted image files directly in ``folder`` (by extension, case-insensitive; dotfiles
    such as macOS ``._x.png`` are skipped).

    Raises :class:`ImageError` naming the paths for a broken symbolic link and for two images
    with one name stem; warns (:class:`ImageWarning`) about subfolders that hold images.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    found, broken, subfolders = [], [], []
    for p in sorted(folder.iterdir()):
        if p.name.startswith("."):
            continue
        if p.is_dir():
            if _holds_images(p):
                subfolders.append(p.name)
            continue
        if p.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        if not p.exists():  # a symbolic link to nothing (or a loop)
            broken.append(p)
        elif p.is_file():
            found.append(p)
    if broken:
        targets = ", ".join(f"{p} -> {os.readlink(p)}" for p in broken if p.is_symlink())
        raise ImageError(
            folder, f"broken symbolic link(s) to image(s): {targets or ', '.join(map(str, broken))}"
        )
    if subfolders:
        warnings.warn(
            f"{folder}: images in subfolder(s) {', '.join(subfolders)} are not read (only the "
            "images directly in the folder make the set)",
            ImageWarning,
            stacklevel=2,
        )
    by_stem: dict[str, list[str]] = {}
    for p in found:
        by_stem.setdefault(p.stem, []).append(p.name)
    clashes = [names for names in by_stem.values() if len(names) > 1]
    if clashes:
        raise ImageError(
            folder,
            "images share a name stem and would overwrite each other once prepared: "
            + "; ".join(" and ".join(names) for names in clashes),
        )
    if not found:
        raise ImageError(folder, f"no images ({', '.join(IMAGE_EXTENSIONS)}) in this folder")
    return found


def _holds_images(folder: Path) -> bool:
    """Whether ``folder`` or any folder below it holds an image file (not a hidden one)."""
    try:
        return any(
            p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
            for p in folder.rglob("*")
        )
    except OSError:
        return False
