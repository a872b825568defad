"""The shared training loop: determinism, resume after a kill, NaN stop, patch geometry."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors import safe_open

from litesr.atomic import OutputBusy, output_lock
from litesr.data.images import write_png
from litesr.data.sources import prepare_set
from litesr.models.store import load_model
from litesr.train.loop import TrainingDiverged, fit
from litesr.train.objectives import PixelTask, Task
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
# bf16 autocast and channels-last layout: deterministic and resumable too (CPU runs them).
FAST = {"precision": "bf16", "channels_last": True}


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


def run(train_dir: Path, out: Path, recipe: dict = RECIPE, **kw) -> Path:
    return train_model(
        arch=ARCH,
        args=ARGS,
        recipe=recipe,
        data=train_dir,
        scale=2,
        out=out,
        log=out.with_suffix(".tsv"),
        progress=False,
        **kw,
    )


def fail_at_call(monkeypatch, n: int, error: BaseException) -> None:
    """Make the n-th loss computation of PixelTask raise ``error`` (a kill, a NaN...)."""
    original, calls = PixelTask.loss, {"n": 0}

    def loss(self, lr, hr):
        calls["n"] += 1
        if calls["n"] == n:
            raise error
        return original(self, lr, hr)

    monkeypatch.setattr(PixelTask, "loss", loss)


@pytest.mark.parametrize("extra", [{}, FAST], ids=["fp32", "bf16-channels-last"])
def test_same_config_gives_bit_identical_weights(train_dir, tmp_path, extra):
    recipe = {**RECIPE, **extra}
    a, b = (
        weights(run(train_dir, tmp_path / "a.safetensors", recipe)),
        weights(run(train_dir, tmp_path / "b.safetensors", recipe)),
    )
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert all(v.dtype == torch.float32 for v in a.values() if v.is_floating_point())
    c = run(train_dir, tmp_path / "c.safetensors", recipe=dict(recipe, seed=4))
    assert not all(torch.equal(a[k], weights(c)[k]) for k in a)


def test_bf16_changes_the_weights_and_channels_last_keeps_them_close(train_dir, tmp_path):
    fp32, bf16, nhwc = (
        weights(run(train_dir, tmp_path / f"{name}.safetensors", {**RECIPE, **extra}))
        for name, extra in [("a", {}), ("b", {"precision": "bf16"}), ("c", {"channels_last": True})]
    )
    assert not all(torch.equal(fp32[k], bf16[k]) for k in fp32), "autocast ran"
    assert all(torch.allclose(fp32[k], nhwc[k], atol=1e-4) for k in fp32)


@pytest.mark.parametrize("extra", [{}, FAST], ids=["fp32", "bf16-channels-last"])
def test_killed_run_resumes_to_the_same_weights(train_dir, tmp_path, monkeypatch, extra):
    recipe = {**RECIPE, **extra}
    reference = weights(run(train_dir, tmp_path / "ref.safetensors", recipe))
    out = tmp_path / "resumed.safetensors"
    with monkeypatch.context() as patch:
        fail_at_call(patch, 8, KeyboardInterrupt("killed"))
        with pytest.raises(KeyboardInterrupt):
            run(train_dir, out, recipe)
    ckpt = out.with_name(out.name + ".ckpt")
    assert ckpt.exists() and not out.exists()
    with safe_open(ckpt, framework="pt") as handle:
        assert handle.metadata()["step"] == "5"
        saved = [handle.get_tensor(k) for k in handle.keys() if k.startswith(("task/", "optim"))]
    assert saved and all(t.dtype in (torch.float32, torch.int64) for t in saved)
    assert not list(tmp_path.glob(".*.tmp")), "no temporary file is left behind"
    resumed = weights(run(train_dir, out, recipe))
    assert all(torch.equal(reference[k], resumed[k]) for k in reference)
    assert not ckpt.exists(), "checkpoint is removed once training completes"
    log = pd.read_csv(out.with_suffix(".tsv"), sep="\t")
    assert log.step.tolist() == list(range(1, 13))


class _Seen(PixelTask):
    """Records, per loss, whether the batch is channels-last and the dtype of a conv on it."""

    def loss(self, lr, hr):
        self.seen.append(
            (lr.is_contiguous(memory_format=torch.channels_last), self.student.head(lr).dtype)
        )
        return super().loss(lr, hr)


def test_bf16_channels_last_steps_and_an_fp32_model_after(train_dir, tmp_path):
    from litesr.models import build

    torch.manual_seed(0)
    task = _Seen(build(ARCH, scale=2, **ARGS))
    task.seen = []
    fit(
        task,
        PatchSampler(load_pairs(train_dir, 2, 8), 2, 8),
        TrainSpec.from_dict({"steps": 2, "batch_size": 2, "lr_patch": 8, **FAST}),
        checkpoint=tmp_path / "c.ckpt",
        log_tsv=tmp_path / "log.tsv",
        progress=False,
    )
    assert task.seen == [(True, torch.bfloat16)] * 2
    assert all(p.dtype == torch.float32 and p.is_contiguous() for p in task.parameters())
    assert task.student(torch.rand(1, 3, 8, 8)).dtype == torch.float32, "evaluation is fp32"


def test_colour_and_bicubic_keep_fp32_under_autocast():
    from litesr.data.color import luma
    from litesr.data.resize_torch import upsample_bicubic

    x = torch.rand(2, 3, 6, 6)
    with torch.autocast("cpu", torch.bfloat16):
        y, up = luma(x), upsample_bicubic(x, 2)
    assert torch.equal(y, luma(x)) and torch.equal(up, upsample_bicubic(x, 2))


def test_checkpoint_of_another_config_is_set_aside(train_dir, tmp_path, caplog, monkeypatch):
    out = tmp_path / "m.safetensors"
    with monkeypatch.context() as patch:
        fail_at_call(patch, 8, KeyboardInterrupt("killed"))
        with pytest.raises(KeyboardInterrupt):
            run(train_dir, out, recipe=dict(RECIPE, seed=9))
    with caplog.at_level(logging.WARNING):
        run(train_dir, out)
    assert "another configuration" in caplog.text
    assert len(list(tmp_path.glob("m.safetensors.ckpt.rejected-*"))) == 1
    assert len(pd.read_csv(out.with_suffix(".tsv"), sep="\t")) == 12


class _Payload:
    """Unpickling this runs code: it creates the file named ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_malicious_checkpoint_runs_nothing(train_dir, tmp_path, caplog):
    out, marker = tmp_path / "m.safetensors", tmp_path / "pwned"
    ckpt = out.with_name(out.name + ".ckpt")
    torch.save({"fingerprint": "x", "payload": _Payload(marker)}, ckpt)  # a pickle
    with caplog.at_level(logging.WARNING):
        run(train_dir, out)
    assert not marker.exists(), "the pickle payload ran"
    assert "not a readable checkpoint" in caplog.text and str(ckpt) in caplog.text
    assert out.exists() and not ckpt.exists()


def test_a_truncated_checkpoint_is_set_aside(train_dir, tmp_path, caplog, monkeypatch):
    reference = weights(run(train_dir, tmp_path / "ref.safetensors"))
    out = tmp_path / "m.safetensors"
    with monkeypatch.context() as patch:
        fail_at_call(patch, 8, KeyboardInterrupt("killed"))
        with pytest.raises(KeyboardInterrupt):
            run(train_dir, out)
    ckpt = out.with_name(out.name + ".ckpt")
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    with caplog.at_level(logging.WARNING):
        got = weights(run(train_dir, out))
    assert str(ckpt) in caplog.text and list(tmp_path.glob("m.safetensors.ckpt.rejected-*"))
    assert all(torch.equal(reference[k], got[k]) for k in reference), "started afresh"


def test_two_trainings_of_one_output_do_not_collide(train_dir, tmp_path):
    out = tmp_path / "m.safetensors"
    with output_lock(out), pytest.raises(OutputBusy, match="m.safetensors"):
        run(train_dir, out)
    assert run(train_dir, out).exists()


def test_nan_loss_stops_with_a_clear_error(train_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(
        PixelTask, "loss", lambda self, lr, hr: (self.student(lr).sum() * float("nan"), {})
    )
    with pytest.raises(TrainingDiverged, match="step 1"):
        run(train_dir, tmp_path / "nan.safetensors")
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
    with pytest.raises(ValueError, match="precision"):
        TrainSpec.from_dict({"steps": 1, "precision": "fp16"})
    with pytest.raises(ValueError, match="replaced by 'precision'"):
        TrainSpec.from_dict({"steps": 1, "amp": True})


class AdapterTask(Task):
    """A student plus an extra trainable part and a frozen one, with an after-step hook."""

    def __init__(self, student, teacher):
        super().__init__(student)
        self.adapter = torch.nn.Conv2d(3, 3, 1)
        self.freeze("teacher", teacher)
        self.hooked: list[int] = []

    def loss(self, lr, hr):
        sr = self.student(lr)
        distil = (self.adapter(sr) - self.teacher(lr)).abs().mean()
        loss = (sr - hr).abs().mean() + distil
        return loss, {"distil": float(distil.detach())}

    def after_step(self, step):
        self.hooked.append(step)


def test_fit_trains_extra_parts_and_leaves_frozen_ones(train_dir, tmp_path):
    from litesr.models import build

    torch.manual_seed(0)
    teacher = build(ARCH, scale=2, **ARGS)
    task = AdapterTask(build(ARCH, scale=2, **ARGS), teacher)
    before = {k: v.clone() for k, v in task.state_dict().items()}
    spec = TrainSpec.from_dict({"steps": 3, "batch_size": 2, "lr_patch": 8})
    fit(
        task,
        PatchSampler(load_pairs(train_dir, 2, 8), 2, 8),
        spec,
        checkpoint=tmp_path / "c.ckpt",
        log_tsv=tmp_path / "log.tsv",
        progress=False,
    )
    after = task.state_dict()
    assert not torch.equal(before["adapter.weight"], after["adapter.weight"])
    assert not torch.equal(before["student.head.weight"], after["student.head.weight"])
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("teacher."))
    assert not any(k.startswith("teacher.") for k in task.trainable_state())
    assert task.hooked == [1, 2, 3]
    assert "distil" in pd.read_csv(tmp_path / "log.tsv", sep="\t")


def test_y_channel_objectives(train_dir, tmp_path):
    from litesr.models import build

    torch.manual_seed(0)
    vdsr = build("vdsr", scale=2, width=4, depth=3)
    lr, hr = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 16, 16)
    mean, _ = PixelTask(vdsr, "l2", "y").loss(lr, hr)
    total, _ = PixelTask(vdsr, "l2_sum", "y").loss(lr, hr)
    assert total.item() == pytest.approx(mean.item() * 2 * 16 * 16, rel=1e-5)
    with pytest.raises(ValueError, match="predicts Y"):
        PixelTask(build(ARCH, scale=2, **ARGS), "l1", "y").loss(lr, hr)
    out = train_model(
        arch="vdsr",
        args={"width": 4, "depth": 3},
        recipe={
            **RECIPE,
            "channel": "y",
            "loss": "l2_sum",
            "optimizer": "sgd",
            "lr": 0.01,
            "grad_clip": 0.4,
        },
        data=train_dir,
        scale=2,
        out=tmp_path / "v.safetensors",
        log=tmp_path / "v.tsv",
        progress=False,
    )
    assert np.isfinite(pd.read_csv(tmp_path / "v.tsv", sep="\t").loss).all() and out.exists()


def test_recipe_schema_lists_every_recipe_field():
    import dataclasses

    import yaml

    schema = yaml.safe_load(
        (Path(__file__).parents[1] / "src/litesr/train/recipe.schema.yaml").read_text()
    )
    assert set(schema["properties"]) == {f.name for f in dataclasses.fields(TrainSpec)}


def test_a_checkpoint_of_other_data_is_not_resumed(train_dir, tmp_path, monkeypatch, caplog):
    import shutil

    from litesr.data.images import read_image

    data = tmp_path / "data"
    shutil.copytree(train_dir, data)
    out = tmp_path / "m.safetensors"
    with monkeypatch.context() as patch:
        fail_at_call(patch, 8, KeyboardInterrupt("killed"))
        with pytest.raises(KeyboardInterrupt):
            run(data, out)
    # Re-prepare the same folder from other images: the checkpoint must not be resumed.
    hr = read_image(data / "HR" / "img0.png")
    prepare_set([_write(tmp_path / "other.png", 255 - hr)], 2, data, progress=False)
    with caplog.at_level(logging.WARNING):
        run(data, out)
    assert "another configuration or data" in caplog.text


def _write(path: Path, img) -> Path:
    write_png(path, img)
    return path


def test_log_rows_beyond_the_header_limit_are_checkpointed(tmp_path):
    """safetensors refuses headers over 100 MB, which the JSON log rows of about 1.25 M steps
    would need: the rows are kept in a tensor, not in the header."""
    from litesr.train.checkpoint import Checkpoint, load_checkpoint, save_checkpoint

    rows = [{"step": 1, "loss": 0.25, "note": "x" * 100_000_001}, {"step": 2, "loss": 0.125}]
    state = Checkpoint(
        step=2,
        task={"w": torch.ones(3)},
        optimizer={"param_groups": [], "state": {}},
        generator=torch.Generator().manual_seed(0).get_state(),
        rows=rows,
    )
    path = tmp_path / "big.ckpt"
    save_checkpoint(path, "run", state)
    assert load_checkpoint(path, "run").rows == rows


def _checkpoint_step(path: Path) -> str:
    with safe_open(path, framework="pt") as handle:
        return handle.metadata()["step"]


def test_a_full_disk_at_a_checkpoint_is_one_line_and_keeps_the_last_one(
    train_dir, tmp_path, monkeypatch
):
    from safetensors import SafetensorError

    from litesr.train import checkpoint as module

    reference = weights(run(train_dir, tmp_path / "ref.safetensors"))
    out = tmp_path / "m.safetensors"
    ckpt = out.with_name(out.name + ".ckpt")
    original, calls = module.save_file, {"n": 0}

    def full_disk_at_the_second(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise SafetensorError(
                "Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "
                '"No space left on device" })'
            )
        return original(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(module, "save_file", full_disk_at_the_second)
        with pytest.raises(
            OSError, match=r"cannot write .*m\.safetensors\.ckpt: .*MiB free"
        ) as err:
            run(train_dir, out)
    assert "\n" not in str(err.value) and "No space left" in str(err.value)
    assert _checkpoint_step(ckpt) == "5", "the step-5 checkpoint is intact"
    assert not list(tmp_path.glob(".*.tmp")) and not out.exists()
    resumed = weights(run(train_dir, out))
    assert all(torch.equal(reference[k], resumed[k]) for k in reference)


def test_a_crash_while_saving_the_model_keeps_the_checkpoint(train_dir, tmp_path, monkeypatch):
    from litesr.train import run as module

    reference = weights(run(train_dir, tmp_path / "ref.safetensors"))
    out = tmp_path / "m.safetensors"
    ckpt = out.with_name(out.name + ".ckpt")

    def crash(*args, **kwargs):
        raise OSError("crashed while writing the model")

    with monkeypatch.context() as patch:
        patch.setattr(module, "save_model", crash)
        with pytest.raises(OSError, match="crashed"):
            run(train_dir, out)
    assert _checkpoint_step(ckpt) == str(RECIPE["steps"]) and not out.exists()
    calls = {"n": 0}
    original = PixelTask.loss

    def counted(self, lr, hr):
        calls["n"] += 1
        return original(self, lr, hr)

    monkeypatch.setattr(PixelTask, "loss", counted)
    resumed = weights(run(train_dir, out))
    assert calls["n"] == 0, "the rerun trains no step again"
    assert all(torch.equal(reference[k], resumed[k]) for k in reference)
    assert not ckpt.exists()
    log = pd.read_csv(out.with_suffix(".tsv"), sep="\t")
    assert log.step.tolist() == list(range(1, 13))


def test_a_worker_draws_the_batches_and_states_of_the_training_process(train_dir):
    """On a GPU a DataLoader worker draws ahead; it continues the one generator, so batches and
    the checkpointed generator state are those drawn in the training process."""
    from litesr.train.loader import Batches
    from litesr.train.patches import FixedPatchSampler, extract_patches

    sampler = PatchSampler(load_pairs(train_dir, 2, 8), 2, 8)
    cpu = torch.device("cpu")
    here = Batches(sampler, 4, torch.Generator().manual_seed(5), cpu, worker=False)
    ahead = Batches(sampler, 4, torch.Generator().manual_seed(5), cpu, worker=True)
    with here, ahead:
        for _ in range(5):
            assert all(torch.equal(a, b) for a, b in zip(next(here), next(ahead), strict=True))
            assert torch.equal(here.state(), ahead.state())
    fixed = FixedPatchSampler(*extract_patches(sampler, 16, seed=0))
    moved = fixed.to(cpu)
    draws = [s.sample(4, torch.Generator().manual_seed(1)) for s in (fixed, moved)]
    assert all(torch.equal(a, b) for a, b in zip(*draws, strict=True))


def test_gpus_split_the_global_batch_and_leave_the_fingerprint():
    with pytest.raises(ValueError, match="split evenly over gpus = 4"):
        TrainSpec.from_dict({"steps": 1, "batch_size": 6, "gpus": 4})
    one, two = (TrainSpec.from_dict({"steps": 1, "batch_size": 8, "gpus": g}) for g in (1, 2))
    assert one.fingerprint("x") == two.fingerprint("x"), "the processes run enter fit's key"
