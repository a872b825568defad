"""``litesr evaluate MODEL... --sets DIR...``: models scored on folders of HR images, no
workflow needed.

A model is a litesr model file, a release declared in :mod:`litesr.models.releases` (read
from ``--reference``; imported as the workflow's ``authors`` method does) or ``bicubic``.
A set is a folder of HR images (``{scale}`` in it is replaced by the scale); it is prepared
as the workflow prepares it (modcrop, MATLAB-exact bicubic LR, release suffixes stripped
from the image names) into a temporary folder. Either may be named ``NAME=...``; otherwise a
file is named by its stem (by ``<name>`` in a workflow's ``results/models/<name>/x<s>/``), a
release ``authors-<release>`` and a set by its folder, skipping ``HR``, ``GT`` and ``x<s>``
folders (``Set5/x{scale}/HR`` is ``Set5``).

Each model runs at the scales it serves among ``--scale`` (all it serves without it); the
scales it cannot serve are named, with the reason, under the table. The output folder gets
``per_image.tsv`` (as the workflow's per-image TSVs) and ``mean.tsv`` (means over images).
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from litesr.data.images import list_images
from litesr.data.sources import folder_path, prepare_set
from litesr.evaluate.run import BICUBIC, PER_IMAGE_COLUMNS, evaluate_set, summarize
from litesr.report.tables import ABSENT, psnr_ssim_table
from litesr.tsv import write_tsv

NAME = re.compile(r"^(?P<name>[A-Za-z0-9_.-]+)=(?P<ref>.+)$")
SKIPPED_FOLDERS = re.compile(r"^(HR|GT|[xX](\d+|\{scale\}))$")


@dataclass(frozen=True)
class Scored:
    """One model to score: its name, what it is made from and its scales."""

    name: str
    ref: str
    kind: str  # "file", "release" or BICUBIC
    scales: tuple[int, ...]
    absent: str = ""


def split_name(text: str) -> tuple[str | None, str]:
    """``NAME=REF`` → (NAME, REF); anything else → (None, text)."""
    found = NAME.match(text)
    return (found["name"], found["ref"]) if found else (None, text)


def set_name(folder: str) -> str:
    """A set's name from its folder: the last part that is not ``HR``, ``GT`` or ``x<s>``."""
    parts = [p for p in Path(folder).parts if p not in ("/", ".", "..")]
    kept = [p for p in parts if not SKIPPED_FOLDERS.match(p)]
    return kept[-1] if kept else Path(folder).name


def file_model_name(path: Path) -> str:
    """A model file's name: ``<name>`` of a workflow's ``results/models/<name>/x<s>/
    model.safetensors``, the file's stem otherwise."""
    parts = path.parts
    if path.name == "model.safetensors" and len(parts) >= 3 and re.fullmatch(r"x\d+", parts[-2]):
        return parts[-3]
    return path.stem


def _times(scales: list[int] | tuple[int, ...]) -> str:
    return ", ".join(f"×{s}" for s in scales)


def resolve_model(text: str, scales: list[int] | None, reference: Path | None) -> Scored:
    """What ``text`` names (not bicubic), and the scales it runs at; a ValueError says why
    it cannot run."""
    from litesr.models.releases import families, model_name, release_at, releases, served_scales
    from litesr.models.store import read_meta

    name, ref = split_name(text)
    path = Path(ref)
    if path.is_file():
        own = int(read_meta(path)["args"]["scale"])
        kind, served, why = "file", [own], f"the file is a ×{own} model"
        name = name or file_model_name(path)
    elif ref in releases() or ref in families():
        if reference is None:
            raise ValueError(f"{ref} is a release: give the folder of its file with --reference")
        served = served_scales(ref)
        kind, why = "release", f"the authors released it for {_times(served)} only"
        name = name or model_name(ref)
    else:
        known = sorted({*releases(), *families()})
        raise ValueError(
            f"{ref}: no such model file, and not a release (known: {', '.join(known)}) nor bicubic"
        )
    found = [s for s in (scales or served) if s in served]
    if not found:
        raise ValueError(f"{ref}: {why}; --scale asks for {_times(scales or [])}")
    if kind == "release":
        for scale in found:
            file = reference / release_at(ref, scale).file
            if not file.is_file():
                raise FileNotFoundError(f"weights of release {ref!r} at ×{scale} not found: {file}")
    missing = [s for s in scales or [] if s not in served]
    return Scored(
        name, ref, kind, tuple(found), f"not at {_times(missing)}: {why}" if missing else ""
    )


def resolve_models(
    models: list[str], scales: list[int] | None, reference: Path | None
) -> list[Scored]:
    """:func:`resolve_model` of each, in order; ``bicubic`` runs at ``scales``, or at every
    scale another model runs at."""
    found = {
        i: resolve_model(m, scales, reference)
        for i, m in enumerate(models)
        if split_name(m)[1] != BICUBIC
    }
    at = scales or sorted({s for m in found.values() for s in m.scales})
    if not at:
        raise ValueError("bicubic alone: give its scales with --scale")
    for i, text in enumerate(models):
        if i not in found:
            found[i] = Scored(split_name(text)[0] or BICUBIC, BICUBIC, BICUBIC, tuple(at))
    return [found[i] for i in range(len(models))]


def score_models(
    models: list[str],
    sets: list[str],
    out: Path,
    *,
    scales: list[int] | None = None,
    reference: Path | None = None,
    device: str = "auto",
    progress: bool = True,
    backend: str = "auto",
    threads: int | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """Score ``models`` on ``sets`` (see the module's docstring); write ``out/per_image.tsv``
    and ``out/mean.tsv``. Returns the means and one note per model absent at some scale.
    Every model and set is checked before any image is run. ``backend`` and ``threads``: as
    :func:`litesr.evaluate.run.evaluate_set` takes them."""
    from litesr.models.releases import import_weights, release_at

    scored = resolve_models(models, scales, reference)
    named_sets = [split_name(s) for s in sets]
    named_sets = [(name or set_name(folder), folder) for name, folder in named_sets]
    for what, names in (("models", [m.name for m in scored]), ("sets", [n for n, _ in named_sets])):
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"two {what} are named {twice}; name them with NAME=...")
    used = sorted({s for m in scored for s in m.scales})
    for _, folder in named_sets:
        for scale in used:
            list_images(folder_path(folder, scale))  # a missing or empty folder, named
    out = Path(out)
    rows = []
    with tempfile.TemporaryDirectory(prefix="litesr-evaluate-") as tmp:
        work = Path(tmp)
        data = {
            (set_, scale): prepare_set(
                list_images(folder_path(folder, scale)),
                scale,
                work / "data" / set_ / f"x{scale}",
                progress=progress,
            )
            for set_, folder in named_sets
            for scale in used
        }
        for model in scored:
            for scale in model.scales:
                file = model.ref
                if model.kind == "release":
                    file = import_weights(
                        release_at(model.ref, scale).name,
                        reference,
                        scale,
                        work / "models" / f"{model.name}_x{scale}.safetensors",
                    )
                for set_, _ in named_sets:
                    rows.append(
                        evaluate_set(
                            str(file),
                            data[set_, scale],
                            scale,
                            work / "eval" / f"{model.name}_x{scale}_{set_}.tsv",
                            model_name=model.name,
                            set_name=set_,
                            device=device,
                            progress=progress,
                            backend=backend,
                            threads=threads,
                        )
                    )
    per_image = pd.concat(rows, ignore_index=True)[PER_IMAGE_COLUMNS]
    means = summarize(per_image)
    write_tsv(per_image, out / "per_image.tsv")
    write_tsv(means, out / "mean.tsv")
    return means, [f"{m.name}: {m.absent}" for m in scored if m.absent]


def mean_table(means: pd.DataFrame, notes: list[str]) -> str:
    """The means as SR papers print them (PSNR / SSIM per set and scale), then the notes."""
    table = psnr_ssim_table(means).fillna(ABSENT)
    lines = [table.to_string()]
    lines += [f"{ABSENT} {note}" for note in notes]
    return "\n".join(lines)
