"""Scoring released models and model files without training anything: configs with no
`models` and no training set, models made at the scales they serve, benchmark folders named
as public releases name them, and `litesr evaluate MODEL... --sets DIR...`.
(config/released.yaml's dry run is in test_workflow; a quick variant runs end to end here.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import REPO

from litesr.cli import main as cli_main
from litesr.data.images import list_images, write_png
from litesr.data.sources import image_name, prepare_set
from litesr.evaluate.run import evaluate_set
from litesr.evaluate.score import file_model_name, set_name
from litesr.methods.collect import ConfigError, WorkflowPlan, check_trainable, collect
from litesr.methods.plan import MadeModel, Paths
from litesr.models import build
from litesr.models.releases import imported
from litesr.models.store import load_model, save_model
from litesr.report.tables import accuracy_for_print

PLUGIN = REPO / "tests" / "plugin"


def _config(**methods) -> dict:
    """A config of methods alone: two test folders, no `models`, no training set."""
    return {
        "scales": [2, 4],
        "data": {"source": "folder", "test": {"Set5": "a/x{scale}", "Set14": "b/x{scale}"}},
        "methods": methods,
    }


def _paths(config: dict) -> Paths:
    train = next(iter(config["data"].get("train", {})), None)
    return Paths(config["scales"], train, list(config["data"]["test"]))


def test_a_config_of_releases_alone_plans_no_training() -> None:
    config = _config(authors={"reference": "ref", "releases": ["ail_vdsr64_teacher"]})
    plan = collect(config, _paths(config))
    assert plan.trained == {}
    assert plan.reported == ["authors-ail_vdsr64_teacher"]


def test_model_files_by_path_are_models_of_their_own_name() -> None:
    config = _config(authors={"files": {"mine": "runs/mine/x{scale}/model.safetensors"}})
    plan = collect(config, _paths(config))
    method, model = plan.made["mine"]
    assert (method, model.step) == ("authors", "file")
    assert model.inputs == {"weights": "file:runs/mine/x{scale}/model.safetensors"}


def test_a_trained_model_without_a_training_set_is_refused_naming_data_train() -> None:
    config = _config(authors={"reference": "ref", "releases": ["ail_vdsr64_teacher"]})
    config["models"] = {
        "m": {"arch": "edsr", "args": {"n_feats": 8, "n_resblocks": 1}, "train": {"steps": 2}}
    }
    with pytest.raises(ConfigError, match=r"data.train: the model 'm' is trained"):
        collect(config, _paths(config))


def test_a_method_step_on_the_training_set_without_one_is_refused() -> None:
    plan = WorkflowPlan(reported=["x"])
    plan.made["x"] = ("toy", MadeModel("x", "step", {"data": "@train"}, {}))
    with pytest.raises(ConfigError, match=r"data.train: methods.toy \(model x\) trains"):
        check_trainable(plan, Paths([4], None, ["Set5"]))


def test_a_config_with_nothing_to_evaluate_is_refused() -> None:
    with pytest.raises(ConfigError, match="models: nothing to evaluate"):
        collect(_config(), _paths(_config()))


def test_the_file_step_copies_a_model_file_byte_for_byte(tmp_path: Path) -> None:
    from litesr.methods.authors.steps import copy_file

    torch.manual_seed(0)
    source = tmp_path / "src.safetensors"
    save_model(
        build("edsr", scale=2, n_resblocks=1, n_feats=8),
        source,
        arch="edsr",
        args={"scale": 2, "n_resblocks": 1, "n_feats": 8},
        meta={"method": "x"},
    )
    out = copy_file(weights=source, scale=2, out=tmp_path / "m.safetensors", log=tmp_path / "l")
    assert out.read_bytes() == source.read_bytes()
    assert load_model(out)[1]["method"] == "x"
    assert str(source) in (tmp_path / "l").read_text()
    with pytest.raises(ValueError, match=r"src.safetensors: the model is ×2, not ×4"):
        copy_file(weights=source, scale=4, out=tmp_path / "n.safetensors", log=tmp_path / "k")
    assert not (tmp_path / "n.safetensors").exists()


# --- releases and files at the scales they serve -------------------------------------------


def test_each_release_is_made_at_the_configured_scales_it_serves() -> None:
    config = _config(
        authors={"reference": "ref", "releases": ["ail_vdsr64_teacher", "dipnet", "rlfn_ntire2024"]}
    )
    plan = collect(config, _paths(config))
    assert plan.scales == {
        "authors-ail_vdsr64_teacher": [2, 4],
        "authors-dipnet": [4],
        "authors-rlfn_ntire2024": [4],
    }
    assert plan.absent == {
        "authors-dipnet": "the authors released it for ×4 only",
        "authors-rlfn_ntire2024": "the authors released it for ×4 only",
    }
    assert imported(config)["authors-dipnet"].name == "dipnet_x4"


def test_a_release_s_scales_may_be_given_and_must_be_served() -> None:
    entry = {"name": "ail_vdsr64_teacher", "scales": [4]}
    config = _config(authors={"reference": "ref", "releases": [entry]})
    plan = collect(config, _paths(config))
    assert plan.scales["authors-ail_vdsr64_teacher"] == [4]
    assert "left out by its `scales`" in plan.absent["authors-ail_vdsr64_teacher"]
    entry["name"] = "dipnet"
    entry["scales"] = [2, 4]
    with pytest.raises(ConfigError, match=r"'dipnet' is asked for at ×2, but .* for ×4 only"):
        collect(config, _paths(config))
    entry["name"] = "ail_vdsr64_teacher"  # served at ×3, which `scales` does not have
    entry["scales"] = [3]
    with pytest.raises(ConfigError, match=r"teacher\): scales \[3\] must be some of `scales`"):
        collect(config, _paths(config))


def test_a_release_serving_no_configured_scale_is_refused() -> None:
    config = _config(authors={"reference": "ref", "releases": ["dipnet"]})
    config["scales"] = [2, 3]
    with pytest.raises(ConfigError, match=r"'dipnet' for ×4 only, not ×2, ×3: none of"):
        collect(config, _paths(config))


def test_a_model_file_without_scale_in_its_path_is_made_at_its_own_scale(tmp_path: Path) -> None:
    path = tmp_path / "mine.safetensors"
    save_model(
        build("edsr", scale=2, n_resblocks=1, n_feats=8),
        path,
        arch="edsr",
        args={"scale": 2, "n_resblocks": 1, "n_feats": 8},
    )
    config = _config(authors={"files": {"mine": str(path)}})
    plan = collect(config, _paths(config))
    assert plan.scales["mine"] == [2]
    assert plan.absent["mine"] == "the file is a ×2 model"
    config["methods"]["authors"]["files"]["gone"] = str(tmp_path / "gone.safetensors")
    with pytest.raises(ConfigError, match=r"files.gone: model file not found"):
        collect(config, _paths(config))


def test_a_method_model_needing_a_model_absent_at_a_scale_is_refused(monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(PLUGIN))
    monkeypatch.setenv("LITESR_METHODS", "toya")
    config = _config(
        authors={"reference": "ref", "releases": ["dipnet"]}, toya={"source": "authors-dipnet"}
    )
    with pytest.raises(
        ConfigError,
        match=r"toya-copy at ×2 needs authors-dipnet, which is not made at ×2 \(the authors",
    ):
        collect(config, _paths(config))


def test_the_accuracy_table_marks_absent_cells_and_says_why() -> None:
    summary = pd.DataFrame(
        [
            ("bicubic", "Set5", 2, 33.7, 0.93),
            ("bicubic", "Set5", 4, 28.4, 0.81),
            ("authors-dipnet", "Set5", 4, 31.8, 0.89),
        ],
        columns=["model", "set", "scale", "psnr_y", "ssim_y"],
    )
    absent = {"authors-dipnet": {"scales": [2], "why": "the authors released it for ×4 only"}}
    table = accuracy_for_print(summary, absent)
    assert table["rows"][1] == ["authors-dipnet", "–", "31.80 / 0.8900"]
    assert table["caption"].endswith(
        "–: not evaluated: authors-dipnet at ×2 (the authors released it for ×4 only)."
    )
    assert table["best"][1] == [False, False, True]


# --- benchmark folders named as public releases name them -----------------------------------


@pytest.mark.parametrize(
    ("file", "name"),
    [
        ("img_001_SRF_4_HR.png", "img_001"),
        ("baby_HR.png", "baby"),
        ("bird_GT.bmp", "bird"),
        ("0801x4.png", "0801"),
        ("0801.png", "0801"),
        ("img_001_SRF_4_LR.png", "img_001_SRF_4_LR"),
        ("matrix4.png", "matrix4"),
        ("_HR.png", "_HR"),
    ],
)
def test_release_suffixes_are_stripped_from_image_names(file: str, name: str) -> None:
    assert image_name(Path(file)) == name


def test_a_set_of_release_names_is_prepared_and_evaluated_under_clean_names(
    tmp_path: Path, rng
) -> None:
    folder = tmp_path / "HR"
    folder.mkdir()
    for file in ("img_001_SRF_4_HR.png", "baby_HR.png", "0801x4.png"):
        write_png(folder / file, rng.integers(0, 256, (48, 40, 3), dtype=np.uint8))
    prepared = prepare_set(list_images(folder), 4, tmp_path / "set", progress=False)
    assert sorted(p.name for p in (prepared / "HR").iterdir()) == [
        "0801.png",
        "baby.png",
        "img_001.png",
    ]
    manifest = pd.read_csv(prepared / "manifest.tsv", sep="\t", dtype=str)
    assert set(manifest.name) == {"0801", "baby", "img_001"}
    assert manifest.source.str.endswith("_HR.png").sum() == 2
    table = evaluate_set(
        "bicubic", prepared, 4, tmp_path / "e.tsv", model_name="b", set_name="s", progress=False
    )
    assert sorted(table.image) == ["0801", "baby", "img_001"]


def test_two_files_that_become_one_name_are_refused_naming_both(tmp_path: Path, rng) -> None:
    folder = tmp_path / "HR"
    folder.mkdir()
    for file in ("baby.png", "baby_HR.png", "bird.png"):
        write_png(folder / file, rng.integers(0, 256, (24, 24, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"share the name\(s\) \['baby'\].*baby.png.*baby_HR.png"):
        prepare_set(list_images(folder), 2, tmp_path / "set", progress=False)
    assert not (tmp_path / "set").exists()


# --- litesr evaluate MODEL... --sets DIR... -------------------------------------------------


def _tiny_model(path: Path, scale: int) -> Path:
    torch.manual_seed(0)
    args = {"scale": scale, "n_resblocks": 1, "n_feats": 8}
    save_model(build("edsr", **args), path, arch="edsr", args=args, meta={"method": "x"})
    return path


def _hr_folder(folder: Path, rng, names=("baby_HR.png", "bird_HR.png")) -> Path:
    folder.mkdir(parents=True)
    for name in names:
        write_png(folder / name, rng.integers(0, 256, (48, 40, 3), dtype=np.uint8))
    return folder


def test_names_of_sets_and_model_files_follow_their_folders() -> None:
    assert set_name("../shared/data/benchmark/Set5/x{scale}/HR") == "Set5"
    assert set_name("data/Urban100/GT") == "Urban100"
    assert set_name("photos") == "photos"
    assert file_model_name(Path("run/results/models/student/x4/model.safetensors")) == "student"
    assert file_model_name(Path("weights/edsr_x2.safetensors")) == "edsr_x2"


def test_evaluate_scores_model_files_and_bicubic_on_folders_of_hr_images(
    tmp_path: Path, rng, capsys
) -> None:
    """A ×2 model file, bicubic, one HR folder with release names, --scale 2 4: the file runs
    at ×2 only (said under the table), bicubic at both; the TSVs hold what the table shows."""
    model = _tiny_model(tmp_path / "results/models/mine/x2/model.safetensors", 2)
    folder = _hr_folder(tmp_path / "Set0" / "x{scale}", rng)
    (tmp_path / "Set0" / "x4").symlink_to(folder)
    (tmp_path / "Set0" / "x2").symlink_to(folder)
    args = [str(model), "bicubic", "--sets", str(folder), "--scale", "2", "4"]
    assert cli_main(["--quiet", "evaluate", *args, "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    per_image = pd.read_csv(tmp_path / "out" / "per_image.tsv", sep="\t")
    means = pd.read_csv(tmp_path / "out" / "mean.tsv", sep="\t")
    assert set(zip(per_image.model, per_image.scale, strict=True)) == {
        ("mine", 2),
        ("bicubic", 2),
        ("bicubic", 4),
    }
    assert set(per_image.image) == {"baby", "bird"} and set(per_image.set) == {"Set0"}
    assert len(means) == 3
    bicubic_x4 = means[(means.model == "bicubic") & (means.scale == 4)].psnr_y.item()
    assert f"{bicubic_x4:.2f}" in printed
    assert "– mine: not at ×4: the file is a ×2 model" in printed


def test_evaluate_refuses_what_it_cannot_run_in_one_line(tmp_path: Path, rng, capsys) -> None:
    folder = _hr_folder(tmp_path / "HR", rng)
    model = _tiny_model(tmp_path / "m.safetensors", 2)
    cases = [
        (["nothing.safetensors", "--sets", str(folder)], "nothing.safetensors: no such model"),
        (["dipnet", "--sets", str(folder)], "dipnet is a release: give the folder"),
        ([str(model), "--sets", str(folder), "--scale", "4"], "the file is a ×2 model; --scale"),
        ([str(model), "--sets", str(tmp_path / "none")], "image folder not found"),
        ([str(model), f"a={model}", "--sets", str(folder)], None),
        ([f"a={model}", f"a={model}", "--sets", str(folder)], "two models are named ['a']"),
        (["bicubic", "--sets", str(folder)], "bicubic alone: give its scales with --scale"),
        ([str(model), "--model", "bicubic", "--sets", str(folder)], "not both"),
        (["--model", "bicubic", "--scale", "2"], "--model needs --name --data --set"),
    ]
    for args, message in cases:
        code = cli_main(["--quiet", "evaluate", *args, "--out", str(tmp_path / "o")])
        err = capsys.readouterr().err
        if message is None:
            assert code == 0, err
        else:
            assert code == 1 and message in err and len(err.strip().splitlines()) == 1, err


def test_evaluate_keeps_the_workflow_s_form(tmp_path: Path, rng) -> None:
    prepared = prepare_set(
        list_images(_hr_folder(tmp_path / "HR", rng)), 2, tmp_path / "set", progress=False
    )
    args = ["--model", "bicubic", "--name", "b", "--data", str(prepared), "--set", "s"]
    out = tmp_path / "b.tsv"
    assert cli_main(["--quiet", "evaluate", *args, "--scale", "2", "--out", str(out)]) == 0
    table = pd.read_csv(out, sep="\t")
    assert list(table.model) == ["b", "b"] and set(table.scale) == {2}


@pytest.mark.shared_data
def test_evaluate_gives_the_reference_numbers_of_releases_on_set5(
    shared_data: Path, tmp_path: Path, capsys
) -> None:
    """The AIL VDSR-13 family and DIPNet on Set5's HR folders at ×2 and ×4: the reference
    README's numbers (test_authors' tolerance and convention gap), DIPNet absent at ×2."""
    folder = shared_data / "benchmark" / "Set5" / "x{scale}" / "HR"
    args = ["ail_vdsr13_ail", "dipnet", "--sets", str(folder), "--scale", "2", "4"]
    reference = ["--reference", str(shared_data / "reference"), "--out", str(tmp_path)]
    assert cli_main(["--quiet", "evaluate", *args, *reference]) == 0
    printed = capsys.readouterr().out
    means = pd.read_csv(tmp_path / "mean.tsv", sep="\t").set_index(["model", "scale"]).psnr_y
    expected = {  # the reference README; VDSR's may lie above it by the convention gap
        ("authors-ail_vdsr13_ail", 2): (37.36, 0.035),
        ("authors-ail_vdsr13_ail", 4): (31.01, 0.02),
        ("authors-dipnet", 4): (31.81, 0.0),
    }
    assert set(means.index) == set(expected)
    for key, (readme, gap) in expected.items():
        assert readme - 0.02 <= means[key] <= readme + 0.02 + gap, (key, means[key])
    assert "– authors-dipnet: not at ×2: the authors released it for ×4 only" in printed


# --- config/released.yaml for real (the closing test) -------------------------------


@pytest.mark.shared_data
@pytest.mark.slow
def test_a_config_of_releases_runs_end_to_end_to_the_readme_s_numbers(
    shared_data: Path, tmp_path: Path
) -> None:
    """config/released.yaml (releases alone, Set5 and Set14 HR folders, ×2 and ×4) with a
    mixed-scale list that a CPU runs in minutes, AIL's VDSR-13 (×2 and ×4) and DIPNet (×4
    only): it dry-runs, then runs to reports/all.pdf; Set5 gives the reference README's
    numbers (test_authors' tolerance and convention gap), and the accuracy table marks
    DIPNet's ×2 cells and says why."""
    from test_authors import CONVENTION_GAP, README, TOL
    from test_workflow import snakemake, workflow_copy

    wd = tmp_path / "litesr"
    wd.mkdir()
    workflow_copy(wd)
    (tmp_path / "shared").symlink_to(shared_data.parent)  # the config's ../shared/data
    config = yaml.safe_load((REPO / "config" / "released.yaml").read_text())
    config["methods"]["authors"]["releases"] = ["ail_vdsr13_ail", "dipnet"]
    (wd / "e2e.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    args = ["reports/all.pdf", "--configfile", "e2e.yaml"]
    dry = snakemake("-n", *args, cwd=wd)
    assert dry.returncode == 0 and "rule train:" not in dry.stdout, dry.stdout[-3000:]
    result = snakemake("--cores", "2", *args, cwd=wd, timeout=3600)
    assert result.returncode == 0, result.stdout[-5000:]

    summary = pd.read_csv(wd / "results/tables/psnr_ssim.tsv", sep="\t")
    cells = summary.set_index(["model", "set", "scale"]).psnr_y
    models = ("bicubic", "authors-ail_vdsr13_ail", "authors-dipnet")
    made = {(m, s) for m in models for s in (2, 4) if (m, s) != ("authors-dipnet", 2)}
    assert set(cells.index) == {(m, t, s) for m, s in made for t in ("Set5", "Set14")}
    expected = {
        ("authors-ail_vdsr13_ail", 2): ("ail_vdsr13_ail_x2", CONVENTION_GAP[2]),
        ("authors-ail_vdsr13_ail", 4): ("ail_vdsr13_ail_x4", CONVENTION_GAP[4]),
        ("authors-dipnet", 4): ("dipnet_x4", 0.0),
    }
    for (model, scale), (release, gap) in expected.items():
        psnr, readme = cells[model, "Set5", scale], README[release, scale]
        assert readme - TOL <= psnr <= readme + TOL + gap, (model, scale, psnr)
        for test_set in ("Set5", "Set14"):
            assert cells[model, test_set, scale] > cells["bicubic", test_set, scale] + 0.5
    assert "AUDIT PASSED" in (wd / "reports" / "audit.ipynb").read_text()
    from pypdf import PdfReader

    pdf = PdfReader(wd / "reports" / "all.pdf")
    text = " ".join(" ".join(page.extract_text() for page in pdf.pages).split())
    assert "not evaluated: authors-dipnet at ×2 (the authors released it for ×4 only)" in text
