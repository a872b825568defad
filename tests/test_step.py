"""The step harness every method step uses: stages resume after a kill and end bit-identical,
the step's log merges its stages', the model carries the method's metadata, and the output
is locked while the step runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from litesr.atomic import OutputBusy
from litesr.data.images import write_png
from litesr.data.sources import prepare_set
from litesr.models import build
from litesr.models.store import load_model, read_meta
from litesr.train.objectives import PixelTask
from litesr.train.step import StepRun

RECIPE = {"steps": 6, "batch_size": 2, "lr_patch": 8, "lr": 1e-3, "checkpoint_every": 2}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("step")
    rng = np.random.default_rng(1)
    paths = []
    for i in range(2):
        path = root / f"img{i}.png"
        write_png(path, rng.integers(0, 256, (40, 40, 3)).astype(np.uint8))
        paths.append(path)
    return prepare_set(paths, 2, root / "x2", progress=False)


class Killed(RuntimeError):
    pass


def two_stages(data: Path, out: Path, *, kill_second: bool = False) -> Path:
    """A toy step: two fine-tunes of a tiny EDSR with different seeds."""
    torch.manual_seed(0)
    model = build("edsr", scale=2, n_resblocks=1, n_feats=4)
    with StepRun("toy", out=out, log=out.with_name("log.tsv"), stages=out.parent / "st") as run:

        def tune(seed: int):
            def train(net, files):
                if kill_second and seed == 2:
                    raise Killed
                run.fit(PixelTask(net, "l1"), {**RECIPE, "seed": seed}, files, data=data, scale=2)
                return net

            return train

        run.stage("first", tune(1), key={"seed": 1})
        run.stage("second", tune(2), key={"seed": 2})
        model = run.stages(model, inputs=[data])
        run.merged_log()
        return run.finish(model, variant="demo", size=4)


def test_a_killed_step_resumes_at_its_stage_and_ends_identical(data, tmp_path):
    whole = two_stages(data, tmp_path / "a" / "model.safetensors")
    killed = tmp_path / "b" / "model.safetensors"
    with pytest.raises(Killed):
        two_stages(data, killed, kill_second=True)
    first = killed.parent / "st" / "first.safetensors"
    assert first.is_file() and not killed.exists()
    stamp = first.stat().st_mtime_ns
    two_stages(data, killed)
    assert first.stat().st_mtime_ns == stamp, "the finished stage was reused, not redone"
    assert whole.read_bytes() == killed.read_bytes()


def test_the_step_log_merges_its_stages_and_the_model_says_its_method(data, tmp_path):
    out = two_stages(data, tmp_path / "model.safetensors")
    log = pd.read_csv(out.with_name("log.tsv"), sep="\t")
    assert log.stage.tolist() == ["first"] * 6 + ["second"] * 6
    assert log.global_step.tolist() == list(range(1, 13))
    meta = read_meta(out)
    assert (meta["method"], meta["variant"], meta["size"]) == ("toy", "demo", 4)
    assert load_model(out)[0].scale == 2
    assert not list(tmp_path.rglob("*.ckpt")), "no checkpoint outlives the saved model"


def test_a_second_run_of_the_same_output_stops_at_once(tmp_path):
    out = tmp_path / "model.safetensors"
    with StepRun("toy", out=out, log=tmp_path / "log.tsv", stages=tmp_path / "st"):
        with pytest.raises(OutputBusy, match="model.safetensors"):
            with StepRun("toy", out=out, log=tmp_path / "log.tsv", stages=tmp_path / "st"):
                pass
