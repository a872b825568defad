"""AIL: importance weights against hand-computed values, the round schedule, the rounds loop."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from litesr.data.images import write_png
from litesr.data.sources import prepare_set
from litesr.methods.ail import AILTask, Importance, round_files, train_rounds
from litesr.methods.ail.importance import round_importance, teacher_importance, weighted_loss
from litesr.models.store import load_model
from litesr.train.run import train_model

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
