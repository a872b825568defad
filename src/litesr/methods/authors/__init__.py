"""Released weights as models of the workflow (``authors-<release>``).

Each listed release (one declared beside its architecture, :mod:`litesr.models.releases`) is
imported at every configured scale by the ``import`` step (key map and shapes checked,
SHA-256 checked against the folder's ``SHA256SUMS``) and then evaluated, measured and
reported like any model. Other methods may start from or distil from these models: they read
their arch and args from :func:`litesr.models.releases.imported`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litesr.methods.plan import MadeModel, Paths, Plan
from litesr.methods.registry import Method


def plan(section: dict[str, Any], config: dict[str, Any], paths: Paths) -> Plan:
    """One imported model per release; every release must serve every configured scale."""
    from litesr.models.releases import model_name, release_at, release_file  # imports torch

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
    steps={"import": "litesr.methods.authors.steps:import_release"},
)
