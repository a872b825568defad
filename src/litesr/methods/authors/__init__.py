"""Released weights and model files as models of the workflow.

Each listed release (one declared beside its architecture, :mod:`litesr.models.releases`) is
imported by the ``import`` step (key map and shapes checked, SHA-256 checked against the
folder's ``SHA256SUMS``) as the model ``authors-<release>``; each listed file (``files``: a
litesr model file by the name it gets here) is checked and copied by the ``file`` step. Both
are then evaluated, measured and reported like any model, so a config of these alone scores
released models without training anything. Other methods may start from or distil from
imported releases: they read their arch and args from
:func:`litesr.models.releases.imported`.

Scales: a release is made at the configured scales it serves (``{name, scales}`` lists them
explicitly); a file whose path has ``{scale}`` at every configured scale (or its ``scales``),
one without at the scale of the model it holds. The report says why a model is absent at a
configured scale.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litesr.methods.plan import MadeModel, Paths, Plan
from litesr.methods.registry import Method


def _times(scales: list[int]) -> str:
    return ", ".join(f"×{s}" for s in scales)


def release_scales(release: str, asked: list[int] | None, scales: list[int]) -> list[int]:
    """The scales a release is imported at: ``asked`` (each must be served), else every
    configured scale it serves (at least one); a ValueError names the release."""
    from litesr.models.releases import served_scales  # imports torch

    served = served_scales(release)
    if asked is None:
        found = [s for s in scales if s in served]
        if not found:
            raise ValueError(
                f"releases: the authors released {release!r} for {_times(served)} only, not "
                f"{_times(scales)}: none of `scales`"
            )
        return found
    wrong = [s for s in asked if s not in served]
    if wrong:
        raise ValueError(
            f"releases: {release!r} is asked for at {_times(wrong)}, but the authors released "
            f"it for {_times(served)} only"
        )
    return asked


def file_scales(name: str, path: str, asked: list[int] | None, scales: list[int]) -> list[int]:
    """The scales of a model file: ``asked`` or every configured one where the path has
    ``{scale}``; otherwise the scale of the model it holds (read from its header)."""
    if "{scale}" in path:
        return scales if asked is None else asked
    from litesr.models.store import read_meta  # imports torch

    try:
        own = int(read_meta(path)["args"]["scale"])
    except (OSError, ValueError, KeyError) as err:
        raise ValueError(
            f"files.{name}: {err} (a path without {{scale}} is read for its model's scale)"
        ) from None
    if asked not in (None, [own]):
        raise ValueError(f"files.{name}: {path} is a ×{own} model, not {_times(asked)}")
    return [own]


def plan(section: dict[str, Any], config: dict[str, Any], paths: Paths) -> Plan:
    """One imported model per release and one copied model per file, each at its scales."""
    from litesr.models.releases import listed, model_name, release_file, served_scales

    made = []
    for entry in section.get("releases", []):
        release, asked = listed(entry)
        scales = release_scales(release, asked, paths.scales)
        absent = (
            "left out by its `scales` in methods.authors.releases"
            if asked is not None
            else f"the authors released it for {_times(served_scales(release))} only"
        )
        weights = Path(section["reference"]) / release_file(release)
        made.append(
            MadeModel(
                name=model_name(release),
                step="import",
                inputs={"weights": "file:" + weights.as_posix()},
                params={"release": release},
                scales=tuple(scales),
                absent=absent,
            )
        )
    for name, entry in section.get("files", {}).items():
        path, asked = (
            (entry, None) if isinstance(entry, str) else (entry["path"], entry.get("scales"))
        )
        scales = file_scales(name, path, asked, paths.scales)
        absent = (
            f"the file is a ×{scales[0]} model"
            if "{scale}" not in path
            else "left out by its `scales` in methods.authors.files"
        )
        made.append(
            MadeModel(
                name=name,
                step="file",
                inputs={"weights": "file:" + path},
                params={},
                scales=tuple(scales),
                absent=absent,
            )
        )
    return Plan(made=made)


METHOD = Method(
    name="authors",
    schema=Path(__file__).with_name("schema.yaml"),
    plan=plan,
    steps={
        "import": "litesr.methods.authors.steps:import_release",
        "file": "litesr.methods.authors.steps:copy_file",
    },
)
