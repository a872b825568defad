"""Where HR images come from (embedded, folder, download) and how a set is prepared.

A prepared set is a folder ``<out>/HR`` of modcropped HR PNGs, ``<out>/LR`` of their
MATLAB-bicubic LR counterparts (same file names) and ``<out>/manifest.tsv``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from importlib.resources import files
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from litesr.data.images import list_images, read_image, write_png
from litesr.data.resize import bicubic_degrade, modcrop

SOURCES = ("embedded", "folder", "download")


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
        return list_images(Path(where.format(scale=scale)))
    if source == "download":
        from litesr.data.download import hr_folder

        return list_images(hr_folder(where, download_root))
    raise ValueError(f"unknown data source {source!r}; use one of {SOURCES}")


def prepare_set(images: list[Path], scale: int, out: Path, progress: bool = True) -> Path:
    """Write modcropped HR and bicubic LR PNGs of ``images`` to ``out`` atomically."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        rows = []
        for path in tqdm(images, desc=f"prepare {out.name}", disable=not progress):
            hr = read_image(path)
            if min(hr.shape[:2]) < scale:
                raise ValueError(f"{path}: image {hr.shape[:2]} is smaller than the scale {scale}")
            hr = modcrop(hr, scale)
            lr = bicubic_degrade(hr, scale)
            name = f"{path.stem}.png"
            write_png(tmp / "HR" / name, hr)
            write_png(tmp / "LR" / name, lr)
            rows.append(
                {
                    "name": path.stem,
                    "source": str(path),
                    "hr_h": hr.shape[0],
                    "hr_w": hr.shape[1],
                    "lr_h": lr.shape[0],
                    "lr_w": lr.shape[1],
                }
            )
        names = [r["name"] for r in rows]
        if len(set(names)) != len(names):
            raise ValueError(f"two images of the set share a file name: {sorted(names)}")
        pd.DataFrame(rows).to_csv(tmp / "manifest.tsv", sep="\t", index=False)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
