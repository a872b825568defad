"""A corpus of bad configurations: each fails the dry run at parse time, naming the key."""

from __future__ import annotations

import copy

import pytest
import yaml
from conftest import REPO
from test_workflow import snakemake, workflow_copy

from litesr.config_check import strict_load

DEFAULT = yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def _set(path: str, value):
    def change(cfg: dict) -> None:
        *parents, last = path.split(".")
        node = cfg
        for key in parents:
            node = node[key]
        if value is _DELETE:
            del node[last]
        else:
            node[last] = value

    return change


_DELETE = object()

CASES = {
    "checkpoint_every zero": (_set("models.teacher.train.checkpoint_every", 0), "checkpoint_every"),
    "checkpoint_every text": (_set("models.teacher.train.checkpoint_every", "often"), "often"),
    "negative width": (_set("models.teacher.args.n_feats", -8), "models.teacher.args"),
    "unknown arch argument": (_set("models.student.args.depth", 3), "models.student.args"),
    "ail teacher not vdsr": (_set("methods.ail.teacher", "teacher"), "ail.teacher"),
    "ail teacher missing": (_set("methods.ail.teacher", _DELETE), "teacher"),
    "ail teacher unknown": (_set("methods.ail.teacher", "nobody"), "nobody"),
    "crop set missing": (_set("report.crop.set", _DELETE), "set"),
    "crop set unknown": (_set("report.crop.set", "nowhere"), "nowhere"),
    "grad_clip text": (_set("methods.ail.round.grad_clip", "x"), "grad_clip"),
    "milestones text": (_set("methods.ail.round.milestones", "ten"), "ten"),
    "misspelled recipe key": (_set("models.student.train.stpes", 10), "stpes"),
    "model named bicubic": (_set("models.bicubic", DEFAULT["models"]["student"]), "bicubic"),
    "set named dot": (_set("data.test", {".": ["camera"]}), "'.'"),
    "set named dotdot": (_set("data.test", {"..": ["camera"]}), "'..'"),
    "absolute download_root": (_set("data.download_root", "/tmp/x"), "/tmp/x"),
    "dotdot download_root": (_set("data.download_root", "a/../../b"), "a/../../b"),
    "unknown method": (_set("methods.dipnat", {}), "dipnat"),
    "ail maps width": (_set("methods.ail.maps.width", 5), "maps.width"),
    "train set also a test set": (
        _set("data.test", {"skimage-train": ["camera"]}),
        "skimage-train",
    ),
}


# One case of each kind of check runs by default (schema, recipe, method section, set names,
# paths, cross-checks); the rest, each a Snakemake start of about 15 s, with the slow tests.
DEFAULT_CASES = {
    "checkpoint_every zero",
    "unknown arch argument",
    "ail teacher unknown",
    "set named dotdot",
    "absolute download_root",
    "train set also a test set",
}


@pytest.mark.parametrize(
    "case",
    [c if c in DEFAULT_CASES else pytest.param(c, marks=pytest.mark.slow) for c in sorted(CASES)],
)
def test_a_bad_config_fails_at_parse_time_naming_the_key(case, tmp_path):
    change, named = CASES[case]
    cfg = copy.deepcopy(DEFAULT)
    change(cfg)
    wd = workflow_copy(tmp_path)
    (wd / "bad.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    result = snakemake("-n", "--configfile", "bad.yaml", cwd=wd)
    assert result.returncode != 0, f"{case}: accepted"
    assert named in result.stdout, result.stdout[-1500:]
    assert "Traceback" not in result.stdout


def test_duplicate_keys_are_refused_with_file_and_line(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("seed: 0\nscales: [4]\nseed: 1\n")
    with pytest.raises(ValueError, match=r"dup.yaml:3:1: duplicate key 'seed' \(first on line 1\)"):
        strict_load(path)
    (tmp_path / "wd").mkdir()
    wd = workflow_copy(tmp_path / "wd")
    (wd / "dup.yaml").write_text((REPO / "config" / "config.yaml").read_text() + "\nseed: 3\n")
    result = snakemake("-n", "--configfile", "dup.yaml", cwd=wd)
    assert result.returncode != 0 and "duplicate key 'seed'" in result.stdout


def test_yaml_syntax_errors_name_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("seed: 0\nscales: [4\n")
    with pytest.raises(ValueError, match=r"bad.yaml:\d+:\d+"):
        strict_load(path)


def test_check_config_command_names_the_file_and_line_snakemake_does_not(tmp_path, capsys):
    from litesr.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: 0\nmodels: [a, b\n")
    assert main(["check-config", str(REPO / "config" / "config.yaml"), str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:3:1:" in err, err
    assert main(["check-config", str(REPO / "config" / "config.yaml")]) == 0
    assert "valid YAML" in capsys.readouterr().out
