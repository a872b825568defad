"""Where HR images come from (embedded, folder, download) and how a set is prepared.

A prepared set is a folder ``<out>/HR`` of modcropped HR PNGs, ``<out>/LR`` of their
MATLAB-bicubic LR counterparts (same file names) and ``<out>/manifest.tsv``: one row per
image with its source, sizes and the SHA-256 of the HR and LR PNG files, so that
:func:`data_fingerprint` names the exact pixels a model was trained or tested on.
"""

from __future__ import annotations

import hashlib
import re
import string
from importlib.resources import files
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from litesr.atomic import atomic_dir
from litesr.data.images import list_images, read_image, stored_grey, write_png
from litesr.data.resize import bicubic_degrade, modcrop
from litesr.digest import file_sha256
from litesr.tsv import write_tsv

MANIFEST = "manifest.tsv"
# The manifest columns the fingerprint covers: the image contents, not where they came from
# (a set moved to another folder is the same data).
FINGERPRINT_COLUMNS = ("name", "hr_sha256", "lr_sha256")

SOURCES = ("embedded", "folder", "download")

# What public releases of benchmark sets add to an image's name, stripped when a set is
# prepared: ``img_001_SRF_4_HR`` (the SelfExSR release of Set5, Set14, B100, Urban100),
# ``baby_HR`` and ``baby_GT`` (other copies of Set5 and Set14), ``0801x4`` (DIV2K's per-scale
# names: digits, ``x``, the scale).
RELEASE_SUFFIX = re.compile(r"^(?:(?P<name>.+?)(?:_SRF_\d+_HR|_HR|_GT)|(?P<number>\d+)x\d)$")


def embedded_dir() -> Path:
    """Folder of the photographs that ship with scikit-image (no download needed)."""
    return Path(str(files("skimage") / "data"))


def embedded_images(names: list[str]) -> list[Path]:
    """Paths of scikit-image's bundled images by stem name (``astronaut``, ``chelsea``...)."""
    by_stem = {p.stem: p for p in list_images(embedded_dir())}
    missing = [n for n in names if n not in by_stem]
    if missing:
        raise ValueError(f"embedded image(s) {missing} not found; available: {sorted(by_stem)}")
    return [by_stem[n] for n in names]


def hr_images(source: str, where: str | list[str], scale: int, download_root: Path) -> list[Path]:
    """HR image files of one set.

    ``embedded``: ``where`` is a list of scikit-image image names. ``folder``: a folder path,
    in which ``{scale}`` is replaced by the scale. ``download``: ``where`` names a dataset
    already fetched by ``litesr download`` into ``download_root``.
    """
    if source == "embedded":
        if not isinstance(where, list):
            raise ValueError(f"embedded set must list scikit-image image names, got {where!r}")
        return embedded_images(where)
    if not isinstance(where, str):
        raise ValueError(f"{source} set must be a string, got {where!r}")
    if source == "folder":
        return list_images(folder_path(where, scale))
    if source == "download":
        from litesr.data.download import hr_folder

        return list_images(hr_folder(where, download_root))
    raise ValueError(f"unknown data source {source!r}; use one of {SOURCES}")


def folder_path(where: str, scale: int) -> Path:
    """The folder of a ``folder`` set: ``where`` with ``{scale}`` replaced by the scale.

    Any other brace field (``{Scale}``, ``{0}``, a lone ``{``) is refused with an error naming
    the path; literal braces in a folder name are written ``{{`` and ``}}``.
    """
    hint = "only {scale} is replaced; write {{ and }} for literal braces"
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(where) if f is not None]
    except ValueError as err:
        raise ValueError(f"data folder {where!r}: {err} ({hint})") from None
    bad = sorted({f"{{{f}}}" for f in fields if f != "scale"})
    if bad:
        raise ValueError(f"data folder {where!r} has brace field(s) {', '.join(bad)}; {hint}")
    try:
        return Path(where.format(scale=scale))
    except (ValueError, KeyError, IndexError, AttributeError) as err:
        raise ValueError(f"data folder {where!r}: {type(err).__name__}: {err} ({hint})") from None


def image_name(path: Path) -> str:
    """The name an image gets in a prepared set, its tables and figures: its file name's stem
    without a release's suffix (:data:`RELEASE_SUFFIX`): ``img_001_SRF_4_HR.png`` →
    ``img_001``, ``baby_HR.png`` → ``baby``, ``0801x4.png`` → ``0801``."""
    found = RELEASE_SUFFIX.match(path.stem)
    return (found["name"] or found["number"]) if found else path.stem


def prepare_set(images: list[Path], scale: int, out: Path, progress: bool = True) -> Path:
    """Write modcropped HR and bicubic LR PNGs of ``images`` and their manifest to ``out``.

    An image stored with one channel is written with one channel (HR and LR), so that the
    evaluation can measure it as the field does (:func:`litesr.evaluate.run.measure`). Each
    image is named by :func:`image_name`; two images of one name are refused, both named.

    The folder appears whole or not at all (it is built beside ``out``, then renamed), with
    the permissions the umask gives.
    """
    out = Path(out)
    names = [image_name(p) for p in images]
    clash = sorted({n for n in names if names.count(n) > 1})
    if clash:
        named = [str(p) for p, n in zip(images, names, strict=True) if n in clash]
        raise ValueError(
            f"images of the set would share the name(s) {clash} once release suffixes "
            f"(_SRF_<s>_HR, _HR, _GT, <digits>x<s>) are stripped: {named}; rename one"
        )
    with atomic_dir(out) as tmp:
        rows = []
        for path in tqdm(images, desc=f"prepare {out.name}", disable=not progress):
            hr = read_image(path)
            if min(hr.shape[:2]) < scale:
                raise ValueError(f"{path}: image {hr.shape[:2]} is smaller than the scale {scale}")
            hr = modcrop(hr, scale)
            lr = bicubic_degrade(hr, scale)
            # A source stored with one channel stays so: its measurement depends on it.
            grey = stored_grey(path)
            if grey:
                hr, lr = hr[..., 0], lr[..., 0]
            name = f"{image_name(path)}.png"
            write_png(tmp / "HR" / name, hr)
            write_png(tmp / "LR" / name, lr)
            rows.append(
                {
                    "name": image_name(path),
                    "source": str(path),
                    "hr_h": hr.shape[0],
                    "hr_w": hr.shape[1],
                    "lr_h": lr.shape[0],
                    "lr_w": lr.shape[1],
                    "channels": 1 if grey else 3,
                    "hr_sha256": file_sha256(tmp / "HR" / name),
                    "lr_sha256": file_sha256(tmp / "LR" / name),
                }
            )
        write_tsv(pd.DataFrame(rows), tmp / MANIFEST, float_format=None)
    return out


def data_fingerprint(data_dir: str | Path, *, verify: bool = True) -> str:
    """SHA-256 naming the contents of a prepared set: its images' names and PNG hashes.

    Computed from the manifest's ``name``, ``hr_sha256`` and ``lr_sha256`` columns, sorted by
    name (so neither the source folder nor the listing order matters). With ``verify`` (the
    default) every HR and LR file is hashed again and must match the manifest, and the HR and
    LR folders must hold exactly the manifest's images: a file edited after ``prepare`` is an
    error rather than a fingerprint that no longer describes the data.
    """
    data_dir = Path(data_dir)
    manifest = data_dir / MANIFEST
    if not manifest.is_file():
        raise FileNotFoundError(
            f"{manifest} not found: {data_dir} is not a prepared set (or was prepared by an "
            "older litesr); run `litesr prepare` again"
        )
    table = pd.read_csv(manifest, sep="\t", dtype=str, keep_default_na=False)
    missing = [c for c in FINGERPRINT_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{manifest} lacks column(s) {missing}; run `litesr prepare` again")
    table = table.sort_values("name", kind="stable")
    if verify:
        _verify(data_dir, table)
    lines = ["\t".join(FINGERPRINT_COLUMNS)]
    lines += ["\t".join(row) for row in table[list(FINGERPRINT_COLUMNS)].itertuples(index=False)]
    return hashlib.sha256(("\n".join(lines) + "\n").encode()).hexdigest()


def _verify(data_dir: Path, table: pd.DataFrame) -> None:
    expected = {f"{n}.png" for n in table["name"]}
    for sub, column in (("HR", "hr_sha256"), ("LR", "lr_sha256")):
        folder = data_dir / sub
        found = (
            {p.name for p in folder.iterdir() if not p.name.startswith(".")}
            if folder.is_dir()
            else set()
        )
        if found != expected:
            extra, lost = sorted(found - expected), sorted(expected - found)
            raise ValueError(
                f"{folder} does not hold the images of its manifest "
                f"(not in the manifest: {extra}; missing: {lost}); run `litesr prepare` again"
            )
        for name, digest in zip(table["name"], table[column], strict=True):
            got = file_sha256(folder / f"{name}.png")
            if got != digest:
                raise ValueError(
                    f"{folder / f'{name}.png'} changed after it was prepared (SHA-256 {got}, "
                    f"manifest {digest}); run `litesr prepare` again"
                )
