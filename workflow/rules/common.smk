"""Names, paths and small helpers shared by the rules."""

import json
import os


DATA = config["data"]
SCALES = config["scales"]
TRAIN_SET = next(iter(DATA["train"]))
TEST_SETS = list(DATA["test"])
SETS = {**DATA["train"], **DATA["test"]}
MODELS = list(config["models"])
EVALUATED = ["bicubic", *MODELS]
DOWNLOAD_ROOT = DATA.get("download_root", "resources")
RES = config.get("resources", {})
CROP = config.get("report", {}).get("crop")


wildcard_constraints:
    scale=r"\d+",
    model=r"[A-Za-z0-9_-]+",
    set=r"[A-Za-z0-9_.-]+",
    dataset=r"[A-Za-z0-9_.-]+",


def as_json(value):
    """A value as a shell-quoted JSON argument."""
    return "'" + json.dumps(value).replace("'", "'\\''") + "'"


def recipe(model):
    """The model's training recipe, with the workflow seed unless it sets its own."""
    return {"seed": config.get("seed", 0), **config["models"][model]["train"]}


def set_dir(set_name, scale):
    return f"results/data/{set_name}/x{scale}"


def model_file(model, scale):
    return f"results/models/{model}/x{scale}/model.safetensors"


def eval_tables():
    return expand(
        "results/eval/{model}/x{scale}/{set}.tsv", model=EVALUATED, scale=SCALES, set=TEST_SETS
    )


def all_model_files():
    return expand("results/models/{model}/x{scale}/model.safetensors", model=MODELS, scale=SCALES)


def train_logs():
    return expand("results/models/{model}/x{scale}/train_log.tsv", model=MODELS, scale=SCALES)


def download_input(wildcards):
    """The downloaded dataset a set reads from, when the source is `download`."""
    if DATA["source"] != "download":
        return []
    return f"{DOWNLOAD_ROOT}/{SETS[wildcards.set]}"


def evaluated_model(wildcards):
    """The weights file of a model; bicubic has none."""
    return [] if wildcards.model == "bicubic" else model_file(wildcards.model, wildcards.scale)


def report_figures(wildcards=None):
    figures = [
        ("PSNR against cost", "results/figures/psnr_vs_cost.png"),
        ("Training curves", "results/figures/training_curves.png"),
    ]
    if CROP:
        figures += [(f"Visual comparison ×{s}", f"results/figures/crops_x{s}.png") for s in SCALES]
    return figures

