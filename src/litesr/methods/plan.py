"""What a method adds to the workflow, declared once from its config section.

The workflow asks every enabled method for its :class:`Plan` before any rules file is read;
the shared rules then train, make, evaluate, measure and report what the plans list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
    """

    name: str
    step: str
    inputs: dict[str, str]
    params: dict[str, Any]
    reported: bool = True


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


@dataclass(frozen=True)
class Paths:
    """The workflow's file layout, for plans that name files."""

    scales: list[int]
    train_set: str
    test_sets: list[str]

    @staticmethod
    def model(name: str, scale: int) -> str:
        return f"results/models/{name}/x{scale}/model.safetensors"

    @staticmethod
    def train_log(name: str, scale: int) -> str:
        return f"results/models/{name}/x{scale}/train_log.tsv"

    @staticmethod
    def stages(name: str, scale: int) -> str:
        return f"results/models/{name}/x{scale}/stages"

    @staticmethod
    def data(set_name: str, scale: int) -> str:
        return f"results/data/{set_name}/x{scale}"

    @staticmethod
    def evaluation(name: str, scale: int, set_name: str) -> str:
        """The per-image TSV of one model on one test set."""
        return f"results/eval/{name}/x{scale}/{set_name}.tsv"

    @staticmethod
    def sr(name: str, scale: int, set_name: str) -> str:
        """The folder of the SR images that evaluation measured."""
        return f"results/sr/{name}/x{scale}/{set_name}"

    summary = "results/tables/psnr_ssim.tsv"
    scorecard = "results/tables/scorecard.tsv"
    cost = "results/tables/cost.tsv"
    catalog = "results/tables/models.tsv"
    audit = "reports/audit.ipynb"
    report = "reports/all.pdf"

    @staticmethod
    def figure(name: str) -> str:
        return f"results/figures/{name}.png"
