"""Names, paths and small helpers shared by the rules."""

import json
import os


DATA = config["data"]
SCALES = config["scales"]
TRAIN_SET = next(iter(DATA["train"]))
TEST_SETS = list(DATA["test"])
SETS = {**DATA["train"], **DATA["test"]}
MODELS = list(config["models"])
# Models the `train` rule can make (methods add their plainly pre-trained starting points),
# models a method makes from others, and the figures and tables methods add to the report.
MODEL_SPECS = dict(config["models"])
METHOD_MODELS = []
METHOD_FIGURES = []
METHOD_TABLES = []
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
    return with_seed(MODEL_SPECS[model]["train"])


def with_seed(train):
    """A training recipe with the workflow seed unless it sets its own."""
    return {"seed": config.get("seed", 0), **train}


def reported_models():
    """Every model evaluated, measured and reported: the config's, then the methods'."""
    return [*MODELS, *METHOD_MODELS]


def evaluated():
    return ["bicubic", *reported_models()]


def set_dir(set_name, scale):
    return f"results/data/{set_name}/x{scale}"


def model_file(model, scale):
    return f"results/models/{model}/x{scale}/model.safetensors"


def eval_tables(wildcards=None):
    return expand(
        "results/eval/{model}/x{scale}/{set}.tsv", model=evaluated(), scale=SCALES, set=TEST_SETS
    )


def all_model_files(wildcards=None):
    return expand(
        "results/models/{model}/x{scale}/model.safetensors",
        model=reported_models(),
        scale=SCALES,
    )


def model_names():
    """Names of all_model_files(), in the same order."""
    return [m for m in reported_models() for _ in SCALES]


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
    return figures + METHOD_FIGURES

