"""The workflow on a real (one-node) SLURM cluster through Snakemake's SLURM executor plugin.

tests/slurm/start_cluster.sh starts munge, slurmctld and slurmd on this machine (installing
Debian's packages when missing); it needs root, so elsewhere the test skips with a reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pandas as pd
import pytest
from conftest import REPO
from test_workflow import snakemake, workflow_copy

START = REPO / "tests" / "slurm" / "start_cluster.sh"


@pytest.fixture(scope="module")
def cluster() -> None:
    if os.geteuid() != 0:
        pytest.skip("starting a SLURM cluster needs root")
    if not shutil.which("sbatch") and not shutil.which("apt-get"):
        pytest.skip("no SLURM and no apt-get to install Debian's slurm packages")
    result = subprocess.run(
        ["bash", str(START)], capture_output=True, text=True, timeout=600, check=False
    )
    if result.returncode != 0:
        pytest.fail(f"could not start the SLURM cluster:\n{result.stdout}\n{result.stderr}")


@pytest.mark.slow
@pytest.mark.slurm
def test_rules_run_as_slurm_jobs(cluster, tmp_path):
    wd = workflow_copy(tmp_path)
    target = "results/eval/bicubic/x4/skimage-test.tsv"
    result = snakemake(
        "--executor",
        "slurm",
        "--jobs",
        "2",
        "--slurm-no-account",
        "--slurm-status-command",
        "squeue",
        "--slurm-keep-successful-logs",
        "--slurm-init-seconds-before-status-checks",
        "2",
        "--default-resources",
        "mem_mb=1000",
        "runtime=10",
        "--latency-wait",
        "30",
        target,
        cwd=wd,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-5000:]
    table = pd.read_csv(wd / target, sep="\t")
    assert len(table) == 5 and table.psnr_y.between(20, 45).all()
    slurm_logs = list((wd / ".snakemake" / "slurm_logs").rglob("*.log"))
    assert {p.parent.parent.name for p in slurm_logs} >= {"rule_prepare", "rule_evaluate"}
