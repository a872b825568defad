"""The workflow on a real (one-node) SLURM cluster through Snakemake's SLURM executor plugin.

tests/slurm/start_cluster.sh starts munge, slurmctld and slurmd on this machine (installing
Debian's packages when missing); it needs root, so elsewhere the test skips with a reason.
The node declares two GPUs (null devices), so that GPU requests can be scheduled here.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pandas as pd
import pytest
import yaml
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


@pytest.mark.slow
@pytest.mark.slurm
def test_a_two_gpu_training_job_asks_slurm_for_two_gpus(cluster, tmp_path):
    """A recipe's ``gpus: 2`` becomes ``sbatch --gpus=2`` and the job trains on two processes
    under torchrun (the node's GPUs are null devices: with ``device: auto`` they train on the
    CPU with gloo). The sbatch calls are printed."""
    gres = subprocess.run(["sinfo", "-h", "-o", "%G"], capture_output=True, text=True).stdout
    if "gpu:2" not in gres:
        pytest.skip(f"the running cluster declares no 2 GPUs ({gres.strip()}); restart it")
    wd = workflow_copy(tmp_path)
    cfg = yaml.safe_load((wd / "config" / "config.yaml").read_text())
    cfg["device"] = "auto"
    cfg["models"]["drc_primal"]["train"].update(gpus=2, steps=10)
    (wd / "gpus.yaml").write_text(yaml.safe_dump(cfg))
    target = "results/models/drc_primal/x4/model.safetensors"
    result = snakemake(
        "--executor",
        "slurm",
        "--jobs",
        "2",
        "--slurm-no-account",
        "--slurm-status-command",
        "squeue",
        "--slurm-init-seconds-before-status-checks",
        "2",
        "--default-resources",
        "mem_mb=1000",
        "runtime=10",
        "--latency-wait",
        "30",
        "--verbose",
        target,
        "--configfile",
        "gpus.yaml",
        cwd=wd,
        timeout=1800,
    )
    assert result.returncode == 0, result.stdout[-5000:]
    calls = [line for line in result.stdout.splitlines() if "sbatch call:" in line]
    print("\n".join(calls))
    train = [c for c in calls if "rule_train_" in c]
    assert len(train) == 1 and " --gpus=2" in train[0], calls
    assert not any("--gpus" in c for c in calls if "rule_prepare_" in c)
    assert (wd / target).exists()
    log = (wd / "logs" / "train" / "drc_primal_x4.log").read_text()
    assert "launching 2 processes" in log, log
