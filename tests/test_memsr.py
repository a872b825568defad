"""MemSR: exact plain conversion (borders included), SVD initialisation, the distillation task,
the steps end to end, the table and the memory figure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from skimage import data as skdata

from litesr.data.images import write_png
from litesr.data.sources import prepare_set
from litesr.methods.memsr import METHOD
from litesr.methods.memsr.convert import convert
from litesr.methods.memsr.init import choose_rank, memsr_init, teacher_taps
from litesr.methods.memsr.report import memory_figure, memsr_table
from litesr.methods.memsr.steps import convert_teacher, train_student
from litesr.methods.memsr.task import MemSRTask, distill_weight
from litesr.models import build
from litesr.models.store import load_model
from litesr.train.run import train_model


def astronaut_lr(scale: int) -> torch.Tensor:
    """A real LR image: a crop of skimage's astronaut, box-downscaled."""
    hr = torch.from_numpy(skdata.astronaut()[40:200, 120:264].copy()).permute(2, 0, 1)
    return F.avg_pool2d(hr.float()[None] / 255, scale)


def teacher(scale: int, n_resblocks: int, n_feats: int, res_scale: float = 1.0, seed: int = 0):
    """An EDSR with random weights and biases away from zero (so every term matters)."""
    torch.manual_seed(seed)
    model = build(
        "edsr", scale=scale, n_resblocks=n_resblocks, n_feats=n_feats, res_scale=res_scale
    )
    for p in model.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    return model.eval()


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


SIZES = [(4, 2, 8, 1.0), (2, 3, 16, 0.1), (3, 1, 6, 1.0), (4, 3, 24, 1.0)]


@pytest.mark.parametrize(("scale", "blocks", "feats", "res_scale"), SIZES)
def test_plain_teacher_equals_the_teacher(scale, blocks, feats, res_scale):
    model = teacher(scale, blocks, feats, res_scale)
    plain, offsets = convert(model)
    plain64 = convert(model, dtype=torch.float64)[0]
    assert all(c.kernel_size == (3, 3) for c in plain.convs)
    assert len(plain.convs) == 2 * blocks + 4 + (2 if scale == 4 else 1)
    g = torch.Generator().manual_seed(1)
    images = [torch.rand(2, 3, 17, 23, generator=g), astronaut_lr(scale)]
    with torch.no_grad():
        for x in images:
            ref64 = model.double()(x.double())
            got64 = plain64(x.double())
            assert rel(got64, ref64) < 1e-12
            # Borders: a ring of `scale` output pixels (what zero padding touches first).
            ring = torch.ones_like(ref64, dtype=torch.bool)
            ring[..., scale:-scale, scale:-scale] = False
            assert float((got64 - ref64)[ring].abs().max()) < 1e-12
            model.float()
            assert rel(plain(x), model(x)) < 1e-4  # float32, the offsets of `convert`
    assert offsets[0] == 0 and offsets[-1] == 0 and max(offsets) <= 64


def test_the_constant_channel_carries_the_biases_and_stays_one_at_the_borders():
    model = teacher(4, 2, 8)
    plain, offsets = convert(model)
    for conv in plain.convs[1:]:
        assert torch.equal(conv.bias, torch.zeros_like(conv.bias))  # biases are centre taps
    first = plain.convs[0].bias
    assert torch.equal(first[-1:], torch.ones(1))  # the constant channel is born here
    with torch.no_grad():
        _, feats = plain(astronaut_lr(4), return_features=True)
    for f in feats:  # 1 on every pixel, borders included, after every hidden layer
        assert torch.equal(f[:, -1], torch.ones_like(f[:, -1]))
    # Off-centre taps of the constant channel only remove the offsets (zero if none).
    no_offset = convert(model, offset=1e-30)[0]  # offsets ≈ 0: only the biases remain
    for conv in no_offset.convs[2:]:
        const = conv.weight.detach()[:, -1].clone()
        const[:, 1, 1] = 0
        assert float(const.abs().max()) < 1e-25


def test_offset_1000_is_exact_in_float64_but_costs_float32_precision():
    model = teacher(4, 4, 32)
    x = astronaut_lr(4)
    auto, _ = convert(model)
    big, offsets = convert(model, offset=1000.0)
    assert offsets[:-1] == [1000.0] * (len(offsets) - 1)
    with torch.no_grad():
        ref = model(x)
        err_auto, err_big = rel(auto(x), ref), rel(big(x), ref)
        big64 = convert(model, offset=1000.0, dtype=torch.float64)[0]
        assert rel(big64(x.double()), model.double()(x.double())) < 1e-11
    # float32 keeps about 7 digits: a stored value near 1000 loses ~6e-5 per rounding.
    assert err_auto < 1e-4 < err_big and err_big > 10 * err_auto


def test_a_network_with_attention_is_refused_naming_the_layer():
    rlfn = build("rlfn", scale=4, feature_channels=8, mid_channels=8, esa_channels=4, n_blocks=1)
    with pytest.raises(ValueError, match=r"cannot convert rlfn.*blocks\.0.*blocks\.0\.esa"):
        convert(rlfn)
    with pytest.raises(ValueError, match="cannot convert vdsr"):
        convert(build("vdsr", scale=2, width=4, depth=3))


def test_plain_arch_checks_its_shape():
    assert build("plain", scale=4, widths=[8, 48])(torch.rand(1, 3, 5, 6)).shape == (1, 3, 20, 24)
    with pytest.raises(ValueError, match="3 channels"):
        build("plain", scale=2, widths=[8, 16])
    with pytest.raises(ValueError, match="multiply to 4"):
        build("plain", scale=4, widths=[8, 12], factors=[1, 2])


def test_plain_constant_channel_equals_a_zero_padded_ones_channel():
    torch.manual_seed(0)
    model = build("plain", scale=2, widths=[6, 12], acts=["identity", "identity"], const=True)
    for k in model.consts:
        k.data.normal_()
    assert "convs.0.bias" not in model.state_dict()
    for h, w in ((1, 1), (1, 4), (5, 2), (7, 9)):
        x = torch.rand(2, 3, h, w)
        ones = torch.ones(2, 1, h, w)
        y = x
        for conv, k in zip(model.convs, model.consts, strict=True):
            weight = torch.cat([conv.weight, k[:, None]], dim=1)
            y = F.conv2d(
                torch.cat([y, ones[..., : y.shape[-2], : y.shape[-1]]], 1), weight, padding=1
            )
        with torch.no_grad():
            assert rel(model(x), F.pixel_shuffle(y, 2)) < 1e-6


def test_plain_defaults_keep_old_files_loading():
    old = build("plain", scale=2, widths=[8, 12])
    assert old.acts == ["relu", "identity"] and not old.const
    assert sorted(old.state_dict()) == [
        f"convs.{i}.{p}" for i in (0, 1) for p in ("bias", "weight")
    ]
    with pytest.raises(ValueError, match="acts"):
        build("plain", scale=2, widths=[8, 12], acts=["relu"])


def test_rank_rules():
    s = torch.tensor([10.0, 3.0, 1.0, 0.1])
    assert choose_rank(s, 2, 0.05) == 2 and choose_rank(s, 64, 0.05) == 4
    # residual after r: sqrt(Σ_{j>=r} s²) / ‖s‖ = 0.3014, 0.0950, 0.0095
    assert choose_rank(s, "auto", 0.05) == 3 and choose_rank(s, "auto", 0.2) == 2


@pytest.fixture(scope="module")
def calibrated():
    model = teacher(2, 2, 8, seed=3)
    plain, _ = convert(model)
    lr = astronaut_lr(2)
    g = torch.Generator().manual_seed(0)
    calib = torch.cat(
        [lr[..., :32, :32], lr[..., 40:72, 30:62], torch.rand(2, 3, 32, 32, generator=g)]
    )
    return model, plain, calib, lr[..., :, 36:]


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(-10 * torch.log10(((a - b) ** 2).mean()))


def test_svd_init_reproduces_the_teacher_closely_at_full_rank(calibrated):
    model, plain, calib, test = calibrated
    widths = [plain.convs[t].out_channels - 1 for t in teacher_taps(plain)]
    with torch.no_grad():
        ref = model(test)
        full, bridges, report = memsr_init(plain, calib, rank=max(widths))
        low, _, low_report = memsr_init(plain, calib, rank=2)
        random = build("plain", scale=2, widths=full.litesr_arch[1]["widths"])
        assert report["rank"] == widths and max(report["residual"]) < 1e-6
        assert low_report["rank"] == [2] * len(widths) and min(low_report["residual"]) > 0.1
        p_full, p_low, p_rand = psnr(full(test), ref), psnr(low(test), ref), psnr(random(test), ref)
        # Not exact: ReLU does not commute with U_r, and one conv + shuffle replaces the
        # teacher's upsampler (27.2 dB here; rank 2: 26.0 dB; random weights: 6.3 dB).
        assert p_full > 26.5 and p_full > p_low + 0.5 and p_low > p_rand + 15
        # Bridges map the student's features back onto the teacher's (first body feature).
        _, f_s = full(test, return_features=True)
        _, f_t = plain(test, return_features=True)
        tap = teacher_taps(plain)[0]
        assert rel(bridges[0](f_s[0]), f_t[tap][:, :-1]) < 0.05


def test_distill_weight_decays_from_coe_to_coe_times_alpha():
    assert distill_weight(0, 100) == pytest.approx(0.3)
    assert distill_weight(100, 100) == pytest.approx(0.3e-5)
    assert distill_weight(50, 100) == pytest.approx(0.3 * 10**-2.5)


def test_task_trains_student_and_bridges_not_the_teacher(calibrated):
    _, plain, calib, _ = calibrated
    student, bridges, _ = memsr_init(plain, calib, rank=4)
    task = MemSRTask(student, bridges, plain, total_steps=10)
    keys = set(task.trainable_state())
    assert any(k.startswith("bridges.") for k in keys) and "steps_done" in keys
    assert not any(k.startswith("teacher.") for k in keys)
    hr = torch.rand(2, 3, 32, 32)
    loss, extras = task.loss(F.avg_pool2d(hr, 2), hr)
    assert extras["c"] == pytest.approx(0.3) and extras["distill"] > 0
    loss.backward()
    assert bridges[0].weight.grad is not None and student.convs[0].weight.grad is not None
    task.after_step(10)
    assert task.loss(F.avg_pool2d(hr, 2), hr)[1]["c"] == pytest.approx(0.3e-5)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("memsr")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(2):
        img = np.kron(
            rng.integers(0, 256, (12, 12, 3), dtype=np.uint8), np.ones((4, 4, 1), np.uint8)
        )
        write_png(root / "src" / f"{i}.png", img)
        paths.append(root / "src" / f"{i}.png")
    data = prepare_set(paths, 2, root / "x2", progress=False)
    edsr = train_model(
        arch="edsr",
        args={"n_resblocks": 2, "n_feats": 8},
        recipe={"steps": 3, "batch_size": 2, "lr_patch": 8},
        data=data,
        scale=2,
        out=root / "t.safetensors",
        log=root / "t.tsv",
        progress=False,
    )
    return root, data, edsr


RECIPE = {"steps": 4, "batch_size": 2, "lr_patch": 8, "lr": 1e-4, "checkpoint_every": 2}


def test_steps_convert_then_train_students(workdir, monkeypatch):
    root, data, edsr = workdir
    monkeypatch.setattr(
        "litesr.methods.memsr.steps.CALIBRATION", {"patches": 4, "lr_patch": 16, "seed": 0}
    )
    plain_path = convert_teacher(
        teacher=edsr,
        data=data,
        scale=2,
        out=root / "p.safetensors",
        log=root / "p.tsv",
        stages=root / "ps",
        progress=False,
    )
    plain, meta = load_model(plain_path)
    assert meta["variant"] == "plain-teacher" and meta["rel_error_fp32"] < 1e-5
    assert len(pd.read_csv(root / "p.tsv", sep="\t")) == len(plain.convs)
    outs = {}
    for init in ("memsr", "random"):
        outs[init] = train_student(
            teacher=plain_path,
            data=data,
            scale=2,
            init=init,
            rank=4,
            recipe=RECIPE,
            out=root / init / "m.safetensors",
            log=root / init / "log.tsv",
            stages=root / init / "stages",
            size=4,
            progress=False,
        )
    memsr, m_meta = load_model(outs["memsr"])
    random, r_meta = load_model(outs["random"])
    assert m_meta["args"] == r_meta["args"] and m_meta["ranks"] == [4] * (len(memsr.convs) - 1)
    log = pd.read_csv(root / "memsr" / "log.tsv", sep="\t")
    assert len(log) == 4 and log.c.iloc[0] == pytest.approx(0.3) and (log.c.diff()[1:] < 0).all()
    assert "distill" not in pd.read_csv(root / "random" / "log.tsv", sep="\t")
    with torch.no_grad():
        x = torch.rand(1, 3, 12, 12)
        ref = plain(x)
        assert psnr(memsr(x), ref) > psnr(random(x), ref) + 10


def test_plan_declares_the_models_and_refuses_a_bad_teacher():
    from litesr.methods.plan import Paths

    config = {"models": {"t": {"arch": "edsr", "args": {"n_resblocks": 3}}}, "seed": 0}
    section = {"teacher": "t", "width": 8, "train": {"steps": 2}}
    plan = METHOD.plan(section, config, Paths([4], "tr", ["te"]))
    assert {m.name for m in plan.made} == {
        "memsr-plain-teacher",
        "memsr-w8-memsr",
        "memsr-w8-random",
    }
    assert plan.trained[0].args == {"n_resblocks": 3, "n_feats": 8} and not plan.figures
    with pytest.raises(ValueError, match="memsr.teacher"):
        METHOD.plan({**section, "teacher": "nope"}, config, Paths([4], "tr", ["te"]))


def test_table_groups_by_metadata_not_by_name():
    models = ["a", "b", "c", "d", "e"]  # names say nothing
    summary = pd.DataFrame(
        {
            "model": models,
            "set": "Set5",
            "scale": 4,
            "psnr_y": [30.0, 30.0, 29.0, 28.5, 29.2],
            "ssim_y": 0.9,
        }
    )
    cost = pd.DataFrame(
        {
            "model": models,
            "scale": 4,
            "params": [1e6, 3e6, 4e4, 4e4, 5e4],
            "cpu_inference_MiB": [50.0, 90, 5, 5, 12],
            "cpu_latency_ms": [100.0, 300, 10, 10, 14],
        }
    )
    catalog = pd.DataFrame(
        {
            "model": models,
            "scale": 4,
            "arch": "x",
            "method": ["", "memsr", "memsr", "memsr", "memsr"],
            "variant": ["", "plain-teacher", "memsr", "random", "residual"],
            "size": [None, 8, 8, 8, 8],
        }
    )
    table = memsr_table(summary, cost, catalog, teacher="a", plain_teacher="b")
    assert table.index[0].startswith("a: EDSR") and table.index[1].startswith("b: plain teacher")
    assert table.loc["w8 gain: MemSR − random init", "Set5 ×4"] == "+0.50 dB"
    assert table.loc["w8 residual (EDSR-style)", "CPU_MiB"] == "12.0"


def test_memory_figure_draws_the_floor(tmp_path):
    rows = [
        {"network": n, "scale": s, "out_mpix": mp, "peak_MiB": mp * k, "floor_MiB": mp * 2}
        for n, k in (("teacher", 40), ("plain student w8", 3))
        for s in (2, 4)
        for mp in (0.1, 0.9)
    ]
    tsv = tmp_path / "m.tsv"
    pd.DataFrame(rows).to_csv(tsv, sep="\t", index=False)
    assert memory_figure(str(tsv), str(tmp_path / "f.png")).stat().st_size > 1000
    pd.DataFrame(rows).drop(columns="floor_MiB").to_csv(tsv, sep="\t", index=False)
    with pytest.raises(ValueError, match="floor_MiB"):
        memory_figure(str(tsv), str(tmp_path / "g.png"))
