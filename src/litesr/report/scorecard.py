"""The replication scorecard: each paper's claims (:mod:`litesr.claims`), with the paper's
number, the authors' released weights under our evaluation, our own training, and a verdict.

Kinds of claim and their verdicts (``effect`` = ours, ``p`` = paper):

- ``gain``: p (or, with no number, the sign of ``expect``) says which way a change goes.
  *reproduced*: same sign and at least half the size (any size when the paper gives no
  number); *sign only*: same sign, smaller; *not reproduced*: the other sign; *not shown*:
  within the seed spread. An accuracy change of ours from one seed on each side (no spread
  to weigh it against) gets its verdict with *(one seed)* appended, printed as unsettled.
  A ``paired`` claim whose roles have the same number (> 1) of models is judged on the
  per-chain differences: their mean against their max − min.
- ``at_least``: the change is no worse than p − ``tolerance`` (e.g. a pruning loss).
- ``parity``: the change (or value) is within ``tolerance`` of p.
- a claim with no model of ours in this run (or no row for its set and scale) is *not run*.

A claim's ``why`` (and the deviations it names) is kept in the ``why`` column and printed
under the claim when the verdict is unsettled (:func:`prints_why`). A *not run* row keeps the
claim's ``not_run`` there instead (why no config here trains its model), printed where given;
without it a *not run* row needs no reason: the run lacks the model, set or scale.

PSNR/SSIM changes are in dB / SSIM units; cost changes are relative, in %.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from litesr.claims import ACCURACY, COST, why_line
from litesr.paths import Paths
from litesr.tsv import write_tsv

COLUMNS = [
    "paper_name", "id", "claim", "source", "paper_set", "set", "scale", "metric", "unit", "paper",
    "expect",
    "authors", "ours", "spread", "verdict", "why", "ours_models", "authors_models",
]  # fmt: skip
EXPLAINED = ("sign only", "not shown", "not reproduced")
"""Verdicts (their start) under which the printed scorecard shows a claim's ``why``."""
ONE_SEED = " (one seed)"
"""Appended to a gain verdict on one seed a side: no spread, so the effect is not settled."""


def prints_why(verdict: str) -> bool:
    """Whether the printed scorecard shows the row's ``why`` under this verdict: an unsettled
    one, or *not run* (where the row holds the claim's ``not_run``, else nothing)."""
    return verdict.startswith(EXPLAINED) or verdict.endswith(ONE_SEED) or verdict == "not run"


def _values(models: list[str], claim: dict, summary: pd.DataFrame, cost: pd.DataFrame):
    """The claim's metric for each model (NaN where there is no row)."""
    metric, scale = claim["metric"], int(claim["scale"])
    if metric in ACCURACY:
        table, keys = summary, {"set": claim["set"], "scale": scale}
    else:
        table, keys = cost, {"scale": scale}
    rows = table[(table[list(keys)] == pd.Series(keys)).all(axis=1)].set_index("model")[metric]
    return np.array([float(rows.get(m, math.nan)) for m in models])


def effect(groups: list[list[str]], claim: dict, summary, cost) -> tuple[float, float]:
    """(our number, seed spread): the value of a, or a − b (relative % for cost metrics). For a
    ``paired`` accuracy claim with as many models on each side (> 1): the mean and the max −
    min of the per-chain differences. Otherwise the spread is the largest max − min of the
    groups' seeds or, where each group has one model, that of the claim's ``spread`` models
    (the seeds of another role), else unknown (NaN) for an accuracy metric and 0 for a cost
    one (no seed changes a parameter count)."""
    if not groups:
        return math.nan, math.nan
    values = [_values(models, claim, summary, cost) for models in groups]
    paired = claim.get("paired") and claim["metric"] in ACCURACY and len(values) == 2
    if paired and len(values[0]) == len(values[1]) > 1:
        diffs = values[0] - values[1]  # chain k against chain k
        return float(np.mean(diffs)), float(np.ptp(diffs))
    spread = max(float(np.ptp(v)) if len(v) > 1 else 0.0 for v in values)
    if all(len(v) == 1 for v in values):
        if len(claim.get("spread") or []) > 1:
            spread = float(np.ptp(_values(claim["spread"], claim, summary, cost)))
        elif claim["metric"] in ACCURACY:
            spread = math.nan
    means = [float(np.mean(v)) for v in values]
    if len(means) == 1:
        return means[0], spread
    a, b = means
    if claim["metric"] in COST:
        return 100.0 * (a / b - 1.0), 100.0 * spread / b
    return a - b, spread


def verdict(claim: dict, value: float, spread: float) -> str:
    """The verdict on one number (see the module docstring)."""
    if math.isnan(value):
        return "not run"
    kind, paper, tol = claim.get("kind", "gain"), claim.get("paper"), claim.get("tolerance", 0)
    if kind == "parity":
        return "reproduced" if abs(value - paper) <= tol else "not reproduced"
    if kind == "at_least":
        return "reproduced" if value >= paper - tol else "not reproduced"
    if spread and abs(value) <= spread:
        return "not shown (within seed spread)"
    sign = math.copysign(1, paper) if paper else claim["expect"]
    if value * sign <= 0:
        judged = "not reproduced"
    else:
        judged = "reproduced" if paper is None or abs(value) >= abs(paper) / 2 else "sign only"
    return judged + ONE_SEED if math.isnan(spread) else judged


def score(claims: list[dict], summary: pd.DataFrame, cost: pd.DataFrame) -> pd.DataFrame:
    """One row per claim: the paper's number, the authors', ours, the spread and the verdict
    (on ours; on the authors' weights where the claim has no model of ours)."""
    rows = []
    for claim in claims:
        ours, spread = effect(claim["ours"], claim, summary, cost)
        authors, _ = effect(claim["authors"], claim, summary, cost)
        on_authors = not claim["ours"] and claim["authors"]
        judged = verdict(claim, authors, 0.0) if on_authors else verdict(claim, ours, spread)
        if on_authors and judged != "not run":
            judged += " (authors' weights)"
        unit = ACCURACY.get(claim["metric"]) or (
            "%" if len(claim["ours"] or claim["authors"]) == 2 else COST[claim["metric"]]
        )
        rows.append(
            {
                "paper_name": claim["paper_name"],
                "id": claim["id"],
                "claim": claim["claim"],
                "source": claim.get("source", ""),
                "paper_set": claim["paper_set"],
                "set": claim["set"],
                "scale": int(claim["scale"]),
                "metric": claim["metric"],
                "unit": unit,
                "paper": claim.get("paper"),
                "expect": claim.get("expect", 0),
                "authors": authors,
                "ours": ours,
                "spread": spread,
                "verdict": judged,
                "why": claim.get("not_run", "") if judged == "not run" else why_line(claim),
                "ours_models": " − ".join("+".join(g) for g in claim["ours"]),
                "authors_models": " − ".join("+".join(g) for g in claim["authors"]),
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS)


def evidence(row: pd.Series) -> str:
    """The per-image TSVs an accuracy row of ours comes from (the cost table otherwise)."""
    models = [m for part in row["ours_models"].split(" − ") for m in part.split("+") if m]
    if row["metric"] not in ACCURACY:
        return Paths.cost if models else ""
    return " ".join(Paths.evaluation(m, row["scale"], row["set"]) for m in models)


def write_scorecard(
    *, claims: list[dict], summary: Path, cost: Path, out: Path, config: str
) -> pd.DataFrame:
    """:func:`score` from the summary and cost TSVs, with each row's evidence (its per-image
    TSVs) and ``config`` (the config's name and hash), written to ``out``."""
    table = score(claims, pd.read_csv(summary, sep="\t"), pd.read_csv(cost, sep="\t"))
    table["evidence"] = table.apply(evidence, axis=1) if len(table) else []
    table["config"] = config
    write_tsv(table, out)
    return table


def _number(value: float, unit: str, spread: float = math.nan) -> str:
    """A scorecard number for print: a signed change with its unit, or a value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if unit == "params":
        return f"{value:,.0f}"
    text = f"{value:+.2f} {unit}" if unit in ("dB", "%") else f"{value:.4g} {unit}"
    if unit == "SSIM":
        text = f"{value:+.4f}"
    if spread and not math.isnan(spread):
        text += f" [{spread:.2f}]"
    return text.replace("-", "−")


def for_print(table: pd.DataFrame) -> dict[str, Any]:
    """The scorecard as the report's first page shows it: one group per paper; a row's
    ``paper_set`` is the paper's set where the run measured another one (else empty) and its
    ``why`` the claim's reason where the verdict is unsettled, or its ``not_run`` (else
    empty)."""
    papers = []
    for name, rows in table.groupby("paper_name", sort=False):
        lines = []
        for r in rows.itertuples(index=False):
            relative = r.unit in ("%", "dB", "SSIM")
            if r.paper == r.paper:  # a number
                paper = _number(r.paper, r.unit)
            else:
                paper = "higher" if r.expect > 0 else "lower"
            accuracy = r.metric in ACCURACY
            why = getattr(r, "why", "")
            explained = isinstance(why, str) and prints_why(r.verdict)
            lines.append(
                {
                    "claim": r.claim,
                    "where": f"{r.set} ×{r.scale}" if accuracy else f"×{r.scale}",
                    "paper_set": r.paper_set if accuracy and r.paper_set != r.set else "",
                    "paper": paper,
                    "authors": _number(r.authors, r.unit),
                    "ours": _number(r.ours, r.unit, r.spread if relative else math.nan),
                    "verdict": r.verdict,
                    "why": why if explained else "",
                }
            )
        papers.append({"name": name, "rows": lines})
    config = str(table["config"].iloc[0]) if len(table) else ""
    return {"papers": papers, "config": config}
