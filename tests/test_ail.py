"""AIL: importance weights against hand-computed values, the round schedule, the rounds loop."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from litesr.data.images import write_png
from litesr.data.sources import prepare_set
from litesr.methods.ail import (
    AILObjective,
    Importance,
    round_files,
    round_importance,
    teacher_importance,
    train_ail,
    weighted_loss,
)
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

    def forward_y(self, y):
        return y + self.shift


def test_objective_weights_per_variant():
    y_bic, y = torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4)
    teacher, snapshot = Constant(0.03), Constant(0.1)
    w_ail0 = AILObjective("ail", 0, IMP, teacher, None).weights(y_bic, y)
    assert torch.allclose(w_ail0, torch.full_like(y, sig(-2.0) / sig(1.0)))
    w_ail2 = AILObjective("ail", 2, IMP, teacher, snapshot).weights(y_bic, y)
    assert torch.allclose(w_ail2, w_ail0 + 0.30 * math.exp(-1.0))
    assert torch.equal(
        AILObjective("plain", 3, IMP, None, snapshot).weights(y_bic, y), torch.ones_like(y)
    )
    w_u = AILObjective("noteacher", 0, IMP, None, None).weights(y_bic, y)
    assert torch.equal(w_u, torch.full_like(y, 0.5))
    with pytest.raises(ValueError, match="teacher"):
        AILObjective("ail", 0, IMP, None, None)


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
    teacher = train_model(
        "vdsr",
        {"width": 8, "depth": 4},
        recipe,
        data,
        2,
        root / "t.safetensors",
        root / "t.tsv",
        progress=False,
    )
    student = train_model(
        "vdsr",
        {"width": 4, "depth": 4},
        recipe,
        data,
        2,
        root / "s.safetensors",
        root / "s.tsv",
        progress=False,
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
    return train_ail(
        variant,
        student,
        teacher,
        data,
        2,
        3,
        ROUND,
        IMP,
        out,
        out.with_name("log.tsv"),
        device=device,
        progress=False,
    )


def test_rounds_are_saved_logged_and_resumable(setup, tmp_path):
    out = run_ail(setup, tmp_path / "a" / "model.safetensors")
    files = round_files(out, 3)
    assert all(f.exists() for f in files)
    log = pd.read_csv(out.with_name("log.tsv"), sep="\t")
    assert log["round"].tolist() == [0] * 3 + [1] * 3 + [2] * 3
    assert log.global_step.tolist() == list(range(1, 10)) and (log.mean_w <= 1).all()
    assert load_model(out)[1]["variant"] == "ail"
    # Kill after round 0: drop the later rounds and the final model, then run again.
    again = tmp_path / "b" / "model.safetensors"
    run_ail(setup, again)
    for f in round_files(again, 3)[1:]:
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
        "edsr",
        {"n_resblocks": 1, "n_feats": 4},
        {"steps": 1, "lr_patch": 8, "batch_size": 1},
        data,
        2,
        root / "e.safetensors",
        root / "e.tsv",
        progress=False,
    )
    with pytest.raises(ValueError, match="VDSR"):
        train_ail(
            "ail",
            edsr,
            teacher,
            data,
            2,
            1,
            ROUND,
            IMP,
            tmp_path / "m.safetensors",
            tmp_path / "l.tsv",
            progress=False,
        )
