"""Threads: a `litesr` job runs torch on the threads Snakemake gives its rule, and waiting
OpenMP threads sleep instead of spinning (benchmarks/bench_threads.py measures why)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from litesr.cli import main
from litesr.data.images import write_png

RULES = Path(__file__).resolve().parents[1] / "workflow" / "rules"
PROBE = """
from litesr import cli
try:
    cli.main(["no-such-command"])
except SystemExit:
    pass
import os, torch
print(torch.get_num_threads(), os.environ.get("OMP_WAIT_POLICY"))
"""


@pytest.mark.parametrize(("threads", "policy"), [("1", None), ("2", None), ("1", "ACTIVE")])
def test_a_job_runs_on_its_rules_threads_and_sleeps_when_waiting(threads, policy):
    # Snakemake sets OMP_NUM_THREADS (and MKL_NUM_THREADS ...) to a shell rule's `threads`.
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    if policy:
        env["OMP_WAIT_POLICY"] = policy  # a user's own choice is kept
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == [threads, policy or "PASSIVE"]


def test_no_rule_sets_threads_other_than_its_own():
    for path in RULES.glob("*.smk"):
        text = path.read_text()
        for var in re.findall(r"\b(\w+_NUM_THREADS|OMP_WAIT_POLICY)=(\S+)", text):
            assert var[1] == "{threads}", f"{path.name}: {var[0]}={var[1]}"
        assert "set_num_threads" not in text, path.name


def test_quiet_silences_prepare_and_evaluate(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)  # as on a user's console
    folder = tmp_path / "hr"
    for i in range(2):
        image = np.random.default_rng(i).integers(0, 256, (48, 40, 3), np.uint8)
        write_png(folder / f"{i}.png", image)
    data = tmp_path / "set"
    where = f'"{folder}"'
    argv = ["-q", "prepare", "--source", "folder", "--where", where, "--scale", "2"]
    assert main([*argv, "--out", str(data)]) == 0
    argv = ["-q", "evaluate", "--model", "bicubic", "--name", "b", "--data", str(data)]
    assert main([*argv, "--set", "s", "--scale", "2", "--out", str(tmp_path / "e.tsv")]) == 0
    err = capsys.readouterr().err
    assert "it/s" not in err and "%|" not in err


def test_quiet_silences_training_and_method_steps(tmp_path, monkeypatch, capsys):
    """A rule's log (``litesr --quiet --log-file``) gets log lines, not progress bars."""
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    folder = tmp_path / "hr"
    write_png(folder / "0.png", np.random.default_rng(0).integers(0, 256, (48, 40, 3), np.uint8))
    data = tmp_path / "set"
    where = f'"{folder}"'
    argv = ["-q", "prepare", "--source", "folder", "--where", where, "--scale", "2"]
    assert main([*argv, "--out", str(data)]) == 0
    recipe = {"steps": 2, "batch_size": 1, "lr_patch": 16, "lr": 1e-3}
    common = {"recipe": recipe, "data": str(data), "scale": 2}
    spec = {"arch": "edsr", "args": {"n_resblocks": 1, "n_feats": 4}, **common}
    teacher = tmp_path / "t.safetensors"
    files = {"out": str(teacher), "log": str(tmp_path / "t.tsv")}
    assert main(["-q", "train", "--spec", json.dumps({**spec, **files})]) == 0
    assert "%|" not in capsys.readouterr().err
    student = {"feature_channels": 4, "mid_channels": 4, "esa_channels": 4, "n_blocks": 1}
    for quiet in (["-q"], []):
        log = tmp_path / f"step{len(quiet)}.log"
        out = tmp_path / f"s{len(quiet)}" / "model.safetensors"
        step = {"teacher": str(teacher), "student": student, "anchors": False, **common}
        step |= {"variant": "ehr", "out": str(out), "log": str(out.with_name("log.tsv"))}
        argv = [*quiet, "--log-file", str(log), "run", "dipnet", "distil", "--spec"]
        assert main([*argv, json.dumps({**step, "stages": str(out.parent / "stages")})]) == 0
        assert ("%|" in log.read_text()) == (not quiet), log.read_text()
        assert re.search(r"step 2/2: loss \S+, \S+ s per step, 0 min left", log.read_text())
