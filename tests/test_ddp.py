"""Data-parallel training on CPU: 2 processes started by torchrun, joined by gloo.

The jobs run ``tests/ddp_worker.py`` (or ``litesr train`` itself, which starts torchrun when
its spec asks for 2 processes). Each test starts several torchrun jobs (1.5 to 2.5 min on a
busy 2-core CPU): both are marked slow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from litesr.data.images import write_png
from litesr.data.sources import prepare_set
from litesr.models.store import load_model

WORKER = Path(__file__).with_name("ddp_worker.py")
ARCH, ARGS = "edsr", {"n_resblocks": 1, "n_feats": 8}
RECIPE = {
    "steps": 12,
    "batch_size": 4,
    "lr_patch": 8,
    "lr": 1e-3,
    "scheduler": "cosine",
    "checkpoint_every": 5,
    "seed": 3,
}
# A loss summed over the batch (VDSR/AIL style): its gradients are multiplied by the number of
# processes before DDP averages them. Without clipping, which would hide a wrong scale.
SUM_RECIPE = {**RECIPE, "loss": "l2_sum", "optimizer": "sgd", "lr": 1e-5}


@pytest.fixture(scope="module")
def train_dir(tmp_path_factory) -> Path:
    """A prepared ×2 training set made from three small synthetic photographs."""
    root = tmp_path_factory.mktemp("ddp")
    rng = np.random.default_rng(0)
    paths = []
    for i, size in enumerate([(40, 48), (36, 36), (50, 30)]):
        base = rng.integers(0, 256, (size[0] // 4, size[1] // 4, 3)).astype(np.uint8)
        path = root / "src" / f"img{i}.png"
        write_png(path, np.kron(base, np.ones((4, 4, 1), dtype=np.uint8)))
        paths.append(path)
    return prepare_set(paths, 2, root / "x2", progress=False)


def launch(processes: int, jobs: list[dict]) -> subprocess.CompletedProcess:
    """Run the worker on ``jobs``: alone, or under torchrun with ``processes`` processes."""
    command = [sys.executable, str(WORKER), json.dumps(jobs)]
    if processes > 1:
        command[1:1] = ["-m", "torch.distributed.run", "--standalone"]
        command.insert(4, f"--nproc-per-node={processes}")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)


def train_job(data: Path, out: Path, recipe: dict = RECIPE, **extra) -> dict:
    spec = {
        "arch": ARCH,
        "args": ARGS,
        "recipe": recipe,
        "data": str(data),
        "scale": 2,
        "out": str(out),
        "log": str(out.with_suffix(".tsv")),
    }
    return {"kind": "train", "spec": spec, **extra}


def model_weights(path: Path) -> dict[str, torch.Tensor]:
    return load_model(path)[0].state_dict()


@pytest.mark.slow
def test_two_processes_match_one_at_the_same_global_batch(train_dir, tmp_path):
    """Two processes, each taking its half of the same global batches as one process,
    end within 1e-5 of its weights after 12 steps, and log its loss within 1e-6 (relative):
    a plain task with a mean loss and one summed over the batch, and a method's task (a dual
    network and an adapter trained beside the student, a frozen teacher).

    Not bit for bit: one process reduces the whole batch at once, DDP averages two halves'
    gradients; the summation order changes the last bits of every gradient, and Adam's
    normalisation carries such differences into the weights. Measured on CPU: 1.1e-7 (L1,
    Adam) and 9e-9 (l2_sum, SGD) at most, against 3.4e-2 for the summed loss left unscaled;
    the loss logs differ by 2.7e-7 (relative) at most.
    """
    runs = {"mean": (RECIPE, "plain"), "sum": (SUM_RECIPE, "plain"), "method": (RECIPE, "method")}
    for n in (1, 2):
        jobs = [
            {
                "kind": "shared",
                "task": task,
                "arch": ARCH,
                "args": ARGS,
                "scale": 2,
                "data": str(train_dir),
                "recipe": recipe,
                "out": str(tmp_path / f"{name}-{n}.safetensors"),
            }
            for name, (recipe, task) in runs.items()
        ]
        result = launch(n, jobs)
        assert result.returncode == 0, result.stderr[-3000:]
    for name in runs:
        one, two = (load_file(tmp_path / f"{name}-{n}.safetensors") for n in (1, 2))
        assert one.keys() == two.keys()
        worst = max((one[k] - two[k]).abs().max().item() for k in one)
        assert worst < 1e-5, f"{name}: weights differ by {worst}"
        logs = [pd.read_csv(tmp_path / f"{name}-{n}.tsv", sep="\t") for n in (1, 2)]
        assert list(logs[0].columns) == list(logs[1].columns)
        for column in logs[0].columns.drop(["step", "lr", "seconds"]):
            assert logs[1][column].to_numpy() == pytest.approx(logs[0][column], rel=1e-6)


@pytest.mark.slow
def test_a_killed_two_process_run_resumes_to_the_uninterrupted_weights(train_dir, tmp_path):
    """``litesr train`` with a recipe of ``gpus: 2`` starts torchrun itself; a run whose rank 1
    is killed at step 8 resumes from rank 0's step-5 checkpoint (both ranks' generators in it)
    and ends bit-identical to the uninterrupted run (gloo sums two ranks in a fixed order on
    CPU)."""
    reference = tmp_path / "ref.safetensors"
    spec = train_job(train_dir, reference, {**RECIPE, "gpus": 2})["spec"]
    cli = [sys.executable, "-m", "litesr.cli", "--quiet", "train", "--spec", json.dumps(spec)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cli, capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, result.stderr[-3000:]

    out = tmp_path / "resumed.safetensors"
    killed = launch(2, [train_job(train_dir, out, kill_at=8)])
    assert killed.returncode != 0 and not out.exists()
    ckpt = out.with_name(out.name + ".ckpt")
    with safe_open(ckpt, framework="pt") as handle:
        assert handle.metadata()["step"] == "5"
        assert handle.get_slice("generator").get_shape()[0] == 2, "one generator per rank"
    result = launch(2, [train_job(train_dir, out)])
    assert result.returncode == 0, result.stderr[-3000:]

    want, got = model_weights(reference), model_weights(out)
    assert all(torch.equal(want[k], got[k]) for k in want)
    assert not ckpt.exists(), "rank 0 removes the checkpoint once the model is written"
    log = pd.read_csv(out.with_suffix(".tsv"), sep="\t")
    assert log.step.tolist() == list(range(1, 13))
    assert pd.read_csv(reference.with_suffix(".tsv"), sep="\t").loss.tolist() == log.loss.tolist()
