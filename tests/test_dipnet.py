"""DIPNet: the rlfn extensions, RRB merging, the stage steps (resumable), the plan and report."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import REPO
from skimage import data as skdata

from litesr.compress.reparam import RepBlock
from litesr.config_check import check_schema
from litesr.data.images import write_png
from litesr.data.sources import prepare_set
from litesr.measure.cost import count_macs, count_params
from litesr.measure.width_latency import LayerShape
from litesr.methods.dipnet import plan
from litesr.methods.dipnet import widths as dipnet_widths
from litesr.methods.dipnet.pipeline import (
    DistilTask,
    anchor_pairs,
    distil,
    merge_error,
    merged_copy,
    progressive,
    prune,
    pruned_widths,
    reparam,
    round_files,
)
from litesr.methods.dipnet.report import ablation_table, pareto_front, scatter
from litesr.methods.plan import MadeModel, Paths
from litesr.models import arch_of, build
from litesr.models.rlfn import DIPNET_ARGS, rlfn_key_map
from litesr.models.store import load_model, save_model
from litesr.train.run import train_model

SCALE = 2
STUDENT = {
    "feature_channels": 8,
    "mid_channels": 8,
    "esa_channels": 4,
    "n_blocks": 2,
    "bias": False,
    "rrb_expand": 16,
}
RECIPE = {"steps": 4, "batch_size": 2, "lr_patch": 16, "checkpoint_every": 2}


def test_rlfn_defaults_keep_dipnet_and_the_authors_keys():
    model = build("rlfn", scale=4, **DIPNET_ARGS)
    assert count_params(model) == 243_252
    assert set(model.state_dict()) == set(rlfn_key_map(4, False).values())
    same = build("rlfn", scale=4, **DIPNET_ARGS, block_widths=[[38, 38]] * 4)
    assert {k: v.shape for k, v in same.state_dict().items()} == {
        k: v.shape for k, v in model.state_dict().items()
    }
    narrow = build("rlfn", scale=4, **DIPNET_ARGS, block_widths=[[20, 30]] * 4)
    assert narrow.blocks[0].c2_r.weight.shape == (30, 20, 3, 3)
    with pytest.raises(ValueError, match="block_widths"):
        build("rlfn", scale=4, **DIPNET_ARGS, block_widths=[[20, 30]] * 3)


def astronaut_crop() -> torch.Tensor:
    img = skdata.astronaut()[100:164, 180:244]
    return torch.from_numpy(img.transpose(2, 0, 1).copy()).float()[None] / 255


@pytest.mark.parametrize("x", ["random", "astronaut"])
def test_merged_dipnet_equals_the_rrb_network(x):
    torch.manual_seed(0)
    rrb = build("rlfn", scale=4, **DIPNET_ARGS, rrb_expand=256).eval()
    assert sum(isinstance(m, RepBlock) for m in rrb.modules()) == 12
    merged = merged_copy(rrb)
    assert not any(isinstance(m, RepBlock) for m in merged.modules())
    assert count_params(merged) == 243_252 and arch_of(merged)[1]["rrb_expand"] == 0
    inp = torch.rand(1, 3, 40, 48) if x == "random" else astronaut_crop()
    # The whole output, borders included, within 1e-5.
    assert merge_error(rrb, merged, inp) < 1e-5


def test_biased_rrb_merges_exactly_at_the_border():
    torch.manual_seed(1)
    block = RepBlock(6, 6, expand=32, bias=True)
    for p in block.parameters():
        torch.nn.init.normal_(p, std=0.3)
    x = torch.rand(1, 6, 9, 11)
    with torch.no_grad():
        diff = (block(x) - block.merge()(x)).abs()
    assert float(diff[..., 0, :].max()) < 1e-5 and float(diff.max()) < 1e-5


def test_anchor_pairs_match_relative_depth():
    assert anchor_pairs(4, 16) == [3, 7, 11, 15]
    assert anchor_pairs(3, 4) == [0, 2, 3]
    assert anchor_pairs(2, 2) == [0, 1]
    with pytest.raises(ValueError, match="fewer"):
        anchor_pairs(4, 2)


def test_distil_task_trains_student_and_projections_not_the_teacher():
    teacher = build("edsr", scale=SCALE, n_resblocks=4, n_feats=12)
    student = build("rlfn", scale=SCALE, **STUDENT)
    task = DistilTask(student, teacher, anchors=True)
    state = task.trainable_state()
    assert any(k.startswith("proj.") for k in state) and not any(
        k.startswith("teacher") for k in state
    )
    assert task.proj[0].weight.shape == (12, 8, 1, 1) and task.pairs == [1, 3]
    lr, hr = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 32, 32)
    loss, extras = task.loss(lr, hr)
    loss.backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert student.conv_1.weight.grad is not None and task.proj[1].weight.grad is not None
    assert float(loss.detach()) == pytest.approx(extras["pixel"] + extras["anchor"], rel=1e-5)
    assert set(DistilTask(student, teacher).loss(lr, hr)[1]) == set()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny ×2 training set, a tiny EDSR teacher and a distilled RRB student with anchors."""
    root = tmp_path_factory.mktemp("dipnet")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(3):
        img = np.kron(
            rng.integers(0, 256, (12, 12, 3), dtype=np.uint8), np.ones((4, 4, 1), np.uint8)
        )
        write_png(root / "src" / f"{i}.png", img)
        paths.append(root / "src" / f"{i}.png")
    data = prepare_set(paths, SCALE, root / "x2", progress=False)
    teacher = train_model(
        arch="edsr",
        args={"n_resblocks": 4, "n_feats": 12},
        recipe=RECIPE,
        data=data,
        scale=SCALE,
        out=root / "teacher.safetensors",
        log=root / "teacher.tsv",
        progress=False,
    )
    anchors = distil(
        teacher=teacher,
        data=data,
        scale=SCALE,
        student=STUDENT,
        recipe=RECIPE,
        anchors=True,
        variant="anchors",
        out=root / "anchors" / "model.safetensors",
        log=root / "anchors" / "log.tsv",
        stages=root / "anchors" / "stages",
        progress=False,
    )
    merged = reparam(
        model=anchors,
        scale=SCALE,
        out=root / "reparam" / "model.safetensors",
        log=root / "reparam" / "log.tsv",
        stages=root / "reparam" / "stages",
    )
    return root, data, teacher, anchors, merged


def test_distil_and_reparam_steps(setup):
    root, _, _, anchors, merged = setup
    assert (root / "anchors" / "stages" / "train.safetensors").exists()
    log = pd.read_csv(root / "anchors" / "log.tsv", sep="\t")
    assert len(log) == 4 and {"pixel", "anchor"} <= set(log.columns)
    student, meta = load_model(anchors)
    assert meta["variant"] == "anchors" and meta["args"]["rrb_expand"] == 16
    net, meta = load_model(merged)
    assert meta["variant"] == "reparam" and meta["args"]["rrb_expand"] == 0
    assert not any(isinstance(m, RepBlock) for m in net.modules())
    assert count_params(net) < count_params(student)
    assert merge_error(student, net, torch.rand(1, 3, 20, 24)) < 1e-5


def run_prune(setup, where, **kw):
    root, data, teacher, _, merged = setup
    args = {
        "ratio": 0.3125,
        "convs": ["c1_r", "c2_r"],
        "tolerance_db": 100.0,
        "max_rounds": 2,
        "min_rounds": 1,
        "recipe": {**RECIPE, "steps": 3},
        "target": "enhanced",
        "val_crop": 16,
        "val_images": 3,
    }
    return prune(
        model=merged,
        data=data,
        teacher=teacher,
        scale=SCALE,
        out=root / where / "model.safetensors",
        log=root / where / "log.tsv",
        stages=root / where / "stages",
        progress=False,
        **{**args, **kw},
    )


def test_pruning_rounds_shrink_reload_and_resume(setup):
    root, _, _, _, merged = setup
    out = run_prune(setup, "prune")
    start = load_model(merged)[0]
    widths, params, macs = (
        [pruned_widths(start)],
        [count_params(start)],
        [count_macs(start, (16, 16))],
    )
    for f in round_files(out.parent / "stages", 2):
        net, meta = load_model(f)  # rebuilt from its own block_widths
        assert meta["args"]["block_widths"] == pruned_widths(net)
        widths.append(pruned_widths(net))
        params.append(count_params(net))
        macs.append(count_macs(net, (16, 16)))
        assert net(torch.rand(1, 3, 16, 16)).shape == (1, 3, 32, 32)
    assert widths == [[[8, 8]] * 2, [[6, 6]] * 2, [[4, 4]] * 2]
    assert params[0] > params[1] > params[2] and macs[0] > macs[1] > macs[2]
    rounds = pd.read_csv(out.parent / "stages" / "rounds.tsv", sep="\t")
    assert rounds.kept.tolist() == [True, True]
    assert pd.read_csv(out.with_name("log.tsv"), sep="\t")["round"].tolist() == [0] * 3 + [1] * 3
    final, meta = load_model(out)
    assert pruned_widths(final) == [[4, 4]] * 2 and meta["variant"] == "pruned"
    # Killed after round 1: drop round 2 and the output, run again: bit-identical.
    round_files(out.parent / "stages", 2)[1].unlink()
    again = copy.deepcopy(final.state_dict())
    out.unlink()
    run_prune(setup, "prune")
    b = load_model(out)[0].state_dict()
    assert all(torch.equal(again[k], b[k]) for k in again)


def test_pruning_keeps_the_last_good_network(setup):
    _, _, _, _, merged = setup
    out = run_prune(setup, "strict", tolerance_db=-1.0, min_rounds=0)  # nothing can pass
    rounds = pd.read_csv(out.parent / "stages" / "rounds.tsv", sep="\t")
    assert rounds.kept.tolist() == [False]
    a, b = load_model(out)[0].state_dict(), load_model(merged)[0].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_latency_rounding_prunes_to_fast_widths_and_records_them(setup, monkeypatch):
    tables = []

    def blocks_of_4(shape, widths, *, device, threads):  # 1-4 cost 1, 5-8 cost 2
        tables.append((shape, device, threads))
        return {w: float(-(-w // 4)) for w in widths}

    monkeypatch.setattr(dipnet_widths, "width_table", blocks_of_4)
    out = run_prune(setup, "latency", latency={"device": "cpu", "threads": 1})
    rounds = pd.read_csv(out.parent / "stages" / "rounds.tsv", sep="\t")
    # 8 -> 6 saves nothing (5-8 cost alike): 4; 4 -> 3 is the exact width (nothing faster)
    assert rounds.widths.tolist() == [str([[4, 4]] * 2), str([[3, 3]] * 2)]
    assert rounds.exact_widths.tolist() == [str([[6, 6]] * 2), str([[3, 3]] * 2)]
    assert (rounds.latency_widths == rounds.widths).all()
    assert {shape for shape, _, _ in tables} == {
        LayerShape(8, 8, 3, (360, 640), inner=1)  # c1_r and c2_r together, 720p's ×2 input
    }
    record = pd.read_csv(out.parent / "stages" / "width_latency.tsv", sep="\t")
    assert set(record.table) == {
        "8-w-w-8_k3_360x640, widths 1-8",
        "8-w-w-8_k3_360x640, widths 1-4",
    }
    assert pruned_widths(load_model(out)[0]) == [[3, 3]] * 2


def test_progressive_two_stages(setup):
    root, data, teacher, _, merged = setup
    out = progressive(
        model=merged,
        data=data,
        teacher=teacher,
        scale=SCALE,
        patch={**RECIPE, "steps": 2, "lr_patch": 20},
        l2={**RECIPE, "steps": 2, "loss": "l2"},
        target="hr",
        out=root / "prog" / "model.safetensors",
        log=root / "prog" / "log.tsv",
        stages=root / "prog" / "stages",
        progress=False,
    )
    log = pd.read_csv(out.with_name("log.tsv"), sep="\t")
    assert log.stage.tolist() == ["patch"] * 2 + ["l2"] * 2
    assert load_model(out)[1]["variant"] == "progressive"
    assert (out.parent / "stages" / "l2.safetensors").exists()


def default_section() -> tuple[dict, dict]:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    return config["methods"]["dipnet"], config


PATHS = Paths(scales=[4], train_set="tr", test_sets=["te"])


def test_latency_widths_pass_the_schema_and_reach_the_prune_step():
    section, config = default_section()
    pruned = next(m for m in plan(section, config, PATHS).made if m.step == "prune")
    assert "latency" not in pruned.params  # the default (exact) keeps today's parameters
    config = copy.deepcopy(config)
    config["methods"]["dipnet"]["prune"]["widths"] = "latency"
    check_schema(config, REPO / "config" / "schema.yaml")
    section = config["methods"]["dipnet"]
    pruned = next(m for m in plan(section, config, PATHS).made if m.step == "prune")
    assert pruned.params["latency"] == {"device": "cpu", "threads": 1}
    config["methods"]["dipnet"]["prune"]["widths"] = "fast"
    with pytest.raises(ValueError, match="widths"):
        check_schema(config, REPO / "config" / "schema.yaml")


def test_plan_declares_one_model_per_stage():
    section, config = default_section()
    p = plan({**section, "seeds": 3}, config, PATHS)
    assert [m.name for m in p.trained] == ["dipnet-alone-s0", "dipnet-alone-s1", "dipnet-alone-s2"]
    assert [m.train["seed"] for m in p.trained] == [0, 1, 2]
    assert [m.name for m in p.made] == [
        f"dipnet-{s}" for s in ("ehr", "anchors", "reparam", "pruned", "progressive")
    ]
    assert p.made[2].inputs == {"model": "dipnet-anchors"}
    imports = {"authors": {"reference": "ref", "releases": ["dipnet"]}}
    with_official = plan(section, {**config, "methods": imports}, PATHS)
    assert with_official.tables[0].params["official"] == "authors-dipnet"
    assert with_official.roles["official"] == ["authors-dipnet"]


STAGES = ("ehr", "anchors", "reparam", "pruned", "progressive")


def test_one_stage_seed_keeps_the_single_chain():
    """stage_seeds 1 (the default): one model per stage, named, seeded and chained as before."""
    section, config = default_section()
    config = {**config, "seed": 5}
    p = plan(section, config, PATHS)
    assert plan({**section, "stage_seeds": 1}, config, PATHS) == p
    student = {**section["student"], "bias": False}
    recipe = {**section["train"], "seed": 5}
    common = {"student": student, "recipe": recipe, "anchor_weight": 1.0}
    data = {"data": "@train", "teacher": "teacher"}
    prune_params = {
        "ratio": 0.3125,
        "convs": ["c1_r", "c2_r"],
        "tolerance_db": 0.1,
        "max_rounds": 2,
        "min_rounds": 1,
        "recipe": {"seed": 5, **section["prune"]["finetune"]},
        "target": "enhanced",
        "val_crop": 32,
        "val_images": 6,
    }
    prog = section["progressive"]
    assert p.made == [
        MadeModel("dipnet-ehr", "distil", data, {**common, "anchors": False, "variant": "ehr"}),
        MadeModel(
            "dipnet-anchors", "distil", data, {**common, "anchors": True, "variant": "anchors"}
        ),
        MadeModel("dipnet-reparam", "reparam", {"model": "dipnet-anchors"}, {}),
        MadeModel("dipnet-pruned", "prune", {"model": "dipnet-reparam", **data}, prune_params),
        MadeModel(
            "dipnet-progressive",
            "progressive",
            {"model": "dipnet-pruned", **data},
            {
                "patch": {"seed": 5, **prog["patch"]},
                "l2": {"seed": 5, **prog["l2"]},
                "target": "enhanced",
            },
        ),
    ]
    assert [m.train["seed"] for m in p.trained] == [5, 6]
    assert {s: p.roles[s] for s in STAGES} == {s: [f"dipnet-{s}"] for s in STAGES}
    assert "student-alone seeds in every set and scale" in p.tables[0].caption


def test_stage_seeds_make_one_chain_per_seed():
    """stage_seeds 2: a second chain (``-s1``) at seed + 1 in every recipe, reading its own
    previous stage; the roles list both seeds."""
    section, config = default_section()
    config = {**copy.deepcopy(config), "seed": 5}
    config["methods"]["dipnet"]["stage_seeds"] = 2
    check_schema(config, REPO / "config" / "schema.yaml")
    section = config["methods"]["dipnet"]
    section["prune"]["finetune"]["seed"] = 11  # a recipe's own seed moves with the chain too
    p = plan(section, config, PATHS)
    assert [m.name for m in p.made] == [f"dipnet-{s}" for s in STAGES] + [
        f"dipnet-{s}-s1" for s in STAGES
    ]
    made = {m.name: m for m in p.made}
    for k, tail in enumerate(["", "-s1"]):
        ehr, anchors, merged, pruned, prog = (made[f"dipnet-{s}{tail}"] for s in STAGES)
        assert ehr.params["recipe"]["seed"] == anchors.params["recipe"]["seed"] == 5 + k
        assert ehr.params["recipe"]["steps"] == section["train"]["steps"]  # same budget
        assert pruned.params["recipe"]["seed"] == 11 + k
        assert prog.params["patch"]["seed"] == prog.params["l2"]["seed"] == 5 + k
        assert ehr.inputs == anchors.inputs == {"teacher": "teacher", "data": "@train"}
        assert merged.inputs == {"model": f"dipnet-anchors{tail}"}
        assert pruned.inputs["model"] == f"dipnet-reparam{tail}"
        assert prog.inputs["model"] == f"dipnet-pruned{tail}"
    assert {s: p.roles[s] for s in STAGES} == {s: [f"dipnet-{s}", f"dipnet-{s}-s1"] for s in STAGES}
    assert p.roles["alone"] == ["dipnet-alone-s0", "dipnet-alone-s1"]
    assert "the mean of the per-chain differences" in p.tables[0].caption
    config["methods"]["dipnet"]["stage_seeds"] = 0
    with pytest.raises(ValueError, match="stage_seeds"):
        check_schema(config, REPO / "config" / "schema.yaml")


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"teacher": "nosuch"}, "dipnet.teacher"),
        ({"student": {**STUDENT, "feature_channels": 200, "mid_channels": 200}}, "not larger"),
        ({"progressive": {"patch": {"steps": 1, "lr_patch": 8}, "l2": {"steps": 1}}}, "lr_patch"),
    ],
)
def test_plan_refuses_bad_sections(change, match):
    section, config = default_section()
    section = {**section, **change}
    section["student"] = {k: v for k, v in section["student"].items() if k != "bias"}
    paths = Paths(scales=[2, 4], train_set="tr", test_sets=["te"])
    with pytest.raises(ValueError, match=match):
        plan(section, config, paths)


def test_teacher_may_be_an_imported_release_with_block_features():
    """dipnet_seeds_cpu distils from NTIRE 2024's RLFN release; a release without block
    features (SPAN) or not imported is refused by name."""
    config = yaml.safe_load((REPO / "config" / "dipnet_seeds_cpu.yaml").read_text())
    check_schema(config, REPO / "config" / "schema.yaml")
    section = config["methods"]["dipnet"]
    paths = Paths(scales=[4], train_set="SunHays80", test_sets=["Set5", "Set14"])
    p = plan(section, config, paths)
    distils = [m for m in p.made if m.step == "distil"]
    assert len(distils) == 6  # ehr and anchors, 3 chains
    assert {m.inputs["teacher"] for m in distils} == {"authors-rlfn_ntire2024"}
    assert p.roles["teacher"] == ["authors-rlfn_ntire2024"]
    assert len(p.roles["anchors"]) == len(p.roles["progressive"]) == len(p.roles["alone"]) == 3
    config["methods"]["authors"]["releases"].append("span_ch28_ntire2024")
    for teacher, match in [
        ("authors-span_ch28_ntire2024", r"arch in \('edsr', 'rlfn'\) \(got span\)"),
        ("authors-ail_vdsr64_teacher", "got no such model"),
    ]:
        with pytest.raises(ValueError, match=match):
            plan({**section, "teacher": teacher}, config, paths)
    student = {**section["student"], "feature_channels": 48, "mid_channels": 48}
    with pytest.raises(ValueError, match="not larger"):
        plan({**section, "student": student}, config, paths)


def test_pareto_front_by_hand():
    latency = np.array([10.0, 5.0, 20.0, 5.0, 30.0])
    psnr = np.array([30.0, 29.0, 29.5, 28.0, 31.0])
    assert pareto_front(latency, psnr).tolist() == [1, 0, 4]


def test_ablation_table_judges_against_the_seed_spread():
    stages = ["alone", "alone", "alone", "ehr", "anchors", "reparam", "pruned", "progressive"]
    models = [f"m{i}" for i in range(len(stages))]  # names say nothing
    psnr = [30.0, 30.1, 30.2, 30.5, 30.6, 30.6, 30.3, 30.45]
    summary = pd.DataFrame(
        {"model": [*models, "t"], "set": "S", "scale": 4, "psnr_y": [*psnr, 32.0], "ssim_y": 0.9}
    )
    cost = pd.DataFrame(
        {
            "model": [*models, "t"],
            "scale": 4,
            "params": 1000,
            "macs_256_G": 1.0,
            "cpu_latency_ms": 5.0,
            "cpu_inference_MiB": 3.0,
            "gpu_latency_ms": np.nan,
            "gpu_peak_MiB": np.nan,
        }
    )
    catalog = pd.DataFrame(
        {
            "model": [*models, "t"],
            "scale": 4,
            "arch": "rlfn",
            "method": [*["dipnet"] * len(models), ""],
            "variant": [*stages, ""],
        }
    )
    table = ablation_table(summary, cost, catalog, teacher="t")
    assert list(table.index)[:2] == ["teacher (t)", "student alone (L1 on HR) (3 seeds)"]
    assert table.iloc[1]["S ×4"] == "30.10 ± 0.10 / 0.9000"
    verdict = table["effect beyond seed spread?"]
    assert verdict["+ enhanced HR"].startswith("yes") and verdict["+ anchors"].startswith("no")
    assert verdict["+ pruning"].startswith("yes") and verdict["+ progressive"].startswith("no")
    assert table.loc["+ enhanced HR", "Δ PSNR vs previous"] == "+0.40"
    assert "GPU ms" not in table.columns and table.loc["+ pruning", "CPU ms"] == "5.00"


def test_ablation_table_judges_stages_with_seeds_chain_by_chain():
    """Every stage after the student alone with 2 chains: mean ± std and the seed count. Two
    stages with as many chains are compared chain by chain (the mean of the per-chain
    differences against their max − min); with unequal counts (3 students alone, 2 chains),
    the difference of means against the larger max − min of the two stages. Pruned widths
    that differ show as a parameter range."""
    stages = ["alone"] * 3 + [s for s in STAGES for _ in range(2)]
    psnr = [30.0, 30.1, 30.2, 30.4, 30.6, 30.6, 30.9, 30.6, 30.9, 30.4, 30.5, 30.7, 30.8]
    models = [f"dipnet-alone-s{k}" for k in range(3)]
    models += [f"dipnet-{s}{tail}" for s in STAGES for tail in ("", "-s1")]
    summary = pd.DataFrame(
        {"model": [*models, "t"], "set": "S", "scale": 4, "psnr_y": [*psnr, 32.0], "ssim_y": 0.9}
    )
    params = [1000] * 9 + [800, 700, 800, 700, 5000]
    cost = pd.DataFrame(
        {
            "model": [*models, "t"],
            "scale": 4,
            "params": params,
            "cpu_latency_ms": [5.0] * 9 + [4.0, 3.0, 4.0, 3.0, 20.0],
        }
    )
    catalog = pd.DataFrame(
        {
            "model": [*models, "t"],
            "scale": 4,
            "arch": "rlfn",
            "method": [*["dipnet"] * len(models), ""],
            "variant": [*stages, ""],
        }
    )
    table = ablation_table(summary, cost, catalog, teacher="t")
    assert list(table.index) == [
        "teacher (t)",
        "student alone (L1 on HR) (3 seeds)",
        "+ enhanced HR (2 seeds)",
        "+ anchors (2 seeds)",
        "+ re-parameterisation (2 seeds)",
        "+ pruning (2 seeds)",
        "+ progressive (2 seeds)",
    ]
    assert table.loc["+ anchors (2 seeds)", "S ×4"] == "30.75 ± 0.21 / 0.9000"
    verdict = table["effect beyond seed spread?"]
    # ehr 30.5 (spread 0.2) vs alone 30.1 (spread 0.2): +0.40 beyond 0.20
    assert (
        verdict["+ enhanced HR (2 seeds)"] == "yes (spread 0.20 dB, the larger of the two stages)"
    )
    # anchors − ehr per chain +0.20, +0.30: +0.25 against 0.10, where the two stages' own
    # spreads (0.2, 0.3) would not separate them
    assert table.loc["+ anchors (2 seeds)", "Δ PSNR vs previous"] == "+0.25"
    paired = "dB per chain)"
    assert verdict["+ anchors (2 seeds)"] == f"yes (spread 0.10 {paired}"
    assert verdict["+ re-parameterisation (2 seeds)"] == f"no (spread 0.00 {paired}"
    assert table.loc["+ re-parameterisation (2 seeds)", "Δ PSNR vs previous"] == "+0.00"
    assert verdict["+ pruning (2 seeds)"] == f"yes (spread 0.20 {paired}"  # −0.2, −0.4
    assert verdict["+ progressive (2 seeds)"] == f"yes (spread 0.00 {paired}"  # +0.3 each
    assert table.loc["+ pruning (2 seeds)", "params"] == "700–800"
    assert table.loc["+ pruning (2 seeds)", "CPU ms"] == "3.50"
    assert table.loc["+ anchors (2 seeds)", "params"] == "1,000"


def test_ablation_table_reads_sets_in_report_order_in_cells_and_changes():
    """Set5 before Set14 in the columns and in the "Set5 / Set14" change text."""
    models = ["dipnet-alone-s0", "dipnet-alone-s1", "dipnet-ehr", "t"]
    summary = pd.DataFrame(
        {
            "model": models * 2,
            "set": ["Set14"] * 4 + ["Set5"] * 4,
            "scale": 4,
            "psnr_y": [26.0, 26.1, 26.2, 28.0, 29.0, 29.1, 29.6, 32.0],
            "ssim_y": 0.9,
        }
    )
    cost = pd.DataFrame({"model": models, "scale": 4, "params": 1000})
    catalog = pd.DataFrame(
        {
            "model": models,
            "scale": 4,
            "arch": "rlfn",
            "method": ["dipnet"] * 3 + [""],
            "variant": ["alone", "alone", "ehr", ""],
        }
    )
    table = ablation_table(summary, cost, catalog, teacher="t")
    assert [c for c in table.columns if "×" in c] == ["Set5 ×4", "Set14 ×4"]
    assert table.loc["+ enhanced HR", "Δ PSNR vs previous"] == "+0.55 / +0.15"


def test_peers_join_the_table_and_the_scatter_by_their_metadata(tmp_path):
    """Imported models other than the official DIPNet (``method`` "authors") are peers, named
    by their release's paper; other methods' models stay out."""
    models = ["s0", "s1", "off", "a", "b", "other"]
    summary = pd.DataFrame(
        {
            "model": models,
            "set": "Set5",
            "scale": 4,
            "psnr_y": [30.0, 30.2, 31.81, 32.10, 31.75, 29.0],
            "ssim_y": 0.9,
        }
    )
    cost = pd.DataFrame(
        {"model": models, "scale": 4, "params": 1000, "cpu_latency_ms": [90, 91, 432, 471, 315, 5]}
    )
    catalog = pd.DataFrame(
        {
            "model": models,
            "scale": 4,
            "arch": "rlfn",
            "method": ["dipnet", "dipnet", "authors", "authors", "authors", "drc"],
            "variant": [
                "alone",
                "alone",
                "dipnet_x4",
                "rlfn_ntire2024_x4",
                "span_ch28_ntire2024_x4",
                "drc",
            ],
        }
    )
    table = ablation_table(summary, cost, catalog, teacher="t", official="off")
    assert list(table.index)[-3:] == [
        "official DIPNet (off)",
        "peer: RLFN (a)",
        "peer: SPAN (b)",
    ]
    assert table.loc["peer: SPAN (b)", "Set5 ×4"] == "31.75 / 0.9000"
    assert table.loc["peer: SPAN (b)", "CPU ms"] == "315.00"
    assert not any("other" in row for row in table.index)
    files = {}
    for name, frame in {"summary": summary, "cost": cost, "catalog": catalog}.items():
        files[name] = tmp_path / f"{name}.tsv"
        frame.to_csv(files[name], sep="\t", index=False)
    out = scatter(**files, teacher="t", test_set="Set5", scale=4, out=tmp_path / "f.png")
    assert out.is_file()


def test_saved_pruned_network_loads_by_its_args(tmp_path):
    net = build("rlfn", scale=4, **DIPNET_ARGS, block_widths=[[26, 20]] * 4)
    save_model(net, tmp_path / "m.safetensors", arch="rlfn", args=arch_of(net)[1])
    again = load_model(tmp_path / "m.safetensors")[0]
    assert pruned_widths(again) == [[26, 20]] * 4
