"""How jobs take GPUs: processes and GPU requests of training jobs, cards held per job."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from litesr.launch import asked_gpus, hold_gpus, job_resources, job_spec, trains

# Claims ``argv[1]`` of the cards ``argv[2]``, prints them and CUDA_VISIBLE_DEVICES, then
# replaces itself with a process that waits for its stdin to close: the cards stay held.
HOLDER = """
import os, sys
from litesr.launch import claim
cards = claim(int(sys.argv[1]), sys.argv[2].split(","), poll=0.1)
print(",".join(cards), os.environ["CUDA_VISIBLE_DEVICES"], flush=True)
os.execv(sys.executable, [sys.executable, "-c", "import sys; sys.stdin.read()"])
"""


def holder(n: int, cards: str, locks) -> subprocess.Popen:
    env = {**os.environ, "LITESR_GPU_LOCKS": str(locks)}
    return subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(n), cards],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_jobs_never_share_a_card(tmp_path):
    first, second = holder(1, "0,1", tmp_path), None
    try:
        assert first.stdout.readline().split() == ["0", "0"]
        second = holder(1, "0,1", tmp_path)
        assert second.stdout.readline().split() == ["1", "1"], "the free card, held after exec"
        both = holder(2, "0,1", tmp_path)
        time.sleep(1.0)
        assert both.poll() is None, "a job waits while its cards are held"
        first.stdin.close()
        second.stdin.close()
        assert both.stdout.readline().split() == ["0,1", "0,1"]
        both.stdin.close()
        both.wait(timeout=60)
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()


def test_no_claim_on_the_cpu_under_slurm_or_inside_torchrun(monkeypatch, tmp_path):
    for env in ("SLURM_JOB_ID", "WORLD_SIZE"):
        monkeypatch.delenv(env, raising=False)
    monkeypatch.setenv("LITESR_GPU_LOCKS", str(tmp_path / "locks"))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    hold_gpus(1, "cpu")
    for env in ("SLURM_JOB_ID", "WORLD_SIZE"):
        with monkeypatch.context() as patch:
            patch.setenv(env, "2")
            hold_gpus(1, "cuda")
    assert not (tmp_path / "locks").exists()
    with pytest.raises(ValueError, match="asks for 2 GPUs but 1"):
        hold_gpus(2, "cuda")


def test_a_job_asks_for_the_gpus_of_its_recipes():
    params = {"train": {"steps": 1, "gpus": 2}, "prune": {"finetune": {"gpus": 4}}, "seeds": 3}
    assert asked_gpus(params) == 4
    assert asked_gpus({"recipes": [{"gpus": 3}], "gpus": True}) == 3
    assert asked_gpus({"train": {"steps": 1}}) == 0
    # (processes, GPUs requested) from what the recipes ask, resources.gpu and the device
    assert job_resources(2, 0, "cuda") == (2, 2)
    assert job_resources(0, 3, "auto") == (3, 3)
    assert job_resources(0, 0, "cuda") == (1, 1)
    assert job_resources(0, 0, "auto") == (1, 0)
    assert job_resources(2, 1, "cpu") == (2, 0)


def test_the_spec_names_processes_only_for_the_launcher(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")  # a process torchrun started: no new launch
    assert job_spec({"gpus": 2, "device": "cpu", "out": "m"}, []) == {"device": "cpu", "out": "m"}
    assert job_spec({"device": "cpu"}, []) == {"device": "cpu"}
    recipe = {"steps": 1, "gpus": 2}
    assert job_spec({"recipe": recipe}, []) == {"recipe": recipe}, "the recipe keeps its gpus"
    with pytest.raises(ValueError, match="positive whole number"):
        job_spec({"gpus": 0}, [])


def test_rules_ask_for_the_gpus_of_their_recipes(tmp_path):
    """A dry run on device cuda: a recipe's gpus: 2 gives its train job gpu=2 and a spec naming
    2 processes, a method step whose recipe asks for 2 the same; other GPU jobs ask for 1."""
    import yaml
    from test_workflow import snakemake, workflow_copy

    wd = workflow_copy(tmp_path)
    cfg = yaml.safe_load((wd / "config" / "config.yaml").read_text())
    cfg["device"] = "cuda"
    cfg["models"]["drc_primal"]["train"]["gpus"] = 2
    (wd / "gpus.yaml").write_text(yaml.safe_dump(cfg))
    targets = [f"results/models/{m}/x4/model.safetensors" for m in ("drc_primal", "drc-primal")]
    targets.append("results/eval/teacher/x4/skimage-test.tsv")
    result = snakemake("-n", "-p", *targets, "--configfile", "gpus.yaml", cwd=wd)
    assert result.returncode == 0, result.stdout[-3000:]
    jobs = {}
    for block in result.stdout.split("\nrule ")[1:]:
        wildcards = next(line for line in block.splitlines() if "wildcards:" in line)
        if "model=" in wildcards:
            jobs[(block.split(":", 1)[0], wildcards.split("model=")[1].split(",")[0])] = block
    for job in (("train", "drc_primal"), ("method_model", "drc-primal")):
        assert "gpu=2" in jobs[job] and '"gpus": 2' in jobs[job], jobs[job]
    for job in (("train", "teacher"), ("evaluate", "teacher")):
        assert "gpu=1" in jobs[job] and '"gpus"' not in jobs[job], jobs[job]


def test_a_step_trains_when_its_params_hold_a_recipe():
    assert trains({"prune": {"finetune": {"steps": 10}}, "ratio": 0.3})
    assert trains({"recipes": [{"lr": 1e-3}, {"steps": 1}]})
    assert not trains({"variant": "reparam", "source": {"release": "dipnet"}, "sizes": [1, 2]})
