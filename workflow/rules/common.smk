"""Names, paths and small helpers shared by the rules."""

import json
import os

from litesr.methods.collect import collect, enabled
from litesr.methods.deviations import deviations_file
from litesr.methods.plan import Paths
from litesr.report.provenance import config_hash


DATA = config["data"]
SCALES = config["scales"]
# A config whose models all come from methods that train nothing has no training set.
TRAIN_SET = next(iter(DATA.get("train", {})), None)
TEST_SETS = list(DATA["test"])
SETS = {**DATA.get("train", {}), **DATA["test"]}
MODELS = list(config.get("models", {}))
PATHS = Paths(scales=SCALES, train_set=TRAIN_SET, test_sets=TEST_SETS)

# Every enabled method's config section is checked against its own schema (the main schema
# refers to the built-in ones), then every method is asked for its plan, before any rule
# is defined: the rules below only read PLAN.
for _name, _method in enabled(config).items():
    validate(config["methods"][_name], str(_method.schema))
PLAN = collect(config, PATHS)
DOWNLOAD_ROOT = DATA.get("download_root", "resources")
RES = config.get("resources", {})
CROP = config.get("report", {}).get("crop")


wildcard_constraints:
    scale=r"\d+",
    model=r"[A-Za-z0-9_-]+",
    set=r"[A-Za-z0-9_.-]+",
    dataset=r"[A-Za-z0-9_.-]+",


def to_json(value):
    """A value as one JSON argument; rules quote it with ``:q`` in their shell line.

    Params are functions of the wildcards only (never of ``input``/``output``): Snakemake
    records those, and reruns a job when one of them changes (``--rerun-triggers params``).
    """
    return json.dumps(value, sort_keys=True)


def recipe(model):
    """The model's training recipe, with the workflow seed unless it sets its own."""
    return {"seed": config.get("seed", 0), **PLAN.trained[model].train}


def name_pattern(names):
    """A wildcard constraint matching exactly ``names`` (nothing when there are none)."""
    return "|".join(names) or "(?!)"


def reported_models():
    """Every model evaluated, measured and reported: the config's, then the methods'."""
    return PLAN.reported


def evaluated():
    return ["bicubic", *reported_models()]


def model_scales(model):
    """The scales a model is made and evaluated at: every configured one, except for a model
    a method makes at some of them only (PLAN.absent says why)."""
    return SCALES if model == "bicubic" else PLAN.scales[model]


def absent_cells():
    """Each model missing at some configured scales: those scales and why (the report)."""
    return {
        m: {"scales": [s for s in SCALES if s not in PLAN.scales[m]], "why": why}
        for m, why in PLAN.absent.items()
    }


# Every path is spelled once, in litesr.methods.plan.Paths; rules name them through these.
set_dir = PATHS.data
model_file = PATHS.model
train_log = PATHS.train_log
SUMMARY, COST, CATALOG = PATHS.summary, PATHS.cost, PATHS.catalog
SCORECARD, AUDIT, REPORT = PATHS.scorecard, PATHS.audit, PATHS.report


def eval_tables(wildcards=None):
    return [
        PATHS.evaluation(m, s, t)
        for m in evaluated()
        for s in model_scales(m)
        for t in TEST_SETS
    ]


def sr_dirs(wildcards=None):
    """The SR image folders of eval_tables(), in the same order."""
    return [PATHS.sr(m, s, t) for m in evaluated() for s in model_scales(m) for t in TEST_SETS]


def all_model_files(wildcards=None):
    return [model_file(m, s) for m in reported_models() for s in model_scales(m)]


def model_names():
    """Names of all_model_files(), in the same order."""
    return [m for m in reported_models() for _ in model_scales(m)]


def train_logs(wildcards=None):
    return [train_log(m, s) for m in MODELS for s in SCALES]


def download_input(wildcards):
    """The downloaded dataset a set reads from, when the source is `download`."""
    if DATA["source"] != "download":
        return []
    return f"{DOWNLOAD_ROOT}/{SETS[wildcards.set]}"


def evaluated_model(wildcards):
    """The weights file of a model; bicubic has none."""
    return [] if wildcards.model == "bicubic" else model_file(wildcards.model, wildcards.scale)


CAPTIONS = {
    "psnr_vs_cost": "One point per model: higher and further left is better.",
    "training_curves": "Per-step training loss of the config's models.",
    "crops": "The same crop upscaled by bicubic and by each model, beside the HR image.",
}


def crop_models(scale):
    """The models of the crop figure at ``scale``: the config's trained models, or every
    reported model made at that scale where nothing is trained."""
    return MODELS or [m for m in reported_models() if int(scale) in model_scales(m)]


def report_figures(wildcards=None):
    """``[title, png, caption]`` of every figure of the PDF: the core's, then the methods'.
    A config that trains nothing has no training curves."""
    figures = [("PSNR against cost", PATHS.figure("psnr_vs_cost"), CAPTIONS["psnr_vs_cost"])]
    if MODELS:
        figures.append(
            ("Training curves", PATHS.figure("training_curves"), CAPTIONS["training_curves"])
        )
    if CROP:
        figures += [
            (f"Visual comparison ×{s}", PATHS.figure(f"crops_x{s}"), CAPTIONS["crops"])
            for s in SCALES
        ]
    return figures + [(f.title, PATHS.figure(f.name), f.caption) for _, f in PLAN.figures]


def report_tables():
    """``[title, method.kind, params, caption]`` of every method table."""
    return [[t.title, f"{m}.{t.kind}", t.params, t.caption] for m, t in PLAN.tables]


def deviation_files(wildcards=None):
    """The enabled methods' deviations.yaml files (the report renders them; editing one
    remakes the PDF)."""
    found = (deviations_file(m) for m in enabled(config).values())
    return [str(p) for p in found if p.is_file()]


def made_input(ref, scale):
    """One input of a method step: the training set, an outside file, or a model's weights."""
    if ref == "@train":
        return set_dir(TRAIN_SET, scale)
    if ref.startswith("file:"):
        return ref[len("file:") :].format(scale=scale)
    return model_file(ref, scale)


def made_inputs(w):
    """The files a method step reads (see litesr.methods.plan.MadeModel)."""
    _, model = PLAN.made[w.model]
    return {role: made_input(ref, w.scale) for role, ref in model.inputs.items()}


def made_spec(w):
    """The JSON spec of a method step: its params, its input files and its outputs."""
    method, model = PLAN.made[w.model]
    return {
        **model.params,
        **made_inputs(w),
        "scale": int(w.scale),
        "out": model_file(w.model, w.scale),
        "log": train_log(w.model, w.scale),
        "stages": PATHS.stages(w.model, w.scale),
        "device": config.get("device", "cpu"),
    }


METHOD_FIGURES = {figure.name: (method, figure) for method, figure in PLAN.figures}


def figure_of(w):
    return METHOD_FIGURES[w.figure][1]


def config_label():
    """The config's file name(s) and hash, as the scorecard names the run."""
    names = ", ".join(os.path.basename(f) for f in workflow.configfiles) or "--config"
    return f"{names} (sha256 {config_hash(config)[:12]})"
