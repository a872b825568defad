"""A paper's claims, as its method lists them in ``claims.yaml`` beside its schema.

A claim names a metric on a set and scale and the models whose difference (or value) it is
about, by *role*: the method's plan maps roles to this run's model names
(:attr:`litesr.methods.plan.Plan.roles`); a role given several models (seeds) is their mean,
and their max − min is the seed spread. Where every role of a claim has one model, ``spread``
may name another role whose seeds give the spread instead (DIPNet's stages after the student
alone are judged against the student alone's seeds, as its ablation table does); without
one, a single-model claim has no spread. ``paired: true`` says that the two roles' models are
matched by position (one chain per seed: DIPNet's stages, each chain's stage made from the same
chain's previous one at the same seed): the change is then the mean of the per-chain differences
and the spread their max − min, which leaves out what varies between chains and not within one.
The ``authors`` models are roles too, or model names
(``authors-…``, imported by the ``authors`` method). A claim's ``kind`` is ``gain``,
``at_least`` or ``parity``; :mod:`litesr.report.scorecard` gives each its verdict.

Where a run cannot settle a claim (a CPU budget, a deviation from the authors' code), the
claim says why in one line: ``why`` (text) and/or ``deviations`` (ids of the method's
``deviations.yaml`` beside the claims file, checked here). The scorecard prints it under a
claim whose verdict is *sign only*, *not shown*, *not reproduced* or one seed's. Where a
config of the repository cannot train the claim's model at all, ``not_run`` says why in one
line, printed under the claim's *not run* (a run that merely lacks a scale needs none).

The workflow's plan (:mod:`litesr.methods.collect`) loads and resolves the claims; the
report's scorecard scores them. This module imports neither.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ACCURACY = {"psnr_y": "dB", "ssim_y": "SSIM", "psnr_rgb": "dB"}
COST = {
    "params": "params",
    "macs_256_G": "GMACs",
    "macs_720p_G": "GMACs",
    "cpu_latency_ms": "ms",
    "cpu_inference_MiB": "MiB",
}
KINDS = ("gain", "at_least", "parity")
FIELDS = {"id", "claim", "source", "metric", "set", "scale", "kind", "paper", "expect",
          "tolerance", "ours", "authors", "spread", "paired", "why", "not_run",
          "deviations"}  # fmt: skip
WHY_MAX = 200
"""Longest ``why`` or ``not_run`` (characters): it is printed as one line under the claim."""
DEVIATIONS_FILE = "deviations.yaml"
"""A method's audit beside its claims (read here for its ids only; its form is checked by
:mod:`litesr.methods.deviations`, which this module does not import)."""


def load_claims(path: Path) -> dict[str, Any]:
    """A method's ``claims.yaml`` (``paper``: the paper's name, ``claims``: a list), checked;
    a ValueError names the file and the claim."""
    doc = yaml.safe_load(Path(path).read_text())
    if not isinstance(doc, dict) or not isinstance(doc.get("claims"), list):
        raise ValueError(f"{path}: needs `paper` and a list `claims`")
    for claim in doc["claims"]:
        where = f"{path}: claim {claim.get('id', '?')!r}"
        extra = sorted(set(claim) - FIELDS)
        if extra:
            raise ValueError(f"{where}: unknown key(s) {extra}")
        if claim.get("metric") not in {**ACCURACY, **COST}:
            raise ValueError(f"{where}: metric must be one of {[*ACCURACY, *COST]}")
        if claim.get("kind", "gain") not in KINDS:
            raise ValueError(f"{where}: kind must be one of {KINDS}")
        if claim.get("paper") is None and (
            claim.get("kind", "gain") != "gain" or claim.get("expect") not in (1, -1)
        ):
            raise ValueError(
                f"{where}: a claim without a paper number is a gain with `expect` 1 or -1"
            )
        for key in ("ours", "authors"):
            if len(claim.get(key, [])) > 2:
                raise ValueError(f"{where}: `{key}` lists one model (a value) or two (a − b)")
        if not claim.get("ours") and not claim.get("authors"):
            raise ValueError(f"{where}: needs `ours` or `authors`")
        if claim.get("paired") not in (None, True, False) or (
            claim.get("paired") and len(claim.get("ours", [])) != 2
        ):
            raise ValueError(f"{where}: `paired: true` needs two roles in `ours` (a − b)")
        _check_why(claim, where, Path(path))
    return doc


def _check_why(claim: dict[str, Any], where: str, path: Path) -> None:
    """``why`` is one line of text; every id of ``deviations`` is in the method's
    ``deviations.yaml`` beside the claims file."""
    for key in ("why", "not_run"):
        text = claim.get(key)
        if text is not None and (
            not isinstance(text, str)
            or not text.strip()
            or "\n" in text.strip()
            or len(text) > WHY_MAX
        ):
            raise ValueError(f"{where}: `{key}` is one line of text ({WHY_MAX} characters at most)")
    ids = claim.get("deviations")
    if ids is None:
        return
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise ValueError(f"{where}: `deviations` is a list of deviation ids")
    audit = path.with_name(DEVIATIONS_FILE)
    if not audit.is_file():
        raise ValueError(f"{where}: `deviations` names ids, but there is no {audit}")
    entries = (yaml.safe_load(audit.read_text()) or {}).get("deviations") or []
    known = {e.get("id") for e in entries if isinstance(e, dict)}
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise ValueError(f"{where}: deviation id(s) {unknown} are not in {audit}")


def why_line(claim: dict[str, Any]) -> str:
    """The claim's reason in one line: its ``why``, then the deviations it names."""
    why = (claim.get("why") or "").strip()
    ids = claim.get("deviations") or []
    if not ids:
        return why
    named = f"deviation{'s' if len(ids) > 1 else ''} {', '.join(ids)}"
    return f"{why} ({named})" if why else named.capitalize()


def resolve(
    doc: dict[str, Any], roles: dict[str, list[str]], models: list[str], test_sets: list[str]
) -> list[dict[str, Any]]:
    """The claims with roles replaced by this run's model names (empty where a role or an
    authors' model is not in the run) and the set by the first test set where the paper's
    is not one of the run's (noted in the row)."""
    rows = []
    for claim in doc["claims"]:
        ours = [roles.get(role, []) for role in claim.get("ours", [])]
        authors = [roles.get(m) or ([m] if m in models else []) for m in claim.get("authors", [])]
        set_name = claim.get("set", test_sets[0])
        rows.append(
            {
                **claim,
                "paper_name": doc["paper"],
                "set": set_name if set_name in test_sets else test_sets[0],
                "paper_set": set_name,
                "ours": ours if all(ours) else [],
                "authors": authors if authors and all(authors) else [],
                "spread": roles.get(claim.get("spread"), []),
            }
        )
    return rows
