"""DRC: dual network and task, prunable EDSR, channel search, dual-regression importance,
the compression steps end to end, the plan and the table."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from litesr.compress.importance_grad import DualRegressionImportance
from litesr.compress.prune import l1_norm, select_channels
from litesr.data.images import write_png
from litesr.data.sources import prepare_set
from litesr.methods.drc import METHOD, plan
from litesr.methods.drc.dual import DualNet, DualTask
from litesr.methods.drc.pipeline import (
    drc_compress,
    l1_compress,
    prunable_convs,
    prune_to,
    train_primal,
)
from litesr.methods.drc.report import drc_table
from litesr.methods.drc.search import (
    HalvesSampler,
    SearchTask,
    candidate_widths,
    round4,
    width_masks,
)
from litesr.methods.plan import Paths
from litesr.models import build
from litesr.models.store import load_model, read_meta, save_model
from litesr.train.loop import fit
from litesr.train.patches import Pair, PatchSampler
from litesr.train.spec import TrainSpec


def _edsr(blocks: int = 2, feats: int = 16, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build("edsr", scale=2, n_resblocks=blocks, n_feats=feats)


@pytest.mark.parametrize("scale", [2, 3, 4, 8])
def test_dual_network_maps_sr_back_to_lr_size(scale):
    dual = DualNet(scale)
    strides = [m.stride[0] for m in dual.modules() if isinstance(m, nn.Conv2d)]
    assert strides == ([3, 1] if scale == 3 else [2] * int(np.log2(scale)) + [1])
    assert dual(torch.rand(2, 3, 7 * scale, 5 * scale)).shape == (2, 3, 7, 5)


def test_dual_network_refuses_other_scales():
    with pytest.raises(ValueError, match="scale 3 or a power of two"):
        DualNet(5)


def test_dual_task_loss_by_hand_and_its_parts():
    student, dual = _edsr(), DualNet(2)
    task = DualTask(student, dual, 0.1)
    lr, hr = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 16, 16)
    loss, extras = task.loss(lr, hr)
    with torch.no_grad():
        sr = student(lr)
        expected = (sr - hr).abs().mean() + 0.1 * (dual(sr) - lr).abs().mean()
        dual_term = float((dual(sr) - lr).abs().mean())
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert extras["dual"] == pytest.approx(dual_term, rel=1e-5)
    assert any(k.startswith("dual.") for k in task.trainable_state())  # D is trained with P
    reference = _edsr(seed=1)
    distilled = DualTask(student, dual, 0.1, reference=reference, distill=2.0)
    assert not any(k.startswith("reference.") for k in distilled.trainable_state())
    assert not any(p.requires_grad for p in reference.parameters())
    total, parts = distilled.loss(lr, hr)
    assert parts["distill"] > 0
    assert total.item() == pytest.approx(
        parts["primal"] + 0.1 * parts["dual"] + 2.0 * parts["distill"], rel=1e-5
    )
    with pytest.raises(ValueError, match="dual network"):
        DualTask(student, None, 0.1)
    with pytest.raises(ValueError, match="reference"):
        DualTask(student, dual, 0.1, distill=1.0)


def test_edsr_block_widths_are_backward_compatible_and_reload(tmp_path):
    plain = _edsr()
    explicit = build("edsr", scale=2, n_resblocks=2, n_feats=16, block_widths=[16, 16])
    assert {k: v.shape for k, v in plain.state_dict().items()} == {
        k: v.shape for k, v in explicit.state_dict().items()
    }
    with pytest.raises(ValueError, match="block_widths"):
        build("edsr", scale=2, n_resblocks=2, n_feats=16, block_widths=[8])
    x = torch.rand(1, 3, 9, 11)
    model = prune_to(plain, {"body.0.body.0": 8, "body.1.body.0": 4}, x)
    assert model.litesr_arch[1]["block_widths"] == [8, 4]
    arch, args = model.litesr_arch
    save_model(model, tmp_path / "p.safetensors", arch=arch, args=args)
    again, meta = load_model(tmp_path / "p.safetensors")
    assert meta["args"]["block_widths"] == [8, 4]
    with torch.no_grad():
        torch.testing.assert_close(again(x), model.eval()(x))


@pytest.mark.parametrize(
    ("n", "ratio", "expected"),
    [(16, 0.3, [4, 8, 12]), (64, 0.3, [20, 24, 32, 36, 40, 44]), (64, 0.5, [16, 20, 24, 28, 32])],
)
def test_candidate_widths(n, ratio, expected):
    assert candidate_widths(n, ratio) == expected
    assert round4(6, 64) == 4 and round4(7, 64) == 8 and round4(1, 2) == 2


def test_width_masks_keep_the_largest_l1_filters():
    conv = nn.Conv2d(2, 5, 1)
    with torch.no_grad():
        norms = torch.tensor([3.0, 1.0, 5.0, 1.0, 4.0])
        conv.weight.copy_(norms.view(5, 1, 1, 1).expand(5, 2, 1, 1))
    masks = width_masks(conv, [1, 3])
    assert masks.tolist() == [[0, 0, 1, 0, 0], [1, 0, 1, 0, 1]]
    removed = select_channels(
        nn.Sequential(conv, nn.Conv2d(5, 3, 1)), ["0"], {"0": 3}, torch.rand(1, 2, 4, 4), l1_norm
    )
    assert removed == {"0": [1, 3]}


def _pairs(n: int, seed: int = 0) -> list[Pair]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        hr = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
        out.append(Pair(str(i), hr, hr[::2, ::2].copy()))
    return out


def test_search_alternates_weights_and_alphas():
    model = _edsr()
    cands = {n: candidate_widths(16, 0.3) for n in prunable_convs(model)}
    task = SearchTask(model, DualNet(2), cands, generator=torch.Generator().manual_seed(0))
    lr, hr = torch.rand(4, 3, 8, 8), torch.rand(4, 3, 16, 16)
    task.loss(lr, hr)[0].backward()  # phase 0: weights on the first half, α detached
    assert all(a.grad is None for a in task.alphas) and model.head.weight.grad is not None
    task.zero_grad(set_to_none=True)
    task.after_step(1)
    task.loss(lr, hr)[0].backward()  # phase 1: α on the second half, weights detached
    assert all(a.grad is not None and a.grad.abs().sum() > 0 for a in task.alphas)
    assert all(p.grad is None for p in [*model.parameters(), *task.dual.parameters()])


def test_search_widths_are_candidates_and_argmax_masks_equal_pruning(tmp_path):
    model = _edsr()
    cands = {n: candidate_widths(16, 0.3) for n in prunable_convs(model)}
    task = SearchTask(model, DualNet(2), cands, generator=torch.Generator().manual_seed(0))
    spec = TrainSpec(steps=6, batch_size=2, lr_patch=8, lr=0.05)
    sampler = HalvesSampler(PatchSampler(_pairs(4), 2, 8))
    fit(task, sampler, spec, checkpoint=tmp_path / "c", log_tsv=tmp_path / "l.tsv", progress=False)
    log = pd.read_csv(tmp_path / "l.tsv", sep="\t")
    assert log.arch_step.tolist() == [0, 1] * 3
    widths = task.widths()
    assert all(widths[n] in cands[n] for n in cands)
    with torch.no_grad():  # make the argmax differ between layers, then compare
        task.alphas[0].copy_(torch.tensor([0.0, 1.0, 0.0]))
        task.alphas[1].copy_(torch.tensor([1.0, 0.0, 0.0]))
    widths = task.widths()
    assert widths == {"body.0.body.0": 8, "body.1.body.0": 4}
    x = torch.rand(1, 3, 9, 11)
    task.hard = True
    with torch.no_grad():
        masked = model(x)
    task.remove_hooks()
    with torch.no_grad():
        full = model(x)
        pruned = prune_to(copy.deepcopy(model), widths, x, l1_norm)(x)
    torch.testing.assert_close(pruned, masked, atol=1e-6, rtol=0)
    assert (full - masked).abs().max() > 1e-4


def test_dual_regression_importance_greedy_and_pluggable():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1))
    with torch.no_grad():
        model[0].weight[2] = 0.0  # channel 2 is always 0: no gradient, picked last
        model[0].bias[2] = -1.0
        model[0].weight[5] *= 10  # channel 5 dominates the output: picked first
    reference = copy.deepcopy(model).requires_grad_(False)
    lr = torch.rand(4, 3, 8, 8)
    with torch.no_grad():
        hr = reference(lr)
    before = copy.deepcopy(model.state_dict())
    imp = DualRegressionImportance(model, lr, hr, lr[:1], lam=0.0, reference=reference, pick=1)
    scores = imp(model[0])
    assert sorted(scores.tolist()) == list(range(1, 9))
    assert scores[2] == 1 and scores[5] == 8
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    removed = select_channels(model, ["0"], {"0": 6}, lr[:1], imp)
    assert 2 in removed["0"] and 5 not in removed["0"]
    with pytest.raises(ValueError, match="dual network"):
        DualRegressionImportance(model, lr, hr, lr[:1], reference=reference)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("drc")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(4):
        tile = rng.integers(0, 256, (10, 10, 3), dtype=np.uint8)
        img = np.kron(tile, np.ones((4, 4, 1), np.uint8))
        write_png(root / "src" / f"{i}.png", img)
        paths.append(root / "src" / f"{i}.png")
    return prepare_set(paths, 2, root / "x2", progress=False), root


TINY = {"steps": 2, "batch_size": 2, "lr_patch": 8}
COMMON = {"dual": {"n_feats": 8}, "lam": 0.1, "distill": 1.0}


def test_steps_end_to_end(data, tmp_path):
    data_dir, _ = data
    primal = train_primal(
        data=data_dir,
        scale=2,
        arch="edsr",
        args={"n_resblocks": 2, "n_feats": 16},
        recipe=TINY,
        dual={"n_feats": 8},
        lam=0.1,
        out=tmp_path / "p.safetensors",
        log=tmp_path / "p.tsv",
        stages=tmp_path / "ps",
        progress=False,
    )
    assert read_meta(primal)["variant"] == "dual"
    assert {"primal", "dual"} <= set(pd.read_csv(tmp_path / "p.tsv", sep="\t").columns)

    def run_drc(where):
        return drc_compress(
            primal=primal,
            data=data_dir,
            scale=2,
            ratio=0.5,
            search={**TINY, "steps": 4},
            layer={**TINY, "steps": 1},
            finetune=TINY,
            importance={"batch": 2, "pick": 4},
            seed=0,
            out=where / "m.safetensors",
            log=where / "m.tsv",
            stages=where / "s",
            progress=False,
            **COMMON,
        )

    out = run_drc(tmp_path / "a")
    model, meta = load_model(out)
    assert meta["variant"] == "drc" and meta["size"] == 0.5
    cands = candidate_widths(16, 0.5)
    assert all(w in cands for w in meta["widths"])
    assert meta["widths"] == [model.body[i].body[0].out_channels for i in range(2)]
    assert meta["search"]["widths"] == dict(zip(prunable_convs(model), meta["widths"], strict=True))
    assert set(pd.read_csv(tmp_path / "a" / "m.tsv", sep="\t").stage) == {
        "search",
        "prune0",
        "prune1",
        "finetune",
    }
    # a run killed after the first pruning stage ends bit-identical
    stages = tmp_path / "a" / "s"
    for name in ("prune1", "finetune"):
        (stages / f"{name}.safetensors").unlink()
    again = load_model(run_drc(tmp_path / "a"))[0].state_dict()
    assert all(torch.equal(again[k], v) for k, v in model.state_dict().items())

    l1 = l1_compress(
        primal=primal,
        data=data_dir,
        scale=2,
        ratio=0.5,
        steps=3,
        finetune=TINY,
        seed=1,
        out=tmp_path / "l1.safetensors",
        log=tmp_path / "l1.tsv",
        stages=tmp_path / "ls",
        progress=False,
        **COMMON,
    )
    l1_meta = read_meta(l1)
    assert l1_meta["widths"] == [max(cands)] * 2 and l1_meta["variant"] == "l1"
    assert len(pd.read_csv(tmp_path / "l1.tsv", sep="\t").query("stage == 'finetune'")) == 3


SECTION = {
    "primal": "base",
    "ratios": [0.3, 0.5],
    "search": TINY,
    "layer": TINY,
    "finetune": TINY,
}


def test_plan_names_models_and_budgets():
    paths = Paths(scales=[4], train_set="t", test_sets=["a"])
    base = {"arch": "edsr", "args": {"n_resblocks": 2, "n_feats": 16}, "train": TINY}
    p = plan(SECTION, {"seed": 3, "models": {"base": base}}, paths)
    names = [m.name for m in p.made]
    assert names[0] == "drc-primal" and "drc-r30" in names and "drc-l1-r50-s2" in names
    assert not p.trained and p.made[0].params["recipe"] == {"seed": 3, **TINY}
    l1 = next(m for m in p.made if m.name == "drc-l1-r30-s0")
    assert l1.params["steps"] == 2 * 2 + 2  # per-block steps + final steps, as DRC's
    assert next(m for m in p.made if m.name == "drc-r30").params["seed"] == 3
    pruned = {**base, "args": {"n_resblocks": 2, "block_widths": [4, 4]}}
    with pytest.raises(ValueError, match="block_widths"):
        plan(SECTION, {"models": {"base": pruned}}, paths)
    with pytest.raises(ValueError, match="drc.primal.*edsr"):
        plan(SECTION, {"models": {"base": {**base, "arch": "rlfn"}}}, paths)
    assert set(METHOD.steps) == {"primal", "drc", "l1"}


def test_table_rows_and_verdict():
    models = {
        "n": ("", None, 30.0),
        "d": ("dual", 0.0, 30.2),
        "r": ("drc", 0.5, 29.5),
        "l0": ("l1", 0.5, 29.0),
        "l1": ("l1", 0.5, 29.1),
        "l2": ("l1", 0.5, 29.2),
    }
    summary = pd.DataFrame(
        [
            {"model": m, "scale": 4, "set": "S", "psnr_y": v[2], "ssim_y": 0.8}
            for m, v in models.items()
        ]
    )
    catalog = pd.DataFrame(
        [
            {"model": m, "scale": 4, "arch": "edsr", "method": "drc", "variant": v[0], "size": v[1]}
            for m, v in models.items()
        ]
    )
    cost = pd.DataFrame(
        [
            {"model": m, "scale": 4, "params": 100, "macs_720p_G": 1.0, "cpu_latency_ms": 2.0}
            for m in models
        ]
    )
    catalog.loc[catalog.model == "n", "method"] = ""  # plainly trained: no method
    table = drc_table(summary, cost, catalog, primal="n", seeds=3)
    assert table.loc["primal, L1 only", "S ×4"] == "30.00 / 0.8000"
    assert table.loc["dual − no dual", "S ×4"] == "+0.20 dB"
    assert table.loc["L1 r=0.5 (mean of 3/3 seeds)", "S ×4"] == "29.10 / 0.8000"
    assert table.loc["L1 r=0.5 seed spread", "S ×4"] == "0.20 dB"
    assert table.loc["DRC − L1 r=0.5", "S ×4"] == "+0.40 dB (DRC better)"
    assert table.loc["DRC r=0.5", "CPU_ms"] == "2.00"
    json.dumps(table.to_dict())
