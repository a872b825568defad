"""benchmarks/run_plan.py: the paper-scale run plan (steps, GPU time, SLURM request per job)."""

from __future__ import annotations

import importlib.util
import math
import sys

import pytest
import yaml
from conftest import REPO
from test_workflow import CONFIGS

from litesr import launch

spec = importlib.util.spec_from_file_location("run_plan", REPO / "benchmarks" / "run_plan.py")
run_plan = sys.modules["run_plan"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run_plan)


@pytest.fixture(scope="module")
def times():
    return run_plan.StepTimes()


def test_every_gpu_config_is_dry_run_by_the_workflow_tests():
    """test_workflow dry-runs every shipped config; the run plan's configs are among them."""
    gpu = run_plan.default_configs()
    assert {p.name for p in gpu} >= {"paper.yaml", "dipnet_gpu.yaml", "drc_gpu.yaml"}
    assert set(gpu) <= set(CONFIGS)


def test_measured_networks_take_their_measured_time(times):
    """Each H100 row is its own estimate; other batches scale with pixels."""
    assert len(times.rows) >= 7
    for row in times.rows:
        ms, basis, measured = times.train_ms(row.net, times.batch, times.patch)
        assert ms == pytest.approx(row.ms) and measured and basis == row.label
        ms, basis, measured = times.train_ms(row.net, 2 * times.batch, times.patch)
        assert ms == pytest.approx(2 * row.ms) and not measured and "pixels ×2" in basis


def test_an_unmeasured_network_is_scaled_from_its_family(times):
    """Equal arguments written out are the measured network; a middle width falls between
    the family's two measured networks."""
    written = run_plan.Net.of("edsr", {"n_resblocks": 16, "n_feats": 64}, 4)
    assert times.train_ms(written, times.batch, times.patch) == (11.99, "edsr baseline 16x64", True)
    middle = run_plan.Net.of("edsr", {"n_resblocks": 8, "n_feats": 48}, 4)
    ms, basis, measured = times.train_ms(middle, times.batch, times.patch)
    assert 6.419 < ms < 11.99 and basis.startswith("edsr") and not measured
    stage = run_plan.Stage("distil", 10, times.batch, times.patch, written, (written,))
    ms, basis = times.step_ms(stage, 1)
    assert ms == pytest.approx(11.99 * 4 / 3) and basis.startswith("assumed: ")


def test_the_plan_of_a_small_config(tmp_path, times):
    """The embedded default on `cuda` with one GPU per training job: one row per stage of
    every trained and made model, the recipes' steps, and the request of the slurm profile."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["device"] = "cuda"
    config["resources"] = {"gpu": 1, "train_threads": 2, "train_mem_mb": 5000, "train_runtime": 90}
    path = tmp_path / "small_gpu.yaml"
    path.write_text(yaml.safe_dump(config))
    table, summary, others = run_plan.plan_config(path, times)

    _, plan = run_plan.read_config(path)
    assert set(table.job) == {f"{m} ×4" for m in [*plan.trained, *plan.made]}
    trains = table.job.str.removesuffix(" ×4").map(
        lambda m: m in plan.trained or launch.trains(plan.made[m][1].params)
    )
    assert (table.sbatch[trains] == "--gpus=1 --cpus-per-task=2 --mem 5000 -t 90").all()
    # steps that train nothing (merges, conversions) ask for 4 GB and an hour, not the training's
    assert (~trains).any() and table.stage[~trains].str.endswith("no training").all()
    assert (table.sbatch[~trains] == "--gpus=1 --cpus-per-task=2 --mem 4000 -t 60").all()
    for name, model in plan.trained.items():
        assert table[table.job == f"{name} ×4"].steps.tolist() == [model.train["steps"]]
    ail = table[table.job == "ail-w8-ail ×4"]
    assert ail.steps.sum() == 3 * config["methods"]["ail"]["round"]["steps"]
    timed = table[table.steps > 0]
    assert timed.step_ms.map(math.isfinite).all() and timed.basis.str.len().gt(0).all()
    assert (table.gpu_h == table.steps * table.step_ms.fillna(0) / 3.6e6).all()
    assert summary["training steps"] == table.steps.sum()
    assert summary["GPU-h"] == pytest.approx(table.gpu_h.sum())
    assert (
        summary["other jobs"] == others.jobs.sum() and others.rules.str.contains("evaluate").any()
    )


@pytest.mark.slow
@pytest.mark.parametrize("config", [p.name for p in run_plan.default_configs()])
def test_gpu_configs_dry_run_with_the_slurm_profile(config, tmp_path):
    """Every training job of a GPU config asks SLURM for the config's GPUs, threads, memory
    and runtime."""
    cfg = yaml.safe_load((REPO / "config" / config).read_text())
    if "authors" in cfg.get("methods", {}):
        if not (REPO.parent / "shared" / "data" / "reference").is_dir():
            pytest.skip(f"{config} imports the authors' weights from ../shared, absent here")
    jobs = run_plan.dry_run(REPO / "config" / config, run_plan.with_shared(tmp_path))
    res = cfg["resources"]
    want = (
        f"--gpus={res['gpu']} --cpus-per-task={res['train_threads']} "
        f"--mem {res['train_mem_mb']} -t {res['train_runtime']}"
    )
    _, plan = run_plan.read_config(REPO / "config" / config)

    def trains(job: dict) -> bool:
        model = job["wildcards"].get("model")
        return job["rule"] == "train" or (
            job["rule"] == "method_model" and launch.trains(plan.made[model][1].params)
        )

    training = [j for j in jobs if trains(j)]
    assert training and all(run_plan.sbatch(j) == want for j in training)
    for job in jobs:
        if job["rule"] == "method_model" and not trains(job):
            assert run_plan.sbatch(job).endswith("--mem 4000 -t 60"), job
