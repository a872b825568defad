"""The replication scorecard: claims files, role resolution, numbers and verdicts."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import yaml
from conftest import REPO

from litesr.claims import DEVIATIONS_FILE, load_claims, resolve, why_line
from litesr.methods.collect import collect
from litesr.methods.deviations import FILE
from litesr.methods.plan import Paths
from litesr.methods.registry import methods
from litesr.report.scorecard import for_print, score, verdict


def summary(values: dict[str, float], set_name: str = "Set5", scale: int = 4) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "model": m,
                "set": set_name,
                "scale": scale,
                "psnr_y": v,
                "ssim_y": 0.8,
                "psnr_rgb": v,
            }  # fmt: skip
            for m, v in values.items()
        ]
    )


def cost(values: dict[str, float], scale: int = 4) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"model": m, "scale": scale, "cpu_latency_ms": v, "params": 100}
            for m, v in values.items()
        ]
    )


def claim(**kw) -> dict:
    base = {"id": "c", "claim": "x", "metric": "psnr_y", "set": "Set5", "scale": 4}
    return {**base, **kw}


@pytest.mark.parametrize(
    ("kw", "value", "spread", "expected"),
    [
        ({"paper": 0.25}, 0.20, 0.0, "reproduced"),
        ({"paper": 0.25}, 0.125, 0.0, "reproduced"),
        ({"paper": 0.25}, 0.10, 0.0, "sign only"),
        ({"paper": 0.25}, -0.10, 0.0, "not reproduced"),
        ({"paper": 0.25}, 0.20, 0.30, "not shown (within seed spread)"),
        ({"paper": None, "expect": -1}, -3.0, 0.0, "reproduced"),
        ({"paper": None, "expect": 1}, -0.01, 0.0, "not reproduced"),
        ({"kind": "parity", "paper": 0.0, "tolerance": 0.01}, 0.005, 0.0, "reproduced"),
        ({"kind": "parity", "paper": 0.0, "tolerance": 0.01}, -0.02, 0.0, "not reproduced"),
        ({"kind": "at_least", "paper": -0.02, "tolerance": 0.1}, -0.11, 0.0, "reproduced"),
        ({"kind": "at_least", "paper": -0.02, "tolerance": 0.1}, -0.5, 0.0, "not reproduced"),
        ({"paper": 0.25}, math.nan, 0.0, "not run"),
        ({"paper": 0.25}, 0.20, math.nan, "reproduced (one seed)"),
        ({"paper": None, "expect": 1}, -0.01, math.nan, "not reproduced (one seed)"),
        ({"kind": "at_least", "paper": -0.02, "tolerance": 0.1}, -0.11, math.nan, "reproduced"),
    ],
)
def test_verdicts(kw, value, spread, expected):
    assert verdict(claim(**kw), value, spread) == expected


def test_scores_differences_means_of_seeds_and_relative_cost():
    doc = {
        "paper": "P",
        "claims": [
            claim(id="gain", paper=0.25, ours=["new", "old"], authors=["authors-a", "authors-b"]),
            claim(id="seeds", expect=1, ours=["new", "base"]),  # +0.2 against a spread of 0.3
            claim(id="time", metric="cpu_latency_ms", expect=-1, ours=["new", "old"]),
            claim(id="absent", expect=1, ours=["new", "missing"]),
            claim(id="value", metric="params", kind="parity", paper=100, authors=["authors-a"]),
        ],
    }
    roles = {"new": ["n"], "old": ["o"], "base": ["b0", "b1", "b2"]}
    models = ["n", "o", "b0", "b1", "b2", "authors-a", "authors-b"]
    claims = resolve(doc, roles, models, ["Set5"])
    acc = summary({"n": 30.3, "o": 30.0, "b0": 30.1, "b1": 30.25, "b2": 29.95, "authors-a": 31.0,
                   "authors-b": 30.7})  # fmt: skip
    table = score(claims, acc, cost({"n": 70.0, "o": 100.0, "authors-a": 1.0})).set_index("id")
    assert table.loc["gain", "ours"] == pytest.approx(0.3)
    assert table.loc["gain", "authors"] == pytest.approx(0.3)
    assert table.loc["gain", "verdict"] == "reproduced (one seed)"
    assert table.loc["seeds", "ours"] == pytest.approx(0.2)
    assert table.loc["seeds", "spread"] == pytest.approx(0.3)
    assert table.loc["seeds", "verdict"] == "not shown (within seed spread)"
    assert table.loc["time", "ours"] == pytest.approx(-30.0)
    assert table.loc["time", "unit"] == "%"
    assert table.loc["absent", "verdict"] == "not run"
    assert table.loc["value", "verdict"] == "reproduced (authors' weights)"
    printed = for_print(table.reset_index().assign(config="c.yaml"))
    rows = printed["papers"][0]["rows"]
    assert rows[0]["ours"] == "+0.30 dB" and rows[1]["paper"] == "higher"


def test_a_set_the_run_lacks_is_replaced_by_its_first_test_set_and_said():
    doc = {"paper": "P", "claims": [claim(expect=1, ours=["a", "b"])]}
    (row,) = resolve(doc, {"a": ["x"], "b": ["y"]}, ["x", "y"], ["skimage-test"])
    assert (row["set"], row["paper_set"]) == ("skimage-test", "Set5")
    table = score([row], summary({"x": 30.2, "y": 30.0}, "skimage-test"), cost({}))
    (printed,) = for_print(table.assign(config="c.yaml"))["papers"][0]["rows"]
    assert (printed["where"], printed["paper_set"]) == ("skimage-test ×4", "Set5")


@pytest.mark.parametrize(
    ("bad", "named"),
    [
        ({"metric": "psnr"}, "metric"),
        ({"kind": "better"}, "kind"),
        ({"paper": None}, "expect"),
        ({"ours": [], "authors": []}, "needs `ours` or `authors`"),
        ({"colour": "red"}, "unknown key"),
        ({"paired": True, "ours": ["a"]}, "paired"),
    ],
)
def test_a_bad_claims_file_is_named(tmp_path, bad, named):
    path = tmp_path / "claims.yaml"
    entry = {**claim(paper=0.1, ours=["a", "b"]), **bad}
    path.write_text(yaml.safe_dump({"paper": "P", "claims": [entry]}))
    with pytest.raises(ValueError, match=named) as err:
        load_claims(path)
    assert str(path) in str(err.value)


def test_single_model_roles_take_the_spread_of_the_role_the_claim_names():
    doc = {
        "paper": "P",
        "claims": [
            claim(id="stage", expect=1, ours=["new", "old"], spread="alone"),  # +0.2 vs 0.3
            claim(id="none", expect=1, ours=["new", "old"]),  # no spread: judged on its sign
            claim(id="own", expect=1, ours=["base", "old"], spread="alone"),  # its own seeds
        ],
    }
    roles = {"new": ["n"], "old": ["o"], "alone": ["a0", "a1"], "base": ["b0", "b1"]}
    claims = resolve(doc, roles, ["n", "o", "a0", "a1", "b0", "b1"], ["Set5"])
    acc = summary({"n": 30.2, "o": 30.0, "a0": 29.8, "a1": 30.1, "b0": 30.5, "b1": 30.6})
    table = score(claims, acc, cost({})).set_index("id")
    assert table.loc["stage", "spread"] == pytest.approx(0.3)
    assert table.loc["stage", "verdict"] == "not shown (within seed spread)"
    assert math.isnan(table.loc["none", "spread"])
    assert table.loc["none", "verdict"] == "reproduced (one seed)"
    assert table.loc["own", "spread"] == pytest.approx(0.1)


def test_paired_roles_are_judged_on_the_per_chain_differences():
    """Chains k of two stages: +0.20, +0.25, +0.30 is shown against their spread 0.10, where
    the stages' own seed spreads (0.5) would not separate them; unequal counts fall back."""
    doc = {
        "paper": "P",
        "claims": [
            claim(id="paired", expect=1, ours=["late", "early"], paired=True),
            claim(id="unpaired", expect=1, ours=["late", "early"]),
            claim(id="uneven", expect=1, ours=["late", "two"], paired=True),
        ],
    }
    roles = {"late": ["l0", "l1", "l2"], "early": ["e0", "e1", "e2"], "two": ["e0", "e1"]}
    early = {"e0": 30.0, "e1": 30.5, "e2": 30.2}
    late = {"l0": 30.2, "l1": 30.75, "l2": 30.5}
    claims = resolve(doc, roles, [*early, *late], ["Set5"])
    table = score(claims, summary({**early, **late}), cost({})).set_index("id")
    assert table.loc["paired", "ours"] == pytest.approx(0.25)
    assert table.loc["paired", "spread"] == pytest.approx(0.10)
    assert table.loc["paired", "verdict"] == "reproduced"
    assert table.loc["unpaired", "ours"] == pytest.approx(0.25)
    assert table.loc["unpaired", "spread"] == pytest.approx(0.55)
    assert table.loc["unpaired", "verdict"] == "not shown (within seed spread)"
    assert table.loc["uneven", "spread"] == pytest.approx(0.55)  # the larger max − min


def test_every_claim_names_roles_the_repositorys_configs_provide():
    """A misspelled role would make a claim silently 'not run' in every config."""
    provided: dict[str, set[str]] = {}
    for path in sorted((REPO / "config").glob("*.yaml")):
        config = yaml.safe_load(path.read_text())
        if "scales" not in config:
            continue
        data = config["data"]
        train = next(iter(data.get("train", {})), None)  # released-only configs train nothing
        paths = Paths(config["scales"], train, list(data["test"]))
        for name, method in methods().items():
            if name in config.get("methods", {}):
                section = config["methods"][name]
                provided.setdefault(name, set()).update(method.plan(section, config, paths).roles)
        assert collect(config, paths).claims is not None
    for name, method in methods().items():
        if method.claims is None:
            continue
        doc = load_claims(method.claims)
        for c in doc["claims"]:
            unknown = {*c.get("ours", []), *([c["spread"]] if "spread" in c else [])}
            unknown -= provided[name]
            assert not unknown, f"{name} claim {c['id']}: roles {unknown} in no config"


def _claims_file(tmp_path, entry: dict, deviations: list[str] | None = None):
    """A claims file with one claim, beside a deviations file listing ``deviations``."""
    if deviations is not None:
        doc = {
            "source": {"repository": "o/r", "commit": "a" * 40, "folder": "x"},
            "deviations": [
                {"id": i, "what": "w", "authors": "a", "ours": "o", "class": "budget",
                 "effect": "e"}
                for i in deviations
            ],
        }  # fmt: skip
        (tmp_path / "deviations.yaml").write_text(yaml.safe_dump(doc))
    path = tmp_path / "claims.yaml"
    path.write_text(yaml.safe_dump({"paper": "P", "claims": [entry]}))
    return path


def test_why_and_deviations_are_read_and_checked_against_the_methods_deviations(tmp_path):
    entry = claim(paper=0.1, ours=["a", "b"], why="a short CPU run", deviations=["round-budget"])
    doc = load_claims(_claims_file(tmp_path, entry, ["round-budget", "other"]))
    assert why_line(doc["claims"][0]) == "a short CPU run (deviation round-budget)"
    assert why_line(claim(deviations=["x", "y"])) == "Deviations x, y"
    assert why_line(claim()) == ""
    assert DEVIATIONS_FILE == FILE, "claims read the file litesr.methods.deviations checks"


@pytest.mark.parametrize(
    ("extra", "deviations", "named"),
    [
        ({"deviations": ["missing"]}, ["round-budget"], r"\['missing'\] are not in"),
        ({"deviations": ["round-budget"]}, None, "there is no"),
        ({"deviations": "round-budget"}, ["round-budget"], "list of deviation ids"),
        ({"why": "two\nlines"}, None, "one line"),
        ({"why": "x" * 201}, None, "one line"),
        ({"why": " "}, None, "one line"),
        ({"not_run": "two\nlines"}, None, "`not_run` is one line"),
    ],
)
def test_a_bad_why_or_deviation_is_named(tmp_path, extra, deviations, named):
    path = _claims_file(tmp_path, {**claim(paper=0.1, ours=["a", "b"]), **extra}, deviations)
    with pytest.raises(ValueError, match=named) as err:
        load_claims(path)
    assert str(path) in str(err.value)


def test_why_is_a_scorecard_column_printed_only_under_unsettled_verdicts():
    doc = {
        "paper": "P",
        "claims": [
            claim(id="good", paper=0.25, ours=["new", "old"], why="w1", deviations=["d1"]),
            claim(id="bad", paper=0.25, ours=["old", "new"], why="w2"),
            claim(id="small", paper=0.25, ours=["half", "old"], deviations=["d2"]),
            claim(id="absent", paper=0.25, ours=["new", "missing"], why="w3"),
            claim(id="plain", paper=0.25, ours=["old", "new"]),
        ],
    }
    roles = {"new": ["n0", "n1"], "old": ["o"], "half": ["h0", "h1"]}
    claims = resolve(doc, roles, ["n0", "n1", "o", "h0", "h1"], ["Set5"])
    acc = summary({"n0": 30.3, "n1": 30.31, "o": 30.0, "h0": 30.05, "h1": 30.06})
    table = score(claims, acc, cost({}))
    assert list(table.verdict) == [
        "reproduced", "not reproduced", "sign only", "not run", "not reproduced",
    ]  # fmt: skip
    assert list(table.why) == ["w1 (deviation d1)", "w2", "Deviation d2", "", ""]
    rows = for_print(table.assign(config="c.yaml"))["papers"][0]["rows"]
    assert [r["why"] for r in rows] == ["", "w2", "Deviation d2", "", ""]


def test_a_claim_not_run_prints_its_not_run_reason_and_not_its_why():
    doc = {
        "paper": "P",
        "claims": [
            claim(id="blocked", expect=1, ours=["new", "missing"], why="w", not_run="needs a GPU"),
            claim(id="scale", expect=1, ours=["new", "missing"], why="w"),
        ],
    }
    claims = resolve(doc, {"new": ["n"]}, ["n"], ["Set5"])
    table = score(claims, summary({"n": 30.0}), cost({}))
    assert list(table.verdict) == ["not run", "not run"]
    rows = for_print(table.assign(config="c.yaml"))["papers"][0]["rows"]
    assert [r["why"] for r in rows] == ["needs a GPU", ""]


def test_one_seed_a_side_is_unsettled_and_prints_its_why():
    doc = {"paper": "P", "claims": [claim(paper=0.25, ours=["new", "old"], why="w")]}
    claims = resolve(doc, {"new": ["n"], "old": ["o"]}, ["n", "o"], ["Set5"])
    table = score(claims, summary({"n": 30.3, "o": 30.0}), cost({}))
    assert table.verdict[0] == "reproduced (one seed)" and math.isnan(table.spread[0])
    (row,) = for_print(table.assign(config="c.yaml"))["papers"][0]["rows"]
    assert row["why"] == "w" and row["ours"] == "+0.30 dB"


def test_a_scorecard_written_before_the_why_column_still_prints():
    claims = resolve({"paper": "P", "claims": [claim(expect=1, ours=["a", "b"])]},
                     {"a": ["x"], "b": ["y"]}, ["x", "y"], ["Set5"])  # fmt: skip
    table = score(claims, summary({"x": 29.0, "y": 30.0}), cost({})).drop(columns="why")
    (row,) = for_print(table.assign(config="c.yaml"))["papers"][0]["rows"]
    assert row["verdict"] == "not reproduced (one seed)" and row["why"] == ""


def test_the_ail_and_dipnet_claims_say_why_a_cpu_run_cannot_settle_them():
    """Every AIL and DIPNet claim judged on a trained model of ours says why where a CPU
    config cannot settle it; the exact merge needs no reason."""
    for name in ("ail", "dipnet"):
        doc = load_claims(methods()[name].claims)
        unexplained = [
            c["id"] for c in doc["claims"]
            if c.get("ours") and c["id"] != "dipnet-reparam-psnr" and not why_line(c)
        ]  # fmt: skip
        assert not unexplained, f"{name}: {unexplained}"
