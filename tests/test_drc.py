"""DRC: dual network and task (saved with the primal), channel search (α's own learning rate,
both updates every step), the authors' greedy channel selection, the compression steps end to
end (the same fine-tuning for DRC and L1), the plan, the table and the figures."""

from __future__ import annotations

import copy
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from litesr.compress.prune import select_channels
from litesr.config_check import check_schema
from litesr.data.images import write_png
from litesr.data.sources import prepare_set
from litesr.measure.width_latency import LayerShape
from litesr.methods.drc import METHOD, pipeline, plan
from litesr.methods.drc.dual import DualNet, DualTask, dual_from_meta, dual_meta
from litesr.methods.drc.pipeline import (
    drc_compress,
    l1_compress,
    layer_pairs,
    prune_to,
    train_primal,
)
from litesr.methods.drc.report import (
    alpha_figure,
    diagnostic_table,
    drc_table,
    widths_figure,
)
from litesr.methods.drc.search import (
    HalvesSampler,
    SearchTask,
    alpha_lr,
    candidate_widths,
    round4,
    slice_l1,
    width_masks,
)
from litesr.methods.drc.select import LayerSelection, Selection, channel_scores
from litesr.methods.plan import Paths
from litesr.models import arch_of, build
from litesr.models.rlfn import fold_rgb_range
from litesr.models.store import load_model, read_meta, save_model
from litesr.train.loop import fit
from litesr.train.patches import Pair, PatchSampler
from litesr.train.spec import TrainSpec


def _equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


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


def test_dual_network_travels_in_model_metadata_bit_for_bit(tmp_path):
    torch.manual_seed(3)
    dual = DualNet(4, n_feats=8, slope=0.1)
    model = _edsr()
    save_model(
        model, tmp_path / "m.safetensors", arch="edsr", args={}, meta={"dual": dual_meta(dual)}
    )
    again = dual_from_meta(read_meta(tmp_path / "m.safetensors")["dual"])
    assert (again.scale, again.n_feats, again.slope) == (4, 8, 0.1)
    assert _equal(dual.state_dict(), again.state_dict())


def test_edsr_block_widths_are_backward_compatible_and_reload(tmp_path):
    plain = _edsr()
    explicit = build("edsr", scale=2, n_resblocks=2, n_feats=16, block_widths=[16, 16])
    assert {k: v.shape for k, v in plain.state_dict().items()} == {
        k: v.shape for k, v in explicit.state_dict().items()
    }
    with pytest.raises(ValueError, match="block_widths"):
        build("edsr", scale=2, n_resblocks=2, n_feats=16, block_widths=[8])
    x = torch.rand(1, 3, 9, 11)
    model = prune_to(plain, {"body.0.body.0": 8, "body.1.body.0": 4})
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


def sixes(widths) -> dict[int, float]:
    """A latency table whose widths cost alike in blocks of 6: 1-6, 7-12, 13-18."""
    return {w: float(-(-w // 6)) for w in widths}


def test_candidate_widths_rounded_by_latency_are_fast_and_distinct():
    table = sixes(range(1, 17))
    assert candidate_widths(16, 0.5) == [4, 8]
    assert candidate_widths(16, 0.5, latency=table) == [6, 12]
    assert candidate_widths(64, 0.3, latency=sixes(range(1, 65))) == [24, 36, 42, 48]


def test_width_masks_keep_the_consumer_slices_of_largest_l1_norm():
    conv = nn.Conv2d(5, 2, 1)  # the consumer: 5 input channels
    with torch.no_grad():
        norms = torch.tensor([3.0, 1.0, 5.0, 1.0, 4.0])
        conv.weight.copy_(norms.view(1, 5, 1, 1).expand(2, 5, 1, 1) / 2)
    assert slice_l1(conv).tolist() == norms.tolist()
    masks = width_masks(conv, [1, 3])
    assert masks.tolist() == [[0, 0, 1, 0, 0], [1, 0, 1, 0, 1]]
    model = nn.Sequential(nn.Conv2d(2, 5, 1), conv)
    removed = select_channels(model, ["0"], {"0": 3}, torch.rand(1, 2, 4, 4), lambda _c: norms)
    assert removed == {"0": [1, 3]}


def _pairs(n: int, seed: int = 0) -> list[Pair]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        hr = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
        out.append(Pair(str(i), hr, hr[::2, ::2].copy()))
    return out


def _search(model: nn.Module, lr: float = 0.1) -> SearchTask:
    layers = {c: candidate_widths(16, 0.3) for c in layer_pairs(model).values()}
    return SearchTask(
        model, DualNet(2), layers, alpha_lr=lr, generator=torch.Generator().manual_seed(0)
    )


def test_alpha_lr_keeps_the_authors_travel():
    assert alpha_lr(2500) == pytest.approx(3e-4)
    assert alpha_lr(200) == pytest.approx(3.75e-3)


def test_search_updates_weights_and_alpha_every_step_on_their_halves():
    model = _edsr()
    task = _search(model)
    lr, hr = torch.rand(4, 3, 8, 8), torch.rand(4, 3, 16, 16)
    task.loss(lr, hr)[0].backward()
    alpha_grads = [a.grad.clone() for a in task.alphas]
    assert all(g.abs().sum() > 0 for g in alpha_grads) and model.head.weight.grad is not None
    assert task.dual.body[0].weight.grad is not None
    weight_grad = model.head.weight.grad.clone()
    task.zero_grad(set_to_none=True)
    lr2 = lr.clone()
    lr2[:2] = torch.rand(2, 3, 8, 8)  # a new first half: the weights' gradient changes, α's not
    task.loss(lr2, hr)[0].backward()
    assert all(torch.allclose(g, a.grad) for g, a in zip(alpha_grads, task.alphas, strict=True))
    assert not torch.allclose(weight_grad, model.head.weight.grad)


def test_search_alpha_has_its_own_lr_and_leaves_the_start(tmp_path):
    steps = 8
    spec = TrainSpec(steps=steps, batch_size=2, lr_patch=8, lr=3e-4)
    sampler = HalvesSampler(PatchSampler(_pairs(4), 2, 8))
    moved = {}
    for name, lr in (("shared", 3e-4), ("own", alpha_lr(steps))):
        task = _search(_edsr(), lr)
        groups = task.param_groups()
        assert groups[1]["lr"] == lr and groups[1]["weight_decay"] == 1e-3
        assert {id(a) for a in task.alphas} == {id(p) for p in groups[1]["params"]}
        start = [a.detach().clone() for a in task.alphas]
        log = tmp_path / f"{name}.tsv"
        fit(task, sampler, spec, checkpoint=tmp_path / name, log_tsv=log, progress=False)
        moved[name] = max(
            float((a.detach() - s).abs().max()) for a, s in zip(task.alphas, start, strict=True)
        )
        table = pd.read_csv(log, sep="\t")
        for layer in range(2):
            cols = [f"p{layer}_w{w}" for w in candidate_widths(16, 0.3)]
            assert np.allclose(table[cols].sum(axis=1), 1.0)
    old_bound = steps * 3e-4  # the old search's α: the weights' Adam lr per step at most
    assert moved["shared"] <= old_bound * 1.01
    assert moved["own"] > 10 * old_bound


def test_search_widths_are_candidates_and_argmax_masks_equal_pruning(tmp_path):
    model = _edsr()
    task = _search(model)
    spec = TrainSpec(steps=3, batch_size=2, lr_patch=8, lr=0.05)
    sampler = HalvesSampler(PatchSampler(_pairs(4), 2, 8))
    fit(task, sampler, spec, checkpoint=tmp_path / "c", log_tsv=tmp_path / "l.tsv", progress=False)
    cands = dict(zip(task.names, task.candidates, strict=True))
    assert all(w in cands[n] for n, w in task.widths().items())
    with torch.no_grad():  # make the argmax differ between layers, then compare
        task.alphas[0].copy_(torch.tensor([0.0, 1.0, 0.0]))
        task.alphas[1].copy_(torch.tensor([1.0, 0.0, 0.0]))
    assert task.widths() == {"body.0.body.2": 8, "body.1.body.2": 4}
    x, pairs = torch.rand(1, 3, 9, 11), layer_pairs(model).items()
    task.hard = True
    with torch.no_grad():
        masked = model(x)
    task.remove_hooks()
    with torch.no_grad():
        full = model(x)
        twin = copy.deepcopy(model)
        slices = {twin.get_submodule(p): slice_l1(twin.get_submodule(c)) for p, c in pairs}
        widths = {"body.0.body.0": 8, "body.1.body.0": 4}
        pruned = prune_to(twin, widths, lambda conv: slices[conv])
    torch.testing.assert_close(pruned(x), masked, atol=1e-6, rtol=0)
    assert (full - masked).abs().max() > 1e-4


class _Counting:
    """A sampler that records the size of every draw."""

    def __init__(self, sampler: PatchSampler) -> None:
        self.sampler, self.draws = sampler, []

    def sample(self, n: int, gen: torch.Generator):
        self.draws.append(n)
        return self.sampler.sample(n, gen)


def _selection_setup(seed: int = 0):
    torch.manual_seed(seed)
    model = _edsr()
    reference = copy.deepcopy(model).requires_grad_(False)
    dual = DualNet(2, 8)
    sampler = _Counting(PatchSampler(_pairs(4), 2, 8))
    return model, reference, dual, sampler


def test_selection_picks_one_channel_per_pass_on_fresh_patches():
    model, reference, dual, sampler = _selection_setup()
    settings = Selection(patches=6, batch=4, lr_patch=8, refit_steps=2)
    chooser = LayerSelection(model, reference, dual, 0.1, sampler, settings, torch.Generator())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    dual_before = copy.deepcopy(dual.state_dict())
    kept = chooser("body.0.body.2", 3)
    assert len(set(kept)) == 3 and len(chooser.log) == 3
    assert [row["kept"] for row in chooser.log] == [1, 2, 3]
    assert sampler.draws == [4, 2, 4, 4] * 3  # 6 patches per pass, 2 refit batches, per pick
    conv = model.body[0].body[2]
    nonzero = conv.weight.abs().sum((0, 2, 3)) > 0
    assert sorted(torch.nonzero(nonzero).flatten().tolist()) == sorted(kept)
    assert not torch.equal(conv.weight[:, kept], before["body.0.body.2.weight"][:, kept])
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {"body.0.body.2.weight", "body.0.body.2.bias"}
    assert all(torch.equal(v, dual_before[k]) for k, v in dual.state_dict().items())
    assert all(p.requires_grad for p in [*model.parameters(), *dual.parameters()])


def test_selection_without_refit_keeps_the_original_slices_and_is_greedy():
    model, reference, dual, sampler = _selection_setup()
    with torch.no_grad():
        model.body[0].body[0].weight[5] *= 20  # channel 5 dominates: picked first
        model.body[0].body[0].weight[2] = 0.0  # channel 2 is always 0: never needed
        model.body[0].body[0].bias[2] = -1.0
    reference.load_state_dict(model.state_dict())
    original = model.body[0].body[2].weight.detach().clone()
    settings = Selection(patches=4, batch=4, lr_patch=8, refit_steps=0)
    chooser = LayerSelection(model, reference, dual, 0.1, sampler, settings, torch.Generator())
    kept = chooser("body.0.body.2", 8)
    assert kept[0] == 5 and 2 not in kept
    assert torch.equal(model.body[0].body[2].weight[:, kept], original[:, kept])


def test_selection_refits_with_plain_sgd_when_momentum_is_zero():
    model, reference, dual, sampler = _selection_setup()
    settings = Selection(patches=2, batch=2, lr_patch=8, refit_steps=1, momentum=0.0)
    chooser = LayerSelection(model, reference, dual, 0.1, sampler, settings, torch.Generator())
    assert len(chooser("body.1.body.2", 1)) == 1 and chooser.log[0]["refit_loss"] > 0


def test_selection_score_is_the_authors_sum_of_kernel_norms():
    grad = torch.zeros(4, 2, 3, 3)
    grad[0, 0, 0, 0] = 3.0  # channel 0: one kernel of norm 3
    grad[:, 1, 1, 1] = 1.0  # channel 1: four kernels of norm 1
    assert channel_scores(grad).tolist() == [3.0, 4.0]  # a squared slice norm says 9 > 4


def test_selection_loss_is_in_the_authors_units():
    model, reference, dual, sampler = _selection_setup()
    with torch.no_grad():
        model.body[0].body[2].weight[:, :3] = 0.0
    lr, hr = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 16, 16)
    settings = Selection(units=255.0, rec_weight=0.5)
    chooser = LayerSelection(model, reference, dual, 0.1, sampler, settings, torch.Generator())
    with torch.no_grad():
        sr = model(lr)
        out = model.body[0].body[2](model.body[0].body[1](model.body[0].body[0](
            model.head(lr - model.rgb_mean))))  # fmt: skip
        target = reference.body[0].body[2](reference.body[0].body[1](reference.body[0].body[0](
            reference.head(lr - reference.rgb_mean))))  # fmt: skip
        l1 = (sr - hr).abs().mean() + 0.1 * (dual(sr) - lr).abs().mean()
        expected = 255 * l1 + 0.5 * 255**2 * (out - target).pow(2).mean()
        assert chooser.loss("body.0.body.2", lr, hr).item() == pytest.approx(expected.item(), 1e-5)
    with pytest.raises(ValueError, match="positive"):
        Selection(patches=0)


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
SELECTION = {"patches": 2, "batch": 2, "lr_patch": 8, "refit_steps": 1}
COMMON = {"lam": 0.1, "distill": 1.0, "finetune": {**TINY, "scheduler": "cosine", "lr": 1e-3}}


@pytest.fixture(scope="module")
def primal(data, tmp_path_factory):
    data_dir, _ = data
    where = tmp_path_factory.mktemp("primal")
    return train_primal(
        data=data_dir,
        scale=2,
        arch="edsr",
        args={"n_resblocks": 2, "n_feats": 16},
        recipe=TINY,
        dual={"n_feats": 8},
        lam=0.1,
        out=where / "p.safetensors",
        log=where / "p.tsv",
        stages=where / "ps",
        progress=False,
    )


def test_primal_saves_its_trained_dual(primal):
    meta = read_meta(primal)
    assert meta["variant"] == "dual" and meta["dual"]["n_feats"] == 8
    assert {"primal", "dual"} <= set(pd.read_csv(primal.with_name("p.tsv"), sep="\t").columns)
    torch.manual_seed(0)  # the draws of the primal's run: seed, model, then the dual
    build("edsr", scale=2, n_resblocks=2, n_feats=16)
    fresh = DualNet(2, 8)
    trained = dual_from_meta(meta["dual"])
    assert not _equal(fresh.state_dict(), trained.state_dict())


def _run_drc(primal, data_dir, where, **extra):
    return drc_compress(
        primal=primal,
        data=data_dir,
        scale=2,
        ratio=0.5,
        search={**TINY, "steps": 4},
        alpha={},
        selection=SELECTION,
        seed=0,
        out=where / "m.safetensors",
        log=where / "m.tsv",
        stages=where / "s",
        progress=False,
        **COMMON,
        **extra,
    )


@pytest.fixture(scope="module")
def drc_run(primal, data, tmp_path_factory):
    """One DRC run, recording the dual network the search, each selection and the fine-tune
    start from."""
    data_dir, _ = data
    seen: dict[str, list] = {"search": [], "select": [], "finetune": []}

    def spy(kind, make):
        def wrapped(student, dual, *args, **kwargs):
            seen[kind].append(copy.deepcopy(dual.state_dict()))
            return make(student, dual, *args, **kwargs)

        return wrapped

    select_init = pipeline.LayerSelection.__init__

    def spy_select(self, model, reference, dual, *args):
        seen["select"].append(copy.deepcopy(dual.state_dict()))
        select_init(self, model, reference, dual, *args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pipeline, "SearchTask", spy("search", pipeline.SearchTask))
        patch.setattr(pipeline, "DualTask", spy("finetune", pipeline.DualTask))
        patch.setattr(pipeline.LayerSelection, "__init__", spy_select)
        where = tmp_path_factory.mktemp("drc")
        return _run_drc(primal, data_dir, where), seen


def test_drc_uses_the_primals_dual_and_selects_one_channel_per_row(primal, drc_run):
    out, seen = drc_run
    saved = dual_from_meta(read_meta(primal)["dual"]).state_dict()
    assert [len(seen[k]) for k in ("search", "select", "finetune")] == [1, 2, 1]
    for state in [*seen["search"], *seen["select"], *seen["finetune"]]:  # never a fresh one
        assert _equal(state, saved)
    model, meta = load_model(out)
    assert meta["variant"] == "drc" and meta["size"] == 0.5
    assert all(w in candidate_widths(16, 0.5) for w in meta["widths"])
    assert meta["widths"] == [model.body[i].body[0].out_channels for i in range(2)]
    assert list(meta["search"]["widths"].values()) == meta["widths"]
    log = pd.read_csv(out.with_name("m.tsv"), sep="\t")
    assert list(dict.fromkeys(log.stage)) == ["search", "select0", "select1", "finetune"]
    assert (log.stage == "select0").sum() == meta["widths"][0]  # one pick per row


def test_drc_killed_after_a_selection_ends_bit_identical(primal, data, drc_run, tmp_path):
    out, _ = drc_run
    shutil.copytree(out.parent, tmp_path / "a")
    for name in ("select1", "finetune"):
        (tmp_path / "a" / "s" / f"{name}.safetensors").unlink()
    again = load_model(_run_drc(primal, data[0], tmp_path / "a"))[0].state_dict()
    assert _equal(again, load_model(out)[0].state_dict())


def test_drc_and_l1_share_one_finetuning_schedule(primal, data, drc_run, tmp_path):
    data_dir, _ = data
    l1 = l1_compress(
        primal=primal,
        data=data_dir,
        scale=2,
        ratio=0.5,
        seed=0,
        out=tmp_path / "l1.safetensors",
        log=tmp_path / "l1.tsv",
        stages=tmp_path / "ls",
        progress=False,
        **COMMON,
    )
    assert read_meta(l1)["widths"] == [max(candidate_widths(16, 0.5))] * 2
    drc_log = pd.read_csv(drc_run[0].with_name("m.tsv"), sep="\t")
    l1_log = pd.read_csv(tmp_path / "l1.tsv", sep="\t")
    drc_tune, l1_tune = (t[t.stage == "finetune"] for t in (drc_log, l1_log))
    assert len(drc_tune) == len(l1_tune) == TINY["steps"]
    assert drc_tune.lr.tolist() == l1_tune.lr.tolist()
    trained = {
        s
        for s in drc_log.stage.unique()
        if s != "search" and drc_log[drc_log.stage == s].lr.notna().any()
    }
    assert trained == {"finetune"}  # no whole-model training between the selections


def test_l1_baseline_takes_the_latency_rounded_uniform_width(primal, data, tmp_path, monkeypatch):
    shapes = []

    def table(shape, widths, *, device, threads):
        shapes.append(shape)
        return sixes(widths)

    monkeypatch.setattr(pipeline, "width_table", table)
    l1 = l1_compress(
        primal=primal, data=data[0], scale=2, ratio=0.5, seed=0,
        latency={"device": "cpu", "threads": 1},
        out=tmp_path / "l1.safetensors", log=tmp_path / "l1.tsv", stages=tmp_path / "ls",
        progress=False, **COMMON,
    )  # fmt: skip
    meta = read_meta(l1)
    assert meta["widths"] == [12, 12]  # exact: 8
    assert meta["candidates"] == {"body.0.body.0": [6, 12], "body.1.body.0": [6, 12]}
    assert set(shapes) == {LayerShape(16, 16, 3, (360, 640))}


def test_drc_refuses_a_primal_without_its_dual(data, tmp_path):
    data_dir, _ = data
    model = _edsr()
    plain = tmp_path / "plain.safetensors"
    save_model(model, plain, arch="edsr", args={"scale": 2, "n_resblocks": 2, "n_feats": 16})
    with pytest.raises(ValueError, match="no dual network"):
        _run_drc(plain, data_dir, tmp_path / "x")


def _select(primal, data_dir, where, criterion, seed=0):
    return pipeline.select_uniform(
        primal=primal,
        data=data_dir,
        scale=2,
        ratio=0.5,
        criterion=criterion,
        selection=SELECTION,
        lam=0.1,
        distill=1.0,
        seed=seed,
        out=where / f"{criterion}{seed}.safetensors",
        log=where / f"{criterion}{seed}.tsv",
        stages=where / f"{criterion}{seed}",
        progress=False,
    )


def test_diagnostic_selections_differ_only_in_the_channels_they_keep(primal, data, tmp_path):
    """Every criterion prunes to the uniform widths; L1 keeps the largest filters, random
    draws per seed, the legacy selection picks 4 per pass; a pruned model fine-tunes with the
    shared schedule."""
    data_dir, _ = data
    reference, _ = load_model(primal)
    kept = {}
    for criterion, seed in [(c, 0) for c in pipeline.CRITERIA] + [("random", 1)]:
        path = _select(primal, data_dir, tmp_path, criterion, seed)
        model, meta = load_model(path)
        assert meta["variant"] == f"pruned-{criterion}" and meta["size"] == 0.5
        assert meta["widths"] == [max(candidate_widths(16, 0.5))] * 2
        # the kept channels: the pruned first conv's filters are rows of the reference's
        full, cut = reference.body[0].body[0].weight, model.body[0].body[0].weight
        kept[criterion, seed] = [
            next(j for j in range(16) if torch.equal(full[j], cut[i])) for i in range(len(cut))
        ]
    l1 = full.flatten(1).abs().sum(1)
    assert sorted(kept["l1", 0]) == sorted(l1.argsort(descending=True)[:8].tolist())
    assert kept["random", 0] != kept["random", 1]
    log = pd.read_csv(tmp_path / "drc-legacy0.tsv", sep="\t")
    assert (log.stage == "select0").sum() == 2  # 8 channels, 4 per pick
    tuned = pipeline.tune_pruned(
        primal=primal,
        pruned=tmp_path / "random1.safetensors",
        data=data_dir,
        scale=2,
        ratio=0.5,
        seed=1,
        out=tmp_path / "t.safetensors",
        log=tmp_path / "t.tsv",
        stages=tmp_path / "ts",
        progress=False,
        **COMMON,
    )
    meta = read_meta(tuned)
    assert meta["variant"] == "tuned-random" and meta["widths"] == [8, 8]
    assert len(pd.read_csv(tmp_path / "t.tsv", sep="\t")) == TINY["steps"]


def test_plan_adds_the_diagnostic_arms():
    paths = Paths(scales=[4], train_set="t", test_sets=["a"])
    base = {"arch": "edsr", "args": {"n_resblocks": 2, "n_feats": 16}, "train": TINY}
    section = {**SECTION, "diagnostic": {"ratios": [0.5], "seeds": [4, 5]}}
    p = plan(section, {"seed": 3, "models": {"base": base}}, paths)
    made = {m.name: m for m in p.made}
    assert made["drc-xr50-random-s5"].params["seed"] == 5
    assert made["drc-xr50-random-s5-ft"].inputs["pruned"] == "drc-xr50-random-s5"
    assert made["drc-xr50-drc-legacy"].params["criterion"] == "drc-legacy"
    assert "drc-xr50-l1-ft" not in made, "the tuned L1 arm is the baseline's"
    assert p.roles["xr50-l1-tuned"] == ["drc-l1-r50-s0", "drc-l1-r50-s1", "drc-l1-r50-s2"]
    assert {t.kind for t in p.tables} == {"table", "diagnostic"}
    with pytest.raises(ValueError, match="one of drc.ratios"):
        plan({**section, "diagnostic": {"ratios": [0.7]}}, {"models": {"base": base}}, paths)
    only = {**section, "diagnostic": {"ratios": [0.3, 0.5], "criteria": ["random"]}}
    p = plan(only, {"seed": 3, "models": {"base": base}}, paths)
    assert {m.params["criterion"] for m in p.made if m.step == "select"} == {"random"}
    assert len([t for t in p.tables if t.kind == "diagnostic"]) == 2


def test_plan_adds_seeds_of_both_primals():
    paths = Paths(scales=[4], train_set="t", test_sets=["a"])
    base = {"arch": "edsr", "args": {"n_resblocks": 2, "n_feats": 16}, "train": TINY}
    p = plan({**SECTION, "primal_seeds": [7, 8]}, {"seed": 3, "models": {"base": base}}, paths)
    assert [t.name for t in p.trained] == ["base-s7", "base-s8"]
    assert p.trained[0].train["seed"] == 7 and p.trained[0].meta["variant"] == "nodual"
    made = {m.name: m for m in p.made}
    assert made["drc-primal-s8"].params["recipe"] == {**TINY, "seed": 8}
    assert made["drc-primal"].params["recipe"]["seed"] == 3
    assert made["drc-r30"].inputs["primal"] == "drc-primal", "only one primal is compressed"
    assert p.roles["dual"] == ["drc-primal", "drc-primal-s7", "drc-primal-s8"]
    with pytest.raises(ValueError, match="workflow seed"):
        plan({**SECTION, "primal_seeds": [3]}, {"seed": 3, "models": {"base": base}}, paths)


def test_table_judges_dual_against_the_seed_spread():
    psnr = {"n0": ("nodual", 30.0), "n1": ("nodual", 30.1), "d0": ("dual", 30.2),
            "d1": ("dual", 30.3)}  # fmt: skip
    rows = [{"model": m, "scale": 4, "variant": v, "psnr_y": x} for m, (v, x) in psnr.items()]
    summary = pd.DataFrame(rows).drop(columns="variant").assign(set="S", ssim_y=0.8)
    catalog = pd.DataFrame(rows).drop(columns="psnr_y").assign(method="drc", size=0.0)
    table = drc_table(summary, pd.DataFrame(columns=["model", "scale"]), catalog, "n0", 3)
    assert table.loc["dual − no dual (2 seeds each)", "S ×4"] == "+0.20 dB (dual better)"
    assert table.loc["primal, L1 only", "S ×4"] == "30.05 / 0.8000"


def test_diagnostic_table_reads_arms_from_the_variants():
    models = {
        "p-l1": ("pruned-l1", 20.0), "p-d": ("pruned-drc", 22.0),
        "l0": ("l1", 29.0), "l1": ("l1", 29.2), "t-d": ("tuned-drc", 29.5),
        "t-r0": ("tuned-random", 29.0), "t-r1": ("tuned-random", 29.4),
        "other": ("drc", 31.0),
    }  # fmt: skip
    rows = [{"model": m, "scale": 4, "variant": v, "psnr_y": p} for m, (v, p) in models.items()]
    summary = pd.DataFrame(rows).drop(columns="variant").assign(set="S", ssim_y=0.8)
    catalog = pd.DataFrame(rows).drop(columns="psnr_y").assign(method="drc", size=0.5)
    table = diagnostic_table(summary, pd.DataFrame(), catalog, ratio=0.5)
    assert table.loc["l1, after pruning (1 models)", "S ×4"] == "20.00 / 0.8000"
    assert table.loc["l1, after fine-tuning (2 models)", "S ×4"] == "29.10 / 0.8000 (0.20)"
    assert table.loc["drc − l1, fine-tuned", "S ×4"] == "+0.40 dB (drc better)"
    assert table.loc["random − l1, fine-tuned", "S ×4"] == "+0.10 dB (within seed spread)"
    assert not any("other" in i for i in table.index)


def test_fold_rgb_range_keeps_the_output():
    torch.manual_seed(0)
    model = build("rlfn", scale=2, feature_channels=8, mid_channels=8, esa_channels=4,
                  n_blocks=1, bias=True, rgb_range=255).eval()  # fmt: skip
    x = torch.rand(1, 3, 20, 20)
    with torch.no_grad():
        before = model(x)
        after = fold_rgb_range(model)(x)
    assert model.rgb_range == 1 and arch_of(model)[1]["rgb_range"] == 1
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def rlfn_primal(data, tmp_path_factory):
    """A tiny RLFN on 0–255 (as NTIRE 2024's release) with a dual fitted to it, frozen."""
    where = tmp_path_factory.mktemp("rlfn")
    torch.manual_seed(0)
    args = {"feature_channels": 8, "mid_channels": 8, "esa_channels": 4, "n_blocks": 2,
            "bias": True, "rgb_range": 255}  # fmt: skip
    model = build("rlfn", scale=2, **args)
    save_model(model, where / "release.safetensors", arch="rlfn", args={"scale": 2, **args})
    out = pipeline.fit_dual(
        primal=where / "release.safetensors",
        data=data[0],
        scale=2,
        recipe={**TINY, "lr_patch": 16},
        dual={"n_feats": 8},
        lam=0.1,
        out=where / "p.safetensors",
        log=where / "p.tsv",
        stages=where / "s",
        progress=False,
    )
    return where / "release.safetensors", out


def test_fit_dual_freezes_a_released_primal_and_folds_its_range(rlfn_primal):
    release, fitted = rlfn_primal
    original, _ = load_model(release)
    model, meta = load_model(fitted)
    assert meta["variant"] == "dual-fit" and "dual" in meta and model.rgb_range == 1
    assert meta["widths"] == [[8, 8], [8, 8]]
    x = torch.rand(1, 3, 20, 20)
    with torch.no_grad():
        torch.testing.assert_close(model(x), original(x), rtol=1e-5, atol=1e-5)  # frozen
    fresh = dual_meta(DualNet(2, 8))
    assert meta["dual"]["tensors"] != fresh["tensors"]


def test_drc_and_l1_prune_both_inner_widths_of_every_rlfn_block(rlfn_primal, data, tmp_path):
    _, primal = rlfn_primal
    common = {**COMMON, "finetune": {**COMMON["finetune"], "lr_patch": 16}}
    out = drc_compress(
        primal=primal, data=data[0], scale=2, ratio=0.5,
        search={**TINY, "steps": 2, "lr_patch": 16}, alpha={},
        selection={**SELECTION, "lr_patch": 16}, seed=0,
        out=tmp_path / "d.safetensors", log=tmp_path / "d.tsv", stages=tmp_path / "ds",
        progress=False, **common,
    )  # fmt: skip
    model, meta = load_model(out)
    assert len(meta["widths"]) == 2 and all(len(w) == 2 for w in meta["widths"])
    assert all(w in candidate_widths(8, 0.5) for pair in meta["widths"] for w in pair)
    assert torch.isfinite(model(torch.rand(1, 3, 20, 20))).all()
    assert widths_figure([str(out)], str(primal), str(tmp_path / "w.png")).exists()
    l1 = l1_compress(
        primal=primal, data=data[0], scale=2, ratio=0.5, seed=0,
        out=tmp_path / "l.safetensors", log=tmp_path / "l.tsv", stages=tmp_path / "ls",
        progress=False, **common,
    )  # fmt: skip
    assert read_meta(l1)["widths"] == [[4, 4], [4, 4]]


SECTION = {
    "primal": "base",
    "ratios": [0.3, 0.5],
    "search": TINY,
    "selection": SELECTION,
    "finetune": TINY,
}


def test_latency_widths_pass_the_schema_and_reach_every_compression_step():
    paths = Paths(scales=[4], train_set="t", test_sets=["a"])
    base = {"arch": "edsr", "args": {"n_resblocks": 2, "n_feats": 16}, "train": TINY}
    config = {"seed": 3, "models": {"base": base}, "cost": {"device": "cuda", "threads": 2}}
    section = {**SECTION, "diagnostic": {"ratios": [0.5], "criteria": ["random", "drc"]}}
    exact = plan(section, config, paths).made
    assert not any("latency" in m.params for m in exact)
    rounded = plan({**section, "widths": "latency"}, config, paths).made
    compressions = [m for m in rounded if m.step in ("drc", "l1", "select", "tune")]
    assert {m.step for m in compressions} == {"drc", "l1", "select", "tune"}
    assert all(m.params["latency"] == {"device": "cuda", "threads": 2} for m in compressions)
    assert not any("latency" in m.params for m in rounded if m not in compressions)
    check_schema({**section, "widths": "latency"}, METHOD.schema)
    with pytest.raises(ValueError, match="widths"):
        check_schema({**section, "widths": "fast"}, METHOD.schema)


def test_plan_names_models_and_budgets():
    paths = Paths(scales=[4], train_set="t", test_sets=["a"])
    base = {"arch": "edsr", "args": {"n_resblocks": 2, "n_feats": 16}, "train": TINY}
    p = plan(SECTION, {"seed": 3, "models": {"base": base}}, paths)
    names = [m.name for m in p.made]
    assert names[0] == "drc-primal" and "drc-r30" in names and "drc-l1-r50-s2" in names
    assert not p.trained and p.made[0].params["recipe"] == {"seed": 3, **TINY}
    l1 = next(m for m in p.made if m.name == "drc-l1-r30-s0")
    drc = next(m for m in p.made if m.name == "drc-r30")
    assert l1.params["finetune"] == drc.params["finetune"] == TINY  # one schedule for both
    assert drc.params["seed"] == 3 and drc.params["selection"] == SELECTION
    assert {f.kind for f in p.figures} == {"widths", "alpha"}
    pruned = {**base, "args": {"n_resblocks": 2, "block_widths": [4, 4]}}
    with pytest.raises(ValueError, match="block_widths"):
        plan(SECTION, {"models": {"base": pruned}}, paths)
    with pytest.raises(ValueError, match="drc.primal.*edsr"):
        plan(SECTION, {"models": {"base": {**base, "arch": "rlfn"}}}, paths)
    authors = {"reference": "r", "releases": ["rlfn_ntire2024"]}
    released = {"scales": [4], "models": {}, "methods": {"authors": authors}}
    section = {**SECTION, "primal": "authors-rlfn_ntire2024", "dual_fit": TINY}
    p = plan(section, released, paths)
    assert p.made[0].step == "fit_dual" and p.made[0].inputs["primal"] == "authors-rlfn_ntire2024"
    assert "primal" not in p.roles and not p.trained  # no plain-vs-dual comparison
    with pytest.raises(ValueError, match="needs `dual_fit`"):
        plan(SECTION | {"primal": "authors-rlfn_ntire2024"}, released, paths)
    assert set(METHOD.steps) == {"primal", "fit_dual", "drc", "l1", "select", "tune"}


def test_figures_draw_ours_beside_the_authors_and_the_alpha_paths(primal, drc_run, tmp_path):
    out = str(drc_run[0])
    assert widths_figure([out], str(primal), str(tmp_path / "w.png")).stat().st_size > 0
    assert alpha_figure([out.replace(".safetensors", ".tsv")], str(tmp_path / "a.png")).exists()


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
            {"model": m, "scale": 4, "params": 100 if v[1] == 0.5 else 160,
             "macs_720p_G": 1.0 if v[1] == 0.5 else 1.25, "cpu_latency_ms": 2.0}
            for m, v in models.items()
        ]
    )  # fmt: skip
    catalog.loc[catalog.model == "n", "method"] = ""  # plainly trained: no method
    table = drc_table(summary, cost, catalog, primal="n", seeds=3)
    assert table.loc["primal, L1 only", "S ×4"] == "30.00 / 0.8000"
    assert table.loc["dual − no dual", "S ×4"] == "+0.20 dB"
    assert table.loc["L1 r=0.5 (mean of 3/3 seeds)", "S ×4"] == "29.10 / 0.8000"
    assert table.loc["L1 r=0.5 seed spread", "S ×4"] == "0.20 dB"
    assert table.loc["DRC − L1 r=0.5", "S ×4"] == "+0.40 dB (DRC better)"
    assert table.loc["DRC r=0.5", "CPU_ms"] == "2.00"
    # r removes half the inner channels; the parameters and MACs removed are measured
    assert table.loc["DRC r=0.5", "params_cut"] == "−38 %"
    assert table.loc["L1 r=0.5 (mean of 3/3 seeds)", "MACs_cut"] == "−20 %"
    json.dumps(table.to_dict())
