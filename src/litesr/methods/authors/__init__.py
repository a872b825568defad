"""The papers' authors' released weights as models of the workflow (``authors-<release>``).

Each listed release is imported at every configured scale by the ``import`` step
(:func:`litesr.models.authors.import_weights`: key map and shapes checked, SHA-256 checked
against the folder's ``SHA256SUMS``) and then evaluated, measured and reported like any
model. Other methods may start from or distil from these models (see :func:`model_spec`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litesr.methods.plan import MadeModel, Paths, Plan
from litesr.methods.registry import Method

PREFIX = "authors-"


def model_name(release: str) -> str:
    """The workflow's name of a release's model."""
    return PREFIX + release


def model_spec(config: dict[str, Any], name: str) -> tuple[str, dict[str, Any]] | None:
    """``(arch, args)`` of the authors' model ``name`` when the config imports it, else None
    (for other methods' plans, which may name it as a teacher or a starting point)."""
    section = config.get("methods", {}).get("authors")
    if (
        not section
        or not name.startswith(PREFIX)
        or name[len(PREFIX) :] not in section.get("releases", [])
    ):
        return None
    from litesr.models.authors import release_at  # imports torch: not at module level

    rel = release_at(name[len(PREFIX) :], config["scales"][0])
    return rel.arch, dict(rel.args)


def plan(section: dict[str, Any], config: dict[str, Any], paths: Paths) -> Plan:
    """One imported model per release; every release must serve every configured scale."""
    from litesr.models.authors import release_at, release_file  # imports torch: not at module level

    reference = Path(section["reference"])
    made = []
    for release in section["releases"]:
        for scale in paths.scales:
            release_at(release, scale)  # a ValueError names the release and the scale
        made.append(
            MadeModel(
                name=model_name(release),
                step="import",
                inputs={"weights": "file:" + (reference / release_file(release)).as_posix()},
                params={"release": release},
            )
        )
    return Plan(made=made)


METHOD = Method(
    name="authors",
    schema=Path(__file__).with_name("schema.yaml"),
    plan=plan,
    steps={"import": "litesr.models.authors:import_release"},
)
