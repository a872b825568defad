"""The workflow against a careless or hostile config: no config string runs as shell code, a
changed value reruns exactly the jobs it affects, and a failed audit leaves no stale report."""

from __future__ import annotations

import re

import pytest
import yaml
from conftest import REPO
from test_workflow import snakemake, workflow_copy

from litesr.report.audit import AuditFailed, run_audit

RULE_FILES = sorted((REPO / "workflow" / "rules").glob("*.smk"))
# Fields a shell line may leave unquoted: numbers Snakemake itself fills in or a wildcard
# constrained to digits.
UNQUOTED_OK = {"threads", "wildcards.scale"}

TINY = {
    "scales": [4],
    "data": {"source": "embedded", "train": {"tr": ["astronaut"]}, "test": {"te": ["camera"]}},
    "models": {
        name: {
            "arch": "edsr",
            "args": {"n_resblocks": 1, "n_feats": 8},
            "train": {"steps": 4, "batch_size": 2, "lr_patch": 8, "lr": 1.0e-3},
        }
        for name in ("tiny", "tiny2")
    },
}


def shell_lines(text: str) -> list[str]:
    """The shell commands of a rules file (each ``shell:`` block's string literals, joined)."""
    blocks = re.findall(r"\n    shell:\n((?:        .*\n?)+)", text)
    return ["".join(re.findall(r'"((?:[^"\\]|\\.)*)"', block)) for block in blocks]


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_every_shell_field_is_quoted(path):
    """Every ``{field}`` of every shell line is shell-quoted (``:q``), so a config value, a
    file name or a JSON spec reaches the command as one argument and is never run."""
    for line in shell_lines(path.read_text()):
        for field in re.findall(r"(?<!\{)\{([^{}]+)\}(?!\})", line):
            assert field.endswith(":q") or field in UNQUOTED_OK, f"{path.name}: {{{field}}}"


# Params derived from a file path that may stay: a path is tracked as the file itself.
PATH_PARAMS = {("data.smk", "root")}


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_no_param_is_derived_from_files(path):
    """Snakemake does not record params computed from input, output, threads or resources,
    so a change of such a value would not rerun the job: params take the wildcards only."""
    derived = re.findall(
        r"(\w+)=lambda\s+\w+\s*,\s*(?:input|output|threads|resources)\b", path.read_text()
    )
    assert {(path.name, name) for name in derived} <= PATH_PARAMS, derived


@pytest.mark.parametrize(
    "hostile",
    [
        "r$(touch {flag})",
        "r`touch {flag}`",
        "r; touch {flag}",
        "r' ; touch {flag} '",
        "r\ntouch {flag}",
    ],
)
def test_a_hostile_download_root_is_refused_and_never_run(hostile, tmp_path):
    wd = tmp_path / "wd"
    wd.mkdir()
    workflow_copy(wd)
    flag = tmp_path / "PWNED"
    cfg = {**TINY, "data": {**TINY["data"], "download_root": hostile.format(flag=flag)}}
    (wd / "c.yaml").write_text(yaml.safe_dump(cfg))
    result = snakemake("--cores", "1", "results/data/te/x4", "--configfile", "c.yaml", cwd=wd)
    assert not flag.exists(), result.stdout[-2000:]
    assert result.returncode != 0 and "download_root" in result.stdout, result.stdout[-2000:]


def test_a_changed_learning_rate_reruns_exactly_that_model_and_what_depends_on_it(tmp_path):
    wd = workflow_copy(tmp_path)
    (wd / "c.yaml").write_text(yaml.safe_dump(TINY))
    target = "results/tables/psnr_ssim.tsv"
    done = snakemake("--cores", "2", target, "--configfile", "c.yaml", cwd=wd, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:]
    changed_cfg = yaml.safe_load(yaml.safe_dump(TINY))
    changed_cfg["models"]["tiny2"]["train"]["lr"] = 2.0e-3
    (wd / "c.yaml").write_text(yaml.safe_dump(changed_cfg))
    summary = snakemake("--summary", target, "--configfile", "c.yaml", cwd=wd)
    assert summary.returncode == 0, summary.stdout[-3000:]
    rows = [line.split("\t") for line in summary.stdout.splitlines() if line.startswith("results/")]
    pending = {row[0] for row in rows if row[-1] == "update pending"}
    assert pending == {
        "results/models/tiny2/x4/model.safetensors",
        "results/models/tiny2/x4/train_log.tsv",
        "results/eval/tiny2/x4/te.tsv",
        "results/sr/tiny2/x4/te",
        target,
    }, summary.stdout
    changed = {row[0] for row in rows if row[4] == "params changed"}
    assert changed == {
        "results/models/tiny2/x4/model.safetensors",
        "results/models/tiny2/x4/train_log.tsv",
    }


def notebook(tmp_path, source: str):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Py"}
    nb.cells = [nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]})]
    nb.cells.append(nbformat.v4.new_code_cell(source))
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    return path


def test_a_failed_audit_removes_the_report_it_no_longer_vouches_for(tmp_path):
    stale = tmp_path / "all.pdf"
    stale.write_bytes(b"%PDF- old")
    out = tmp_path / "audit.ipynb"
    with pytest.raises(AuditFailed, match="AssertionError: edited"):
        run_audit(notebook(tmp_path, "assert x == 2, 'edited'"), out, {"x": 1}, stale=[stale])
    assert not stale.exists() and not out.exists()
    assert (tmp_path / "audit.failed.ipynb").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")], "no temporaries left"


def test_a_passing_audit_writes_its_notebook_and_keeps_the_report(tmp_path):
    stale = tmp_path / "all.pdf"
    stale.write_bytes(b"%PDF- current")
    out = tmp_path / "audit.ipynb"
    run_audit(notebook(tmp_path, "assert x == 2"), out, {"x": 2}, stale=[stale])
    assert out.is_file() and stale.exists()
