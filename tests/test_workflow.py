"""The Snakemake workflow: lint, dry runs of every shipped config, schema errors, and one
real end-to-end run of the embedded default down to reports/all.pdf."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import REPO

SNAKEMAKE = [sys.executable, "-m", "snakemake"]
CONFIGS = sorted((REPO / "config").glob("*.yaml"))
# benchmarks/measured: tables a config may draw figures from (memsr_cpu.yaml's memory table).
WORKFLOW_FILES = (
    "Snakefile",
    "workflow",
    "config",
    "notebooks",
    "envs",
    "src",
    "benchmarks/measured",
)


def snakemake(
    *args: str, cwd: Path = REPO, timeout: int = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run snakemake; its messages (stdout and stderr) are returned together as ``stdout``."""
    # Jobs call the `litesr` command: put this interpreter's scripts folder on PATH.
    path = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env = os.environ | path | (env or {})
    return subprocess.run(
        [*SNAKEMAKE, *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )


def workflow_copy(dest: Path) -> Path:
    """The workflow's own files copied to ``dest``, so a run leaves the checkout untouched."""
    for name in WORKFLOW_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / name)
    return dest


def test_lint_is_clean():
    result = snakemake("--lint")
    assert "Congratulations" in result.stdout, result.stdout


@pytest.mark.parametrize("check", [["check"], ["format", "--check"]], ids=["check", "format"])
def test_ruff_is_clean(check: list[str]):
    """`make lint`'s style checks, so that CI runs them too."""
    ruff = [sys.executable, "-m", "ruff", *check, "."]
    result = subprocess.run(ruff, cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


# Paper-scale configs and variants of a CPU config dry-run with the slow tests (CI runs
# them too), keeping the default run short; every other config dry-runs by default.
SLOW_DRY_RUNS = re.compile(r"_gpu|paper|_w8|drc_dual")


@pytest.mark.parametrize(
    "config",
    [
        pytest.param(c.name, marks=pytest.mark.slow) if SLOW_DRY_RUNS.search(c.name) else c.name
        for c in CONFIGS
        if c.name != "schema.yaml"
    ],
)
def test_every_config_dry_runs_to_the_report(config, tmp_path):
    """A config that imports the authors' weights names their files as inputs, so its copy
    needs ../shared beside it (folder sets without their folder still dry-run)."""
    cfg = yaml.safe_load((REPO / "config" / config).read_text())
    wd = tmp_path / "litesr"
    wd.mkdir()
    if "authors" in cfg.get("methods", {}):
        shared = REPO.parent / "shared"
        if not (shared / "data" / "reference").is_dir():
            pytest.skip(f"{config} imports the authors' weights from ../shared, absent here")
        (tmp_path / "shared").symlink_to(shared)
    workflow_copy(wd)
    result = snakemake("-n", "reports/all.pdf", "--configfile", f"config/{config}", cwd=wd)
    assert result.returncode == 0, result.stdout[-3000:]
    jobs = result.stdout
    trained = ("train",) if cfg.get("models") else ()
    for rule in ("prepare", *trained, "evaluate", "cost", "summarize", "audit", "report"):
        assert f"\n{rule} " in jobs or f"{rule}  " in jobs, f"rule {rule} missing from the DAG"
    if not trained and set(cfg.get("methods", {})) <= {"authors"}:  # released models: no training
        assert "rule train:" not in jobs and "training_curves" not in jobs
    if cfg["data"]["source"] == "download":
        assert "download" in jobs


def test_bad_config_is_refused_with_the_key_named(tmp_path):
    wd = workflow_copy(tmp_path)
    cfg = yaml.safe_load((wd / "config" / "config.yaml").read_text())
    cfg["scales"] = [5]
    (wd / "bad.yaml").write_text(yaml.safe_dump(cfg))
    result = snakemake("-n", "--configfile", "bad.yaml", cwd=wd)
    assert result.returncode != 0
    assert "scales" in result.stdout and "5" in result.stdout


def test_unknown_config_key_is_refused(tmp_path):
    wd = workflow_copy(tmp_path)
    cfg = yaml.safe_load((wd / "config" / "config.yaml").read_text())
    cfg["data"]["sauce"] = "embedded"
    (wd / "bad.yaml").write_text(yaml.safe_dump(cfg))
    result = snakemake("-n", "--configfile", "bad.yaml", cwd=wd)
    assert result.returncode != 0 and "sauce" in result.stdout


@pytest.mark.slow
def test_default_dag_runs_end_to_end(tmp_path):
    """The embedded default, for real: data → models → evaluation → cost → figures → PDF;
    with it, the two toy methods of tests/plugin, defined outside the package, reach the
    catalog, their tables and figures and the PDF (one run shows both)."""
    wd = workflow_copy(tmp_path)
    config = yaml.safe_load((wd / "config" / "config.yaml").read_text())
    config["methods"] |= {"toya": {"source": "teacher"}, "toyb": {"source": "student"}}
    (wd / "e2e.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    plugin = REPO / "tests" / "plugin"
    result = snakemake(
        "--cores",
        "2",
        "reports/all.pdf",
        "--configfile",
        "e2e.yaml",
        cwd=wd,
        timeout=1500,
        env={"PYTHONPATH": str(plugin), "LITESR_METHODS": "toya:toyb"},
    )
    assert result.returncode == 0, result.stdout[-5000:]
    pdf = wd / "reports" / "all.pdf"
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 50_000
    audit = (wd / "reports" / "audit.ipynb").read_text()
    assert "AUDIT PASSED" in audit
    summary = pd.read_csv(wd / "results/tables/psnr_ssim.tsv", sep="\t")
    catalog = pd.read_csv(wd / "results/tables/models.tsv", sep="\t")
    assert {"ail", "dipnet", "drc", "memsr", "toya", "toyb"} <= set(catalog.method.dropna())
    assert set(summary.model) == {"bicubic"} | set(catalog.model)
    figures = {p.stem: p for p in (wd / "results" / "figures").glob("*.png")}
    for name in ("psnr_vs_cost", "training_curves", "crops_x4", "ail_importance", "ail_rounds"):
        assert name in figures, name
    assert all(p.stat().st_size > 10_000 for p in figures.values())
    from pypdf import PdfReader

    text = "\n".join(page.extract_text() for page in PdfReader(pdf).pages)
    for title in ("AIL", "DIPNet", "DRC", "MemSR", "How this was made", "TOYA TABLE"):
        assert title in text, title
    assert "TOYB FIGURE" in text and "the toyb caption" in text and "toya-copy" in text
    # A sanity range (no NaN, nothing absurd): the tiny random-init plain student of the
    # MemSR demo stays far below bicubic, which is that baseline's real result.
    assert summary.psnr_y.between(5, 50).all()
    cost = pd.read_csv(wd / "results/tables/cost.tsv", sep="\t")
    assert (cost.params > 0).all() and (cost.cpu_latency_ms > 0).all()
    for model in ("teacher", "student"):
        log = pd.read_csv(wd / f"results/models/{model}/x4/train_log.tsv", sep="\t")
        assert log.loss.iloc[-50:].mean() < log.loss.iloc[:50].mean(), f"{model} did not learn"
    assert all((wd / "logs").rglob("*.log")), "every rule writes a log"
    assert list((wd / "benchmarks" / "out").rglob("*.tsv")), "rules record benchmark tables"
