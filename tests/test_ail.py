"""AIL: importance weights against hand-computed values, the round schedule, the rounds loop,
the fixed patch set with cached teacher outputs, the plan's ``start`` and the table's gains."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from litesr.data.images import write_png
from litesr.data.sources import prepare_set
from litesr.methods.ail import AILTask, Importance, round_files, train_rounds
from litesr.methods.ail import patches as ail_patches
from litesr.methods.ail import plan as ail_plan
from litesr.methods.ail.importance import (
    round_importance,
    student_input,
    teacher_importance,
    weighted_loss,
)
from litesr.methods.ail.patches import round_sampler
from litesr.methods.plan import Paths
from litesr.models.store import load_model
from litesr.train.run import train_model
from litesr.train.spec import TrainSpec

IMP = Importance()


def sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


@pytest.mark.parametrize("e_t", [0.0, 0.005, 0.01, 0.03, 0.2])
def test_teacher_importance_by_hand(e_t):
    expected = sig(-100 * (e_t - 0.01)) / sig(100 * 0.01)
    got = teacher_importance(torch.tensor([e_t], dtype=torch.float64), IMP).item()
    assert got == pytest.approx(expected, rel=1e-12)


def test_teacher_importance_known_points():
    w = teacher_importance(torch.tensor([0.0, 0.01, 0.03]), IMP)
    assert w.tolist() == pytest.approx([1.0, 0.5 / sig(1.0), sig(-2.0) / sig(1.0)], rel=1e-6)
    assert w[0] == pytest.approx(1.0) and w[1] == pytest.approx(0.68394, abs=1e-5)


def test_lambda_schedule():
    assert [IMP.round_lambda(r) for r in range(5)] == pytest.approx([0, 0.15, 0.30, 0.45, 0.60])
    assert Importance(lam=0.1, rho=0.2).round_lambda(3) == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("w0", "e_p", "r", "expected"),
    [
        (0.5, 0.1, 1, 0.5 + 0.15 * math.exp(-1.0)),
        (0.5, 0.1, 3, 0.5 + 0.45 * math.exp(-1.0)),
        (0.2, 0.0, 2, 0.5),
        (0.9, 0.0, 2, 1.0),  # clamped
        (0.0, 1.0, 1, 0.15 * math.exp(-10.0)),
    ],
)
def test_round_importance_by_hand(w0, e_p, r, expected):
    got = round_importance(
        torch.tensor([w0], dtype=torch.float64), torch.tensor([e_p], dtype=torch.float64), r, IMP
    )
    assert got.item() == pytest.approx(expected, rel=1e-12)


def test_weights_stay_in_unit_interval():
    g = torch.Generator().manual_seed(0)
    e_t, e_p = torch.rand(10_000, generator=g), torch.rand(10_000, generator=g) * 0.1
    w0 = teacher_importance(e_t, IMP)
    for r in range(10):
        w = round_importance(w0, e_p, r, IMP)
        assert 0 <= float(w.min()) and float(w.max()) <= 1
    assert float(round_importance(w0, e_p, 9, IMP).mean()) > float(w0.mean())  # easy → hard


def test_round_zero_uses_the_teacher_term_alone():
    w0 = torch.tensor([0.3, 0.7])
    assert torch.equal(round_importance(w0, None, 0, IMP), w0)
    assert torch.equal(round_importance(w0, torch.zeros(2), 0, IMP), w0)
    with pytest.raises(ValueError, match="round 1"):
        round_importance(w0, None, 1, IMP)


def test_weighted_loss_squares_the_weights_and_sums():
    pred, target = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0.0, 0.0, 1.0])
    w = torch.tensor([1.0, 0.5, 0.0])
    assert weighted_loss(pred, target, w).item() == pytest.approx(1 * 1 + 0.25 * 4 + 0)


class Constant(torch.nn.Module):
    """A fake VDSR whose Y prediction is the input plus a constant."""

    def __init__(self, shift: float) -> None:
        super().__init__()
        self.shift, self.scale = shift, 2
        self.bias = torch.nn.Parameter(torch.zeros(()))

    def forward_y(self, y):
        return y + self.shift + self.bias


def test_task_weights_per_variant():
    y_bic, y = torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4)
    student, teacher, snapshot = Constant(0.0), Constant(0.03), Constant(0.1)
    w_ail0 = AILTask(student, "ail", 0, IMP, teacher, None).weights(y_bic, y)
    assert torch.allclose(w_ail0, torch.full_like(y, sig(-2.0) / sig(1.0)))
    w_ail2 = AILTask(student, "ail", 2, IMP, teacher, snapshot).weights(y_bic, y)
    assert torch.allclose(w_ail2, w_ail0 + 0.30 * math.exp(-1.0))
    assert torch.equal(
        AILTask(student, "plain", 3, IMP, None, snapshot).weights(y_bic, y), torch.ones_like(y)
    )
    w_u = AILTask(student, "noteacher", 0, IMP, None, None).weights(y_bic, y)
    assert torch.equal(w_u, torch.full_like(y, 0.5))
    with pytest.raises(ValueError, match="teacher"):
        AILTask(student, "ail", 0, IMP, None, None)
    with pytest.raises(ValueError, match="snapshot"):
        AILTask(student, "noteacher", 1, IMP, None, None)


def test_task_trains_the_student_alone():
    student, teacher, snapshot = Constant(0.0), Constant(0.03), Constant(0.1)
    task = AILTask(student, "ail", 1, IMP, teacher, snapshot)
    assert set(task.trainable_state()) == {"student.bias"}
    assert [p for p in task.parameters() if p.requires_grad] == [student.bias]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny ×2 training set, a tiny VDSR teacher and a plainly pre-trained student."""
    root = tmp_path_factory.mktemp("ail")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(2):
        img = np.kron(
            rng.integers(0, 256, (10, 10, 3), dtype=np.uint8), np.ones((4, 4, 1), np.uint8)
        )
        write_png(root / "src" / f"{i}.png", img)
        paths.append(root / "src" / f"{i}.png")
    data = prepare_set(paths, 2, root / "x2", progress=False)
    recipe = {"steps": 4, "batch_size": 2, "lr_patch": 8, "channel": "y", "loss": "l2"}
    teacher, student = (
        train_model(
            arch="vdsr",
            args={"width": width, "depth": 4},
            recipe=recipe,
            data=data,
            scale=2,
            out=root / f"{name}.safetensors",
            log=root / f"{name}.tsv",
            progress=False,
        )
        for name, width in (("t", 8), ("s", 4))
    )
    return data, teacher, student, root


ROUND = {
    "steps": 3,
    "batch_size": 2,
    "lr_patch": 8,
    "optimizer": "sgd",
    "lr": 0.01,
    "grad_clip": 0.4,
}


def run_ail(setup, out, variant="ail", device="cpu"):
    data, teacher, student, _ = setup
    return train_rounds(
        variant=variant,
        init=student,
        teacher=teacher,
        data=data,
        scale=2,
        rounds=3,
        recipe=ROUND,
        importance={},
        out=out,
        log=out.with_name("log.tsv"),
        stages=out.parent / "stages",
        device=device,
        progress=False,
    )


def test_rounds_are_saved_logged_and_resumable(setup, tmp_path):
    out = run_ail(setup, tmp_path / "a" / "model.safetensors")
    files = round_files(out.parent / "stages", 3)
    assert all(f.exists() for f in files)
    log = pd.read_csv(out.with_name("log.tsv"), sep="\t")
    assert log["round"].tolist() == [0] * 3 + [1] * 3 + [2] * 3
    assert log.global_step.tolist() == list(range(1, 10)) and (log.mean_w <= 1).all()
    assert load_model(out)[1]["variant"] == "ail"
    # Kill after round 0: drop the later rounds and the final model, then run again.
    again = tmp_path / "b" / "model.safetensors"
    run_ail(setup, again)
    for f in round_files(again.parent / "stages", 3)[1:]:
        f.unlink()
    again.unlink()
    run_ail(setup, again)
    a, b = load_model(out)[0].state_dict(), load_model(again)[0].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_plain_variant_differs_from_ail_at_equal_budget(setup, tmp_path):
    ail = run_ail(setup, tmp_path / "ail" / "model.safetensors")
    plain = run_ail(setup, tmp_path / "plain" / "model.safetensors", variant="plain")
    la, lp = (pd.read_csv(p.with_name("log.tsv"), sep="\t") for p in (ail, plain))
    assert len(la) == len(lp) and (lp.mean_w == 1).all() and (la.mean_w < 1).any()


def test_device_auto_is_accepted(setup, tmp_path):
    out = run_ail(setup, tmp_path / "auto" / "model.safetensors", device="auto")
    assert load_model(out)[1]["variant"] == "ail"


def test_ail_refuses_a_non_vdsr_start(setup, tmp_path):
    data, teacher, _, root = setup
    edsr = train_model(
        arch="edsr",
        args={"n_resblocks": 1, "n_feats": 4},
        recipe={"steps": 1, "lr_patch": 8, "batch_size": 1},
        data=data,
        scale=2,
        out=root / "e.safetensors",
        log=root / "e.tsv",
        progress=False,
    )
    with pytest.raises(ValueError, match="VDSR"):
        train_rounds(
            variant="ail",
            init=edsr,
            teacher=teacher,
            data=data,
            scale=2,
            rounds=1,
            recipe=ROUND,
            importance={},
            out=tmp_path / "m.safetensors",
            log=tmp_path / "l.tsv",
            stages=tmp_path / "stages",
            progress=False,
        )


def test_ail_table_groups_by_metadata_not_by_name():
    from litesr.methods.ail.report import ail_table

    models = ["vdsr_t", "s_plain", "s_ail", "s_noteacher"]  # names say nothing
    summary = pd.DataFrame(
        {
            "model": [*models, "bicubic"],
            "set": "Set5",
            "scale": 4,
            "psnr_y": [31.0, 30.0, 30.3, 30.1, 28.4],
            "ssim_y": [0.88, 0.86, 0.87, 0.865, 0.81],
            "psnr_rgb": 0.0,
        }
    )
    cost = pd.DataFrame(
        {
            "model": models,
            "scale": 4,
            "params": [664704, 27612, 27612, 27612],
            "macs_720p_G": [612.6, 25.4, 25.4, 25.4],
        }
    )
    catalog = pd.DataFrame(
        {
            "model": models,
            "scale": 4,
            "arch": "vdsr",
            "method": ["", "ail", "ail", "ail"],
            "variant": ["", "plain", "ail", "noteacher"],
            "size": [None, 8, 8, 8],
        }
    )
    table = ail_table(summary, cost, catalog, "vdsr_t")
    assert "bicubic" not in " ".join(table.index)
    assert table.loc["w8 gain ail−plain", "Set5 ×4"] == "+0.30 dB"
    assert table.loc["w8 ail", "Set5 ×4"] == "30.30 / 0.8700"
    assert table.loc["vdsr_t (VDSR teacher)", "params"] == "664,704"


PATCHES = {"count": 6, "seed": 1}


def fixed_sampler(setup, variant, stages):
    data, teacher, _, _ = setup
    spec = TrainSpec.from_dict(ROUND)
    return round_sampler(
        variant=variant,
        data=data,
        scale=2,
        spec=spec,
        patches=PATCHES,
        teacher=teacher,
        stages=stages,
    )


def test_fixed_patches_are_the_same_for_every_variant(setup, tmp_path):
    plain = fixed_sampler(setup, "plain", tmp_path / "plain")
    ail = fixed_sampler(setup, "ail", tmp_path / "ail")
    assert len(plain) == len(ail) == 6 and torch.equal(plain.lr, ail.lr)
    assert torch.equal(plain.hr, ail.hr) and plain.hr.shape == (6, 3, 16, 16)
    a = plain.sample(4, torch.Generator().manual_seed(3))
    b = ail.sample(4, torch.Generator().manual_seed(3))
    assert len(a) == 2 and len(b) == 3
    assert all(torch.equal(x, y) for x, y in zip(a, b[:2], strict=True))
    other = round_sampler(
        variant="plain",
        data=setup[0],
        scale=2,
        spec=TrainSpec.from_dict(ROUND),
        patches={"count": 6, "seed": 2},
        teacher=None,
        stages=tmp_path,
    )
    assert not torch.equal(other.lr, plain.lr) and other.key != plain.key


def test_cached_teacher_outputs_equal_running_the_teacher(setup, tmp_path, monkeypatch):
    _, teacher_file, _, _ = setup
    sampler = fixed_sampler(setup, "ail", tmp_path)
    lr, _, teacher_y = sampler.sample(5, torch.Generator().manual_seed(0))
    teacher = load_model(teacher_file)[0]
    with torch.no_grad():
        expected = teacher.forward_y(student_input(lr, 2))
    torch.testing.assert_close(teacher_y, expected, rtol=1e-5, atol=1e-6)
    # A second run reads the cache instead of running the teacher again.
    monkeypatch.setattr(ail_patches, "teacher_outputs", None)
    again = fixed_sampler(setup, "ail", tmp_path)
    assert torch.equal(again.extras[0], sampler.extras[0])
    assert (tmp_path / ail_patches.TEACHER_CACHE).is_file()


def test_ail_task_with_cached_teacher_matches_the_live_teacher(setup):
    _, teacher_file, student_file, _ = setup
    teacher, student = load_model(teacher_file)[0], load_model(student_file)[0]
    g = torch.Generator().manual_seed(0)
    lr, hr = torch.rand(2, 3, 8, 8, generator=g), torch.rand(2, 3, 16, 16, generator=g)
    with torch.no_grad():
        teacher_y = teacher.forward_y(student_input(lr, 2))
        live = AILTask(student, "ail", 1, IMP, teacher, student).loss(lr, hr)
        cached = AILTask(student, "ail", 1, IMP, None, student, cached_teacher=True)
        torch.testing.assert_close(cached.loss(lr, hr, teacher_y)[0], live[0])
    assert "teacher" not in dict(cached.named_children())
    with pytest.raises(ValueError, match="cached output"):
        cached.loss(lr, hr)


def fixed_rounds(setup, variant, out, recipe=ROUND):
    """Two rounds of ``variant`` on the fixed patch set PATCHES."""
    data, teacher, student, _ = setup
    return train_rounds(
        variant=variant,
        init=student,
        teacher=teacher,
        data=data,
        scale=2,
        rounds=2,
        recipe=recipe,
        importance={},
        patches=PATCHES,
        out=out,
        log=out.with_name("log.tsv"),
        stages=out.parent / "stages",
        progress=False,
    )


def test_rounds_on_a_fixed_patch_set(setup, tmp_path):
    outs = {}
    for variant in ("plain", "ail"):
        outs[variant] = fixed_rounds(setup, variant, tmp_path / variant / "model.safetensors")
    assert (tmp_path / "ail" / "stages" / ail_patches.TEACHER_CACHE).is_file()
    assert not (tmp_path / "plain" / "stages" / ail_patches.TEACHER_CACHE).exists()
    assert load_model(outs["ail"])[1]["patches"] == PATCHES
    log = pd.read_csv(outs["ail"].with_name("log.tsv"), sep="\t")
    assert len(log) == 6 and (log.mean_w < 1).all()


def paper_config(**ail) -> dict:
    section = {
        "teacher": "authors-ail_vdsr64_teacher",
        "start": "authors-ail_vdsr13_plain",
        "widths": [13],
        "variants": ["plain", "ail"],
        "rounds": 10,
        "round": ROUND,
        "patches": PATCHES,
        "maps": {"set": "Set5", "image": "baby"},
        **ail,
    }
    releases = ["ail_vdsr64_teacher", "ail_vdsr13_plain", "ail_vdsr13_ail"]
    return {
        "scales": [2, 4],
        "models": {},
        "methods": {"authors": {"reference": "ref", "releases": releases}, "ail": section},
    }


PATHS = Paths(scales=[2, 4], train_set="SunHays80", test_sets=["Set5"])


def test_plan_starts_from_an_existing_model():
    config = paper_config()
    plan = ail_plan(config["methods"]["ail"], config, PATHS)
    assert plan.trained == []
    assert {m.name for m in plan.made} == {"ail-w13-plain", "ail-w13-ail"}
    for model in plan.made:
        assert model.inputs["init"] == "authors-ail_vdsr13_plain"
        assert model.params["patches"] == PATCHES
    ail = next(m for m in plan.made if m.params["variant"] == "ail")
    assert ail.inputs["teacher"] == "authors-ail_vdsr64_teacher"
    assert plan.tables[0].params == {
        "teacher": "authors-ail_vdsr64_teacher",
        "start": "authors-ail_vdsr13_plain",
    }


def test_plan_trains_each_seed_on_its_own_patch_set_and_names_the_extra_seeds():
    config = paper_config(seeds=[0, 7])
    plan = ail_plan(config["methods"]["ail"], config, PATHS)
    made = {m.name: m for m in plan.made}
    assert set(made) == {"ail-w13-plain", "ail-w13-ail", "ail-w13-plain-s7", "ail-w13-ail-s7"}
    assert made["ail-w13-ail"].params["recipe"]["seed"] == 0
    assert made["ail-w13-ail"].params["patches"] == PATCHES  # the first seed: as without seeds
    assert made["ail-w13-ail-s7"].params["recipe"]["seed"] == 7
    assert made["ail-w13-ail-s7"].params["patches"] == {**PATCHES, "seed": PATCHES["seed"] + 1}
    assert plan.roles["plain"] == ["ail-w13-plain", "ail-w13-plain-s7"]
    assert plan.roles["pretrain"] == ["authors-ail_vdsr13_plain"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"widths": [16]}, r"ail.widths: \[16\] must be \[13\], the width of ail.start"),
        ({"start": "nothing"}, "ail.start: 'nothing' must name a vdsr model"),
        ({"teacher": "authors-dipnet"}, "ail.teacher: 'authors-dipnet' must name a vdsr"),
        ({"pretrain": ROUND}, "ail.pretrain: leave it out"),
        ({"start": None}, "ail.pretrain: required unless ail.start"),
    ],
)
def test_plan_start_errors_name_the_key(change, message):
    config = paper_config(**change)
    section = {k: v for k, v in config["methods"]["ail"].items() if v is not None}
    with pytest.raises(ValueError, match=message):
        ail_plan(section, config, PATHS)


def test_ail_table_shows_both_gains_and_the_authors_gain():
    from litesr.methods.ail.report import ail_table

    teacher, start = "authors-ail_vdsr64_teacher", "authors-ail_vdsr13_plain"
    models = [teacher, start, "authors-ail_vdsr13_ail", "ours_plain", "ours_ail"]
    summary = pd.DataFrame(
        {
            "model": models * 2,
            "set": "Set5",
            "scale": [2] * 5 + [4] * 5,
            "psnr_y": [37.5, 36.8, 37.3, 36.9, 37.0, 31.4, 30.7, 31.0, 30.8, 30.6],
            "ssim_y": 0.9,
        }
    )
    cost = pd.DataFrame({"model": models * 2, "scale": [2] * 5 + [4] * 5, "params": 1000})
    cost["macs_720p_G"] = 1.0
    catalog = cost[["model", "scale"]].assign(
        method=["authors"] * 3 + ["ail"] * 2 + ["authors"] * 3 + ["ail"] * 2,
        variant=["t", "p", "a", "plain", "ail"] * 2,
        size=[64, 13, 13, 13, 13] * 2,
    )
    table = ail_table(summary, cost, catalog, teacher, start)
    assert list(table.index) == [
        f"{teacher} (VDSR teacher)",
        f"w13 pretrained: {start}",
        "w13 plain",
        "w13 ail",
        "w13 gain ail−pretrained",
        "w13 gain ail−plain",
        "authors' ail: authors-ail_vdsr13_ail",
        "authors' gain ail−pretrained",
    ]
    assert table.loc["w13 gain ail−pretrained", ["Set5 ×2", "Set5 ×4"]].tolist() == [
        "+0.20 dB",
        "-0.10 dB",
    ]
    assert table.loc["w13 gain ail−plain", "Set5 ×2"] == "+0.10 dB"
    assert table.loc["authors' gain ail−pretrained", "Set5 ×4"] == "+0.30 dB"


def test_hr_patch_sets_the_lr_side_per_scale(setup, tmp_path):
    sampler = round_sampler(
        variant="plain",
        data=setup[0],
        scale=2,
        spec=TrainSpec.from_dict(ROUND),
        patches={"count": 3, "hr_patch": 12},
        teacher=None,
        stages=tmp_path,
    )
    assert sampler.lr.shape == (3, 3, 6, 6) and sampler.hr.shape == (3, 3, 12, 12)
    config = paper_config(patches={"count": 3, "hr_patch": 42})
    with pytest.raises(ValueError, match="ail.patches.hr_patch: 42 is not a multiple of scale 4"):
        ail_plan(config["methods"]["ail"], config, PATHS)


def test_importance_figure_shows_at_most_six_rounds():
    from litesr.methods.ail.report import shown_rounds

    assert shown_rounds(3) == [0, 1, 2]
    assert shown_rounds(10) == [0, 2, 4, 5, 7, 9]


def test_ail_table_averages_seeds_and_shows_their_spread():
    from litesr.methods.ail.report import ail_table

    models = ["start", "p0", "p1", "a0", "a1"]
    summary = pd.DataFrame(
        {
            "model": models,
            "set": "Set5",
            "scale": 4,
            "psnr_y": [30.0, 30.1, 30.3, 30.4, 30.5],
            "ssim_y": [0.80, 0.81, 0.83, 0.84, 0.84],
        }
    )
    cost = pd.DataFrame({"model": models, "scale": 4, "params": 1000, "macs_720p_G": 1.0})
    catalog = cost[["model", "scale"]].assign(
        method=["authors", "ail", "ail", "ail", "ail"],
        variant=["p", "plain", "plain", "ail", "ail"],
        size=13,
    )
    table = ail_table(summary, cost, catalog, "teacher", "start")
    assert table.loc["w13 plain, mean of 2 seeds", "Set5 ×4"] == "30.20 / 0.8200"
    assert table.loc["w13 plain, seed spread (max − min)", "Set5 ×4"] == "0.20 dB"
    assert table.loc["w13 ail, seed spread (max − min)", "Set5 ×4"] == "0.10 dB"
    assert table.loc["w13 gain ail−plain", "Set5 ×4"] == "+0.25 dB"
    assert table.loc["w13 gain ail−pretrained", "Set5 ×4"] == "+0.45 dB"


def test_ladder_trains_longer_rounds_of_the_same_students_on_the_same_patch_sets():
    ladder = [{"steps": 9, "seeds": [7]}, {"steps": 30}]
    recipe = {**ROUND, "milestones": [1, 2], "checkpoint_every": 1}
    config = paper_config(
        seeds=[0, 7], ladder=ladder, variants=["plain", "ail", "noteacher"], round=recipe
    )
    plan = ail_plan(config["methods"]["ail"], config, PATHS)
    made = {m.name: m for m in plan.made}
    rung = made["ail-w13-ail-r9-s7"]
    assert rung.params["recipe"] == {
        **made["ail-w13-ail-s7"].params["recipe"],
        "steps": 9,
        "milestones": [3, 6],
        "checkpoint_every": 3,
    }
    assert rung.params["patches"] == made["ail-w13-ail-s7"].params["patches"]
    assert {"ail-w13-plain-r30", "ail-w13-plain-r30-s7", "ail-w13-ail-r30"} <= set(made)
    assert not any("noteacher-r" in name for name in made)  # the ladder compares ail and plain
    ladder_models = {n for n in made if "-r" in n}
    for item in (plan.tables[0], next(f for f in plan.figures if f.name == "ail_width")):
        assert set(item.params["exclude"]) == ladder_models
    figure = next(f for f in plan.figures if f.name == "ail_ladder")
    assert [steps for steps, _ in figure.params["rungs"]] == [3, 9, 30]
    assert figure.params["rungs"][1][1] == {
        "plain": ["ail-w13-plain-r9-s7"],
        "ail": ["ail-w13-ail-r9-s7"],
    }
    assert plan.roles["ail"] == ["ail-w13-ail", "ail-w13-ail-s7"]  # claims: the base rung only


@pytest.mark.parametrize(
    ("ladder", "message"),
    [
        ([{"steps": 3}], "ail.ladder: 3 steps per round is already a rung"),
        ([{"steps": 9, "seeds": [5]}], r"ail.ladder: seeds \[5\] must be among ail.seeds"),
    ],
)
def test_ladder_errors_name_the_key(ladder, message):
    config = paper_config(ladder=ladder)
    with pytest.raises(ValueError, match=message):
        ail_plan(config["methods"]["ail"], config, PATHS)


def test_ladder_table_and_figure_show_both_gains_per_rung(tmp_path):
    from litesr.methods.ail.report import ladder_figure, ladder_table

    psnr = {
        "start": 30.0,
        "p": 29.8,
        "a": 29.9,
        "p9": 30.0,
        "a9": 30.3,
        "p9s": 30.1,
        "a9s": 30.2,
        "authors-ail_vdsr13_plain": 30.76,
        "authors-ail_vdsr13_ail": 31.01,
    }
    summary = pd.DataFrame(
        {"model": list(psnr), "set": "Set5", "scale": 4, "psnr_y": list(psnr.values())}
    )
    rungs = [
        [3, {"plain": ["p"], "ail": ["a"]}],
        [9, {"plain": ["p9", "p9s"], "ail": ["a9", "a9s"]}],
    ]
    table = ladder_table(summary, None, None, rungs, "start")
    assert table.loc["3 steps/round, 1 seed", "Set5 ×4: AIL − start"] == "-0.10"
    assert table.loc["3 steps/round, 1 seed", "Set5 ×4: AIL − plain (spread)"] == "+0.10"
    assert table.loc["9 steps/round, 2 seeds", "Set5 ×4: AIL − start"] == "+0.25"
    assert table.loc["9 steps/round, 2 seeds", "Set5 ×4: AIL − plain (spread)"] == "+0.20 (0.20)"
    assert table.loc["authors' AIL − start (50 epochs/round)", "Set5 ×4: AIL − start"] == "+0.25"
    path = tmp_path / "summary.tsv"
    summary.to_csv(path, sep="\t", index=False)
    assert ladder_figure(str(path), rungs, "start", str(tmp_path / "ladder.png")).stat().st_size


@pytest.mark.parametrize("variant", ["plain", "ail", "noteacher"])
def test_a_round_killed_mid_way_resumes_to_the_same_weights(setup, tmp_path, monkeypatch, variant):
    """A kill inside a round (after its checkpoint) resumes bit for bit, on the fixed patch
    set with the cached teacher outputs, for every variant."""
    recipe = {**ROUND, "steps": 6, "checkpoint_every": 2}

    def rounds(out):
        return fixed_rounds(setup, variant, out, recipe)

    reference = load_model(rounds(tmp_path / "ref" / "model.safetensors"))[0].state_dict()
    original, calls = AILTask.loss, {"n": 0}

    def killed_at_round_1_step_5(self, *args):
        calls["n"] += 1
        if calls["n"] == 6 + 5:
            raise KeyboardInterrupt("killed")
        return original(self, *args)

    out = tmp_path / "killed" / "model.safetensors"
    with monkeypatch.context() as patch:
        patch.setattr(AILTask, "loss", killed_at_round_1_step_5)
        with pytest.raises(KeyboardInterrupt):
            rounds(out)
    assert list(out.parent.glob("stages/*.ckpt")), "the kill left a mid-round checkpoint"
    resumed = load_model(rounds(out))[0].state_dict()
    assert all(torch.equal(reference[k], resumed[k]) for k in reference)
