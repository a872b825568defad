"""The workflow's file layout: every path a rule, a plan or a report names, spelled once."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Paths:
    """The workflow's file layout, for plans that name files; ``train_set`` is None in a
    config that trains nothing."""

    scales: list[int]
    train_set: str | None
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
