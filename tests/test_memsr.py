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
from litesr.measure import cost
from litesr.methods.memsr import METHOD, report
from litesr.methods.memsr.convert import convert, edsr_acts
from litesr.methods.memsr.init import authors_init, choose_rank, he_init, teacher_taps, width_init
from litesr.methods.memsr.memory import authors_student, floor_bytes
from litesr.methods.memsr.report import memory_figure, memsr_table
from litesr.methods.memsr.steps import convert_teacher, init_student, train_student
from litesr.methods.memsr.task import DistillWeight, MemSRTask, steps_per_epoch
from litesr.models import build
from litesr.models.plain import add_constant_channel
from litesr.models.store import load_model, save_model
from litesr.report.figures import save
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


@pytest.mark.parametrize("bands", [32, 3])
def test_plain_shuffles_in_bands_at_inference_with_the_same_result(bands, monkeypatch):
    # Inference runs a shuffling layer a band of input rows at a time (halo rows from the
    # neighbours, the constant channel's border terms only on the image's first and last
    # rows), channels-last; with gradients every layer runs whole, as trained. Both must agree
    # to fp32 rounding, for one-row, odd and many-band heights.
    monkeypatch.setattr("litesr.models.plain.SHUFFLE_BANDS", bands)
    torch.manual_seed(0)
    acts = ["relu", "identity", "relu", "identity"]
    for scale, args in (
        (4, {"widths": [8, 48]}),  # a last conv + shuffle to RGB
        (3, {"widths": [8, 27], "acts": ["relu", "relu"], "const": True}),
        (4, {"widths": [8, 64, 64, 3], "factors": [1, 2, 2, 1], "acts": acts, "const": True}),
    ):
        model = build("plain", scale=scale, **args)
        for k in getattr(model, "consts", []):
            k.data.normal_()
        for hw in ((1, 1), (2, 5), (9, 7), (40, 11)):
            x = torch.rand(1, 3, *hw)
            whole = model(x).detach()  # with gradients: whole layers, contiguous
            with torch.no_grad():
                out = model(x)
                assert out.is_contiguous(memory_format=torch.channels_last)
                assert out.shape == whole.shape and whole.is_contiguous()
                # the same sums in another order: equal to fp32 rounding
                assert float((out - whole).abs().max()) <= 1e-5 * float(whole.abs().max())
        with torch.no_grad():
            seen: list[int] = []
            hook = model.convs[-1].register_forward_hook(lambda *a, seen=seen: seen.append(1))
            assert torch.allclose(model(x), whole, rtol=1e-5, atol=1e-5)
            hook.remove()  # an observed conv (tiling's tracer) runs whole
        assert seen


def test_the_constant_channel_of_a_band_needs_its_edges():
    torch.manual_seed(0)
    kernel = torch.randn(4, 3, 3)
    whole = add_constant_channel(torch.zeros(1, 4, 9, 6), kernel)
    bands = [(0, 2), (2, 3), (3, 9)]
    parts = [
        add_constant_channel(torch.zeros(1, 4, b - a, 6), kernel, top=a == 0, bottom=b == 9)
        for a, b in bands
    ]
    assert torch.equal(torch.cat(parts, dim=2), whole)


def test_the_floor_is_the_tails_for_teacher_and_student():
    # Same tail (EDSR's upsampler at F = 8, ×4): the largest layer is the second conv +
    # shuffle (F maps of 2h × 2w in, F of 4h × 4w out) or the last conv (F in, 3 out at
    # 4h × 4w); the student MemSR builds of the teacher has the same floor.
    edsr = teacher(4, 1, 8)
    student = authors_student(edsr)
    assert student.factors[-3:] == [2, 2, 1]
    h, w = 30, 20
    floor = 4 * max(8 * (4 + 16), (8 + 3) * 16) * h * w
    assert floor_bytes(edsr, (h, w)) == floor_bytes(student, (h, w)) == floor


@pytest.mark.slow
def test_plain_student_needs_within_1_2_of_its_floor(tmp_path):
    # The student MemSR builds of an EDSR 2×32 at ×2, a 480p output (LR 240×320): the peak
    # RSS of one forward in a fresh process (median of three: allocator noise of a few MiB)
    # within 1.2× its two-map floor of 46.9 MiB (F at LR in, F at HR out); its tail runs in
    # bands, channels-last. The EDSR teacher, whose tail runs whole, needs more than 2×.
    torch.manual_seed(0)
    edsr = build("edsr", scale=2, n_resblocks=2, n_feats=32).eval()
    student = authors_student(edsr)
    lr = (240, 320)
    floor = floor_bytes(student, lr)
    assert floor == 4 * 32 * (240 * 320 + 480 * 640)
    for model, low, high in ((student, 0.9, 1.2), (edsr, 2.0, 10.0)):
        path = tmp_path / "model.safetensors"
        save_model(model, path, arch=model.litesr_arch[0], args=model.litesr_arch[1])
        peaks = sorted(cost.cpu_peak_memory_bytes(path, lr)["inference_bytes"] for _ in range(3))
        assert low * floor <= peaks[1] <= high * floor, (model.litesr_arch[0], peaks, floor)


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
    plain, offsets = convert(model)
    lr = astronaut_lr(2)
    g = torch.Generator().manual_seed(0)
    calib = torch.cat(
        [lr[..., :32, :32], lr[..., 40:72, 30:62], torch.rand(2, 3, 32, 32, generator=g)]
    )
    return model, plain, calib, lr[..., :, 36:], offsets


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(-10 * torch.log10(((a - b) ** 2).mean()))


def test_width_student_reproduces_the_teacher_closely_at_full_rank(calibrated):
    model, plain, calib, test, _ = calibrated
    widths = [plain.convs[t].out_channels - 1 for t in teacher_taps(plain)]
    with torch.no_grad():
        ref = model(test)
        full = width_init(plain, calib, rank=max(widths))
        low = width_init(plain, calib, rank=2)
        random = build("plain", scale=2, widths=full.student.litesr_arch[1]["widths"])
        assert full.report["rank"] == widths and max(full.report["residual"]) < 1e-6
        assert low.report["rank"] == [2] * len(widths) and min(low.report["residual"]) > 0.1
        p_full, p_low = psnr(full.student(test), ref), psnr(low.student(test), ref)
        p_rand = psnr(random(test), ref)
        # Not exact: ReLU does not commute with U_r, and one conv + shuffle replaces the
        # teacher's upsampler (27.2 dB here; rank 2: 26.0 dB; random weights: 6.3 dB).
        assert p_full > 26.5 and p_full > p_low + 0.5 and p_low > p_rand + 15
        # Bridges map the student's features back onto the teacher's (first body feature).
        _, f_s = full.student(test, return_features=True)
        _, f_t = plain(test, return_features=True)
        i, tap = full.pairs[0]
        assert rel(full.bridges[0](f_s[i]), f_t[tap][:, :-1]) < 0.05
        assert not full.distill_sr


def test_authors_student_has_their_shape(calibrated):
    model, plain, calib, _, offsets = calibrated
    made = authors_init(plain, calib, edsr_acts(model), offsets)
    args = made.student.litesr_arch[1]
    # head, two per block at rank = the teacher's width (8), the body end at full width, then
    # the teacher's upsampler (conv 8→32, shuffle 2) and tail (conv 8→3), copied.
    assert args["widths"] == [8] * 5 + [8, 32, 3] and args["factors"] == [1] * 6 + [2, 1]
    assert (
        args["acts"]
        == ["identity", "relu", "identity", "relu", "identity", "identity"] + ["identity"] * 2
    )
    assert args["const"] and made.distill_sr
    assert made.pairs == [(k, k + 1) for k in range(6)]
    tail = plain.convs[-1].weight[:, :-1]
    assert torch.equal(made.student.convs[-1].weight, tail)
    # The body end's bridge: identity, a fixed shift by the teacher's offset.
    assert not any(p.requires_grad for p in made.bridges[-1].parameters())


@pytest.mark.parametrize("solve", ["weights", "features"])
def test_authors_student_is_the_teacher_when_nothing_is_lost(solve):
    # No residual block: no ReLU in the body, every feature at full rank; the student must be
    # the teacher, borders included (constant channel, identity activations, copied tail).
    model = teacher(4, 0, 6, seed=5)
    plain, offsets = convert(model)
    lr = astronaut_lr(4)
    made = authors_init(plain, lr[..., :24, :24], edsr_acts(model), offsets, solve=solve)
    assert made.student.litesr_arch[1]["acts"] == ["identity"] * 5
    with torch.no_grad():
        assert rel(made.student(lr), model(lr)) < 1e-4


def test_authors_student_computes_true_values_so_small_changes_stay_small(calibrated):
    # The plain teacher stores offset values; a student reading them would turn a weight
    # change δ into δ · offset errors (30 → 16 dB after four training steps on a toy run).
    model, plain, calib, test, offsets = calibrated
    made = authors_init(plain, calib, edsr_acts(model), offsets)
    big = convert(model, offset=64.0)
    student = authors_init(big[0], calib, edsr_acts(model), big[1]).student
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        ref = [made.student(test), student(test)]
        for net in (made.student, student):
            for p in net.parameters():
                p.add_(1e-4 * (2 * torch.rand(p.shape, generator=g) - 1))
        moved = [made.student(test), student(test)]
    assert rel(moved[0], ref[0]) < 2e-3 and rel(moved[1], ref[1]) < 2e-3
    assert rel(ref[1], ref[0]) < 1e-4  # the offsets do not change the student


def test_random_baseline_is_he_initialised_and_keeps_the_signal(calibrated):
    model, plain, calib, test, offsets = calibrated
    student = authors_init(plain, calib, edsr_acts(model), offsets).student
    he_init(student, seed=0)
    assert all(float(k.detach().abs().max()) == 0 for k in student.consts)
    default = build("plain", **{k: v for k, v in student.litesr_arch[1].items()})
    with torch.no_grad():
        f_he = student(test, return_features=True)[1]
        f_default = default(test, return_features=True)[1]
    # He keeps the features' scale through the body; PyTorch's default init shrinks it.
    he_ratio = float(f_he[5].std() / f_he[0].std())
    default_ratio = float(f_default[5].std() / f_default[0].std())
    assert 0.2 < he_ratio < 5 and default_ratio < 0.2


def test_distill_weight_is_unit_correct_and_decays_per_epoch():
    c = DistillWeight(total=1000, epoch=1000)  # the authors' released run: one epoch
    assert c(0) == pytest.approx(0.3 * 255) and c(999) == pytest.approx(76.5)
    per_epoch = DistillWeight(total=300, epoch=100)
    assert per_epoch(99) == pytest.approx(76.5)
    assert per_epoch(100) == pytest.approx(76.5 * 1e-5 ** (1 / 3))
    per_step = DistillWeight(total=100, schedule="step", units=1)  # the earlier port
    assert per_step(50) == pytest.approx(0.3 * 10**-2.5)
    assert steps_per_epoch(800, 16) == 1000 and steps_per_epoch(80, 16, repeat=1) == 5


def test_task_trains_student_and_bridges_not_the_teacher(calibrated):
    model, plain, calib, _, offsets = calibrated
    made = authors_init(plain, calib, edsr_acts(model), offsets, rank=4)
    task = MemSRTask(made, plain, DistillWeight(total=10, epoch=5))
    keys = set(task.trainable_state())
    assert any(k.startswith("bridges.") for k in keys) and "steps_done" in keys
    assert not any(k.startswith("teacher.") for k in keys)
    hr = torch.rand(2, 3, 32, 32)
    loss, extras = task.loss(F.avg_pool2d(hr, 2), hr)
    assert extras["c"] == pytest.approx(76.5) and extras["distill"] > 0
    loss.backward()
    bridge = made.bridges[0]
    assert bridge.weight.grad is not None and made.student.convs[0].weight.grad is not None
    assert made.student.consts[0].grad is not None
    task.after_step(5)
    assert task.loss(F.avg_pool2d(hr, 2), hr)[1]["c"] == pytest.approx(76.5 * 1e-5**0.5)


def test_the_sr_output_is_distilled(calibrated):
    model, plain, calib, _, offsets = calibrated
    made = authors_init(plain, calib, edsr_acts(model), offsets, rank=4)
    task = MemSRTask(made, plain, DistillWeight(total=10))
    lr = calib[:2]
    with torch.no_grad():
        sr, sr_t = made.student(lr), plain(lr)
        base = task.loss(lr, sr_t)[1]["distill"]
        made.student.consts[-1][:, 1, 1] += 0.1  # shifts the SR output only
        moved = task.loss(lr, sr_t)[1]["distill"]
    # One term of the mean over 6 features + SR.
    expected = (F.mse_loss(sr + 0.1, sr_t) - F.mse_loss(sr, sr_t)) / 7
    assert moved - base == pytest.approx(float(expected), rel=1e-3)


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


def test_steps_convert_initialise_then_train_students(workdir, monkeypatch):
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
    assert meta["acts"][:4] == ["identity", "identity", "relu", "identity"]
    assert len(pd.read_csv(root / "p.tsv", sep="\t")) == len(plain.convs)
    outs = {}
    for init in ("memsr", "random"):
        start = init_student(
            teacher=plain_path,
            data=data,
            scale=2,
            init=init,
            seed=1,
            out=root / f"{init}-init" / "m.safetensors",
            log=root / f"{init}-init" / "log.tsv",
            stages=root / f"{init}-init" / "stages",
        )
        log = pd.read_csv(root / f"{init}-init" / "log.tsv", sep="\t")
        assert {"psnr_hr", "psnr_teacher"} <= set(log.columns)
        outs[init] = train_student(
            teacher=plain_path,
            start=start,
            data=data,
            scale=2,
            init=init,
            recipe=RECIPE,
            distill={"repeat": 2},  # 2 images × 2 / batch 2: epochs of 2 steps
            out=root / init / "m.safetensors",
            log=root / init / "log.tsv",
            stages=root / init / "stages",
            progress=False,
        )
    memsr, m_meta = load_model(outs["memsr"])
    random, r_meta = load_model(outs["random"])
    assert m_meta["args"] == r_meta["args"] and m_meta["args"]["const"]
    assert m_meta["variant"] == "memsr" and m_meta["ranks"] == [8] * 6
    log = pd.read_csv(root / "memsr" / "log.tsv", sep="\t")
    assert list(log.c) == pytest.approx([76.5, 76.5, 76.5 * 1e-5**0.5, 76.5 * 1e-5**0.5])
    assert "distill" not in pd.read_csv(root / "random" / "log.tsv", sep="\t")
    with pytest.raises(ValueError, match="not a memsr student at initialisation"):
        train_student(
            teacher=plain_path,
            start=outs["random"],
            data=data,
            scale=2,
            init="memsr",
            recipe=RECIPE,
            out=root / "bad" / "m.safetensors",
            log=root / "bad" / "log.tsv",
            stages=root / "bad" / "stages",
        )


def test_plan_declares_the_models_and_refuses_a_bad_teacher():
    from litesr.methods.plan import Paths

    config = {"models": {"t": {"arch": "edsr", "args": {"n_resblocks": 3}}}, "seed": 0}
    section = {"teacher": "t", "train": {"steps": 2}}
    plan = METHOD.plan(section, config, Paths([4], "tr", ["te"]))
    assert {m.name for m in plan.made} == {
        "memsr-plain-teacher",
        "memsr-authors-memsr-init",
        "memsr-authors-random-init",
        "memsr-authors-memsr",
        "memsr-authors-random",
    }
    made = {m.name: m for m in plan.made}
    assert made["memsr-authors-memsr"].inputs["start"] == "memsr-authors-memsr-init"
    assert made["memsr-authors-memsr"].params["rank"] is None  # the teacher's width
    assert plan.trained[0].args == {"n_resblocks": 3, "n_feats": 64} and not plan.figures
    assert plan.roles["memsr-init"] == ["memsr-authors-memsr-init"]
    both = {**section, "students": ["authors", "width"], "width": 8, "seeds": [0, 3]}
    plan = METHOD.plan(both, config, Paths([4], "tr", ["te"]))
    assert plan.roles["width-random"] == ["memsr-w8-random", "memsr-w8-random-s3"]
    assert plan.roles["residual"] == ["memsr-authors-residual", "memsr-authors-residual-s3"]
    assert {t.meta["variant"] for t in plan.trained} == {"residual", "width-residual"}
    with pytest.raises(ValueError, match="memsr.teacher"):
        METHOD.plan({**section, "teacher": "nope"}, config, Paths([4], "tr", ["te"]))
    with pytest.raises(ValueError, match="needs a width"):
        METHOD.plan({**section, "students": ["width"]}, config, Paths([4], "tr", ["te"]))


def test_table_groups_by_metadata_not_by_name():
    variants = ["", "plain-teacher", "memsr-init", "random-init", "memsr", "memsr", "random"]
    variants += ["residual", "width-memsr"]
    models = list("abcdefghi")  # names say nothing
    summary = pd.DataFrame(
        {
            "model": models,
            "set": "Set5",
            "scale": 4,
            "psnr_y": [30.0, 30.0, 25.0, 10.0, 29.0, 29.2, 28.5, 29.3, 27.0],
            "ssim_y": 0.9,
        }
    )
    cost = pd.DataFrame(
        {
            "model": models,
            "scale": 4,
            "params": [1e6, 3e6] + [4e4] * 7,
            "cpu_inference_MiB": [50.0, 90] + [5.0] * 5 + [12, 4],
            "cpu_latency_ms": 10.0,
        }
    )
    catalog = pd.DataFrame(
        {
            "model": models,
            "scale": 4,
            "arch": "x",
            "method": [""] + ["memsr"] * 8,
            "variant": variants,
            "size": [None] + [8] * 8,
        }
    )
    table = memsr_table(summary, cost, catalog, teacher="a", plain_teacher="b")
    assert table.index[0].startswith("a: EDSR") and table.index[1].startswith("b: plain teacher")
    student = "authors' student w8"
    assert table.loc[f"{student} gain at initialisation: MemSR − random", "Set5 ×4"] == "+15.00 dB"
    assert table.loc[f"{student} gain trained: MemSR − random", "Set5 ×4"] == "+0.60 dB"
    assert table.loc[f"{student} plain, MemSR init + distillation", "Set5 ×4"] == (
        "29.10 / 0.9000 (0.20)"
    )
    assert table.loc[f"{student} residual (EDSR-style)", "CPU_MiB"] == "12.0"
    assert "w8 plain, MemSR init + distillation" in table.index


def test_memory_figure_draws_both_scales_the_floor_and_the_authors_protocol(tmp_path):
    rows = [
        {"network": n, "role": r, "scale": s, "protocol": "sweep", "out_mpix": mp,
         "peak_MiB": mp * k, "floor_MiB": mp * 2}
        for n, r, k in (("teacher", "teacher", 40), ("plain student w8", "plain", 2.2))
        for s in (2, 4)
        for mp in (0.1, 0.9, 8.3)
    ] + [
        {"network": n, "role": r, "scale": 2, "protocol": "authors", "out_mpix": 2.07,
         "peak_MiB": k, "floor_MiB": 600}
        for n, r, k in (("teacher 16x64", "teacher", 2400), ("plain 34x64", "plain", 650))
    ] + [{"network": "too big", "role": "plain", "scale": 4, "protocol": "sweep",
          "out_mpix": 33.0, "peak_MiB": float("nan"), "floor_MiB": float("nan")}]  # fmt: skip
    tsv = tmp_path / "m.tsv"
    pd.DataFrame(rows).to_csv(tsv, sep="\t", index=False)
    figures = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(report, "save", lambda fig, out: figures.append(fig) or save(fig, out))
        assert memory_figure(str(tsv), str(tmp_path / "f.png")).stat().st_size > 1000
    axes = figures[0].axes
    assert [ax.get_title() for ax in axes] == ["×2", "×4"]
    for ax in axes:
        labels = [line.get_label() for line in ax.get_lines()]
        floor = next(line for line in ax.get_lines() if line.get_label().startswith("floor:"))
        assert floor.get_linestyle() == "--"
        assert list(floor.get_ydata()) == pytest.approx([0.2, 1.8, 16.6])
        texts = [t.get_text() for t in ax.texts]
        assert "1.10×" in texts and "20.00×" in texts  # each line's end: peak / floor
        protocol = [label for label in labels if "authors' protocol" in label]
        assert len(protocol) == (3 if ax.get_title() == "×2" else 0)  # two stars, their floor
    assert "4.00×" in [t.get_text() for t in axes[0].texts]  # the protocol's teacher
    # an old table (no protocol, no role) still draws; no floor column: refused
    old = pd.DataFrame(rows).drop(columns=["protocol", "role"])
    old.to_csv(tsv, sep="\t", index=False)
    assert memory_figure(str(tsv), str(tmp_path / "g.png")).stat().st_size > 1000
    old.drop(columns="floor_MiB").to_csv(tsv, sep="\t", index=False)
    with pytest.raises(ValueError, match="floor_MiB"):
        memory_figure(str(tsv), str(tmp_path / "h.png"))
