"""What a method adds to the workflow, declared once from its config section.

The workflow asks every enabled method for its :class:`Plan` before any rules file is read;
the shared rules then train, make, evaluate, measure and report what the plans list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from litesr.paths import Paths

__all__ = ["Figure", "MadeModel", "Paths", "Plan", "Table", "TrainedModel"]


@dataclass(frozen=True)
class TrainedModel:
    """A model the shared ``train`` rule makes plainly (e.g. a pre-trained starting point)."""

    name: str
    arch: str
    args: dict[str, Any]
    train: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)
    reported: bool = True


@dataclass(frozen=True)
class MadeModel:
    """A model one of the method's steps makes from other models, at every scale.

    ``inputs`` maps the step's keyword to a model name (its weights at the same scale), to
    ``"@train"`` (the prepared training set at that scale) or to ``"file:<path>"`` (a file
    outside the workflow; ``{scale}`` in the path is replaced by the scale). ``params`` are
    the step's other keyword arguments (JSON). The step also gets ``scale``, ``out``,
    ``log``, ``stages`` (a folder for resumable stage files) and ``device``.

    ``scales`` restricts it to some of the configured scales (None: every one); ``absent``
    says why it is not made at the others (the report prints it beside the empty cells).
    """

    name: str
    step: str
    inputs: dict[str, str]
    params: dict[str, Any]
    reported: bool = True
    scales: tuple[int, ...] | None = None
    absent: str = ""


@dataclass(frozen=True)
class Figure:
    """A report figure drawn by the method's figure ``kind`` with ``files`` and ``params`` as
    its keyword arguments (JSON); the paths in ``files`` are also the rule's inputs."""

    name: str
    title: str
    kind: str
    files: dict[str, str | list[str]]
    params: dict[str, Any] = field(default_factory=dict)
    caption: str = ""


@dataclass(frozen=True)
class Table:
    """A report table made by the method's table ``kind`` with ``params``."""

    title: str
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    caption: str = ""


@dataclass(frozen=True)
class Plan:
    """What a method adds; ``roles`` names the models its claims (``claims.yaml``) are about:
    a role → this run's model names (several: seeds, averaged in the scorecard)."""

    trained: list[TrainedModel] = field(default_factory=list)
    made: list[MadeModel] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    roles: dict[str, list[str]] = field(default_factory=dict)
