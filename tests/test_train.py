"""The shared training loop: determinism, resume after a kill, NaN stop, patch geometry."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from litesr.data.images import write_png
from litesr.data.sources import prepare_set
from litesr.models.store import load_model
from litesr.train.loop import TrainingDiverged, fit, pixel_objective
from litesr.train.patches import PatchSampler, load_pairs
from litesr.train.run import train_model
from litesr.train.spec import TrainSpec

ARCH, ARGS = "edsr", {"n_resblocks": 1, "n_feats": 8}
RECIPE = {
    "steps": 12,
    "batch_size": 2,
    "lr_patch": 8,
    "lr": 1e-3,
    "scheduler": "cosine",
    "checkpoint_every": 5,
    "seed": 3,
}


@pytest.fixture(scope="module")
def train_dir(tmp_path_factory) -> Path:
    """A prepared ×2 training set made from three small synthetic photographs."""
    root = tmp_path_factory.mktemp("train")
    rng = np.random.default_rng(0)
    paths = []
    for i, size in enumerate([(40, 48), (36, 36), (50, 30)]):
        base = rng.integers(0, 256, (size[0] // 4, size[1] // 4, 3)).astype(np.uint8)
        img = np.kron(base, np.ones((4, 4, 1), dtype=np.uint8))
        path = root / "src" / f"img{i}.png"
        write_png(path, img)
        paths.append(path)
    return prepare_set(paths, 2, root / "x2", progress=False)


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_model(path)[0].state_dict()


def run(train_dir: Path, out: Path, **kw) -> Path:
    return train_model(
        ARCH, ARGS, RECIPE, train_dir, 2, out, out.with_suffix(".tsv"), progress=False, **kw
    )


def test_same_config_gives_bit_identical_weights(train_dir, tmp_path):
    a, b = (
        weights(run(train_dir, tmp_path / "a.safetensors")),
        weights(run(train_dir, tmp_path / "b.safetensors")),
    )
    assert all(torch.equal(a[k], b[k]) for k in a)
    other = dict(RECIPE, seed=4)
    c = train_model(
        ARCH,
        ARGS,
        other,
        train_dir,
        2,
        tmp_path / "c.safetensors",
        tmp_path / "c.tsv",
        progress=False,
    )
    assert not all(torch.equal(a[k], weights(c)[k]) for k in a)


def test_killed_run_resumes_to_the_same_weights(train_dir, tmp_path):
    reference = weights(run(train_dir, tmp_path / "ref.safetensors"))
    out = tmp_path / "resumed.safetensors"
    plain = pixel_objective("l1")
    calls = {"n": 0}

    def dies_at_step_8(model, lr, hr):
        calls["n"] += 1
        if calls["n"] == 8:
            raise KeyboardInterrupt("killed")
        return plain(model, lr, hr)

    with pytest.raises(KeyboardInterrupt):
        run(train_dir, out, objective=dies_at_step_8)
    ckpt = out.with_name(out.name + ".ckpt")
    assert ckpt.exists() and not out.exists()
    assert torch.load(ckpt, weights_only=False)["step"] == 5
    resumed = weights(run(train_dir, out))
    assert all(torch.equal(reference[k], resumed[k]) for k in reference)
    assert not ckpt.exists(), "checkpoint is removed once training completes"
    log = pd.read_csv(out.with_suffix(".tsv"), sep="\t")
    assert log.step.tolist() == list(range(1, 13))


def test_checkpoint_of_another_config_is_not_resumed(train_dir, tmp_path, caplog):
    out = tmp_path / "m.safetensors"
    torch.save({"fingerprint": "other", "step": 11}, out.with_name(out.name + ".ckpt"))
    with caplog.at_level(logging.WARNING):
        run(train_dir, out)
    assert "another configuration" in caplog.text
    assert len(pd.read_csv(out.with_suffix(".tsv"), sep="\t")) == 12


def test_nan_loss_stops_with_a_clear_error(train_dir, tmp_path):
    def nan_objective(model, lr, hr):
        return model(lr).sum() * float("nan"), {}

    with pytest.raises(TrainingDiverged, match="step 1"):
        run(train_dir, tmp_path / "nan.safetensors", objective=nan_objective)
    assert not (tmp_path / "nan.safetensors").exists()


def test_log_has_one_row_per_step_with_loss_and_lr(train_dir, tmp_path):
    out = run(train_dir, tmp_path / "m.safetensors")
    log = pd.read_csv(out.with_suffix(".tsv"), sep="\t")
    assert list(log.columns[:3]) == ["step", "loss", "lr"]
    assert log.lr.iloc[0] == pytest.approx(1e-3) and log.lr.iloc[-1] < 1e-4  # cosine decay
    assert np.isfinite(log.loss).all()
    meta = load_model(out)[1]
    assert meta["arch"] == ARCH


def test_patches_are_aligned_and_augmented_consistently(train_dir):
    pairs = load_pairs(train_dir, 2, 8)
    sampler = PatchSampler(pairs, 2, 8)
    gen = torch.Generator().manual_seed(0)
    lr, hr = sampler.sample(16, gen)
    assert lr.shape == (16, 3, 8, 8) and hr.shape == (16, 3, 16, 16)
    # Blocky synthetic images: each 2×2 HR block is constant away from 4-pixel edges,
    # so nearest-neighbour downsampling of the HR patch must track the LR patch closely.
    assert (hr[..., ::2, ::2] - lr).abs().mean() < 0.1
    lr2, _ = sampler.sample(16, torch.Generator().manual_seed(0))
    assert torch.equal(lr, lr2)


def test_small_images_are_skipped_and_all_too_small_is_an_error(train_dir, caplog):
    with caplog.at_level(logging.WARNING):
        pairs = load_pairs(train_dir, 2, 19)
    assert [p.name for p in pairs] == ["img0"] and "smaller than patch" in caplog.text
    with pytest.raises(ValueError, match="no training image"):
        load_pairs(train_dir, 2, 64)


def test_missing_lr_is_named(train_dir, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(train_dir, broken)
    (broken / "LR" / "img1.png").unlink()
    with pytest.raises(FileNotFoundError, match="img1.png"):
        load_pairs(broken, 2, 8)


def test_unknown_recipe_key_is_refused():
    with pytest.raises(ValueError, match="unknown training option"):
        TrainSpec.from_dict({"steps": 1, "learning_rate": 0.1})
    with pytest.raises(ValueError, match="optimizer"):
        TrainSpec.from_dict({"steps": 1, "optimizer": "lamb"})


def test_fit_runs_a_custom_objective_with_extras(train_dir, tmp_path):
    from litesr.models import build

    torch.manual_seed(0)
    model = build(ARCH, scale=2, **ARGS)
    spec = TrainSpec.from_dict({"steps": 3, "batch_size": 2, "lr_patch": 8})

    def objective(model, lr, hr):
        loss = (model(lr) - hr).abs().mean()
        return loss, {"half": float(loss) / 2}

    fit(
        model,
        PatchSampler(load_pairs(train_dir, 2, 8), 2, 8),
        spec,
        checkpoint=tmp_path / "c.ckpt",
        log_tsv=tmp_path / "log.tsv",
        objective=objective,
        progress=False,
    )
    log = pd.read_csv(tmp_path / "log.tsv", sep="\t")
    assert np.allclose(log.half, log.loss / 2)


def test_y_channel_objectives(train_dir, tmp_path):
    from litesr.models import build

    torch.manual_seed(0)
    vdsr = build("vdsr", scale=2, width=4, depth=3)
    lr, hr = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 16, 16)
    mean, _ = pixel_objective("l2", "y")(vdsr, lr, hr)
    total, _ = pixel_objective("l2_sum", "y")(vdsr, lr, hr)
    assert total.item() == pytest.approx(mean.item() * 2 * 16 * 16, rel=1e-5)
    with pytest.raises(ValueError, match="predicts Y"):
        pixel_objective("l1", "y")(build(ARCH, scale=2, **ARGS), lr, hr)
    out = train_model(
        "vdsr",
        {"width": 4, "depth": 3},
        {
            **RECIPE,
            "channel": "y",
            "loss": "l2_sum",
            "optimizer": "sgd",
            "lr": 0.01,
            "grad_clip": 0.4,
        },
        train_dir,
        2,
        tmp_path / "v.safetensors",
        tmp_path / "v.tsv",
        progress=False,
    )
    assert np.isfinite(pd.read_csv(tmp_path / "v.tsv", sep="\t").loss).all() and out.exists()
