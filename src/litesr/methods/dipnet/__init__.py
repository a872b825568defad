"""DIPNet: multi-stage boosting of a light network (Yu et al., CVPRW 2023), on the shared pieces.

Every row of the ablation is its own reported model (``<name>-<stage>``, one model file each):

1. the teacher (``teacher``) is a model of the config's ``models``, trained there with L1 by
   the shared ``train`` rule, or an imported release (``authors-<release>``, a converged
   network that costs no training). dipnet_cpu and dipnet_gpu use the EDSR of ``models``: the
   registry's strongest RGB network, which exposes its residual blocks' features for the
   anchors; dipnet_seeds_cpu uses NTIRE 2024's RLFN baseline. It is checked here to give
   block features and to have more parameters than the deployed student;
2. ``alone-s<k>``: the RRB student (``rlfn`` with ``rrb_expand``: every 3×3 conv of the blocks a
   :class:`~litesr.compress.reparam.RepBlock`) trained plainly with L1 on HR, once per seed
   (the seed spread the other stages are judged against); ``ehr``: the same budget and seed
   on the teacher's SR output ("enhanced HR"); ``anchors``: the same plus the multi-anchor
   feature loss (``pipeline.DistilTask``);
3. ``reparam``: every RRB merged into one 3×3 conv (same outputs, less time);
4. ``pruned``: rounds removing the 31.25 % lowest-L2 filters of ``prune.convs`` (c1_r, c2_r)
   of every block, each followed by a fine-tune, while the PSNR-Y on the validation crops
   (central LR crops of the training images: not held out, since the earlier stages trained
   on them; a drop there is what pruning costs) stays within ``prune.tolerance_db`` of the
   unpruned network's; the pruned widths are saved as ``rlfn``'s ``block_widths``. With
   ``prune.widths: latency`` each round's kept width is rounded to a width that is fast on
   the cost device (``cost.device`` cuda, else the CPU, at ``cost.threads``): oneDNN runs
   widths between multiples of its channel block alike (8 on a 2-core AVX2 CPU, where 38
   costs what 40 does and 26 what 32 does; ``litesr.measure.width_latency``,
   ``benchmarks/bench_widths.py``);
5. ``progressive``: a fine-tune with larger patches, then one with the L2 loss.

With ``stage_seeds`` N > 1 the chain of stages 2–5 after the student alone (``ehr`` →
``anchors`` → ``reparam`` → ``pruned`` → ``progressive``) is made once per seed: seed k ≥ 1
is ``<name>-<stage>-s<k>``, each of its recipes (distillation, pruning fine-tunes, progressive)
at the config's seed + k, each stage reading the same chain's previous one. A stage is then
judged chain by chain against the previous one (the student alone's seed k is chain k): the
mean of the per-chain differences against their max − min, not one model against a spread.

Fine-tunes (pruning, progressive) learn from ``target``: the teacher's output (``enhanced``,
as stage 2) or the HR patches. When the config imports the authors' ×4 weights (the
``authors`` method with release ``dipnet``), ``authors-dipnet`` joins the table and the
scatter as the official DIPNet; every other imported model joins them as a peer (the CPU and
GPU configs import NTIRE 2024's RLFN baseline and its winner SPAN).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litesr.methods.plan import Figure, MadeModel, Paths, Plan, Table, TrainedModel
from litesr.methods.registry import Method

__all__ = ["METHOD", "plan"]

FEATURE_ARCHS = ("edsr", "rlfn")
"""Registry architectures whose ``forward(x, return_features=True)`` gives block features."""


def _params(arch: str, args: dict[str, Any]) -> int:
    import torch  # not at module level (see litesr.methods.registry)

    from litesr.measure.cost import count_params
    from litesr.models import build

    with torch.device("meta"):
        return count_params(build(arch, scale=4, **args))


def official_model(config: dict[str, Any]) -> str | None:
    """The imported model of the DIPNet authors' release, where the config imports it."""
    from litesr.models.releases import imported  # imports torch: not at module level

    return next((name for name, rel in imported(config).items() if rel.paper == "DIPNet"), None)


def check_teacher(section: dict[str, Any], config: dict[str, Any], student: dict) -> str:
    """The teacher's model name, if it exists, gives block features and is larger than the
    deployed (merged) student."""
    from litesr.models.releases import arch_and_args  # imports torch: not at module level

    teacher = section["teacher"]
    found = arch_and_args(config, teacher)
    if found is None or found[0] not in FEATURE_ARCHS:
        raise ValueError(
            f"dipnet.teacher: {teacher!r} must name a model of `models` or of "
            f"methods.authors.releases with arch in {FEATURE_ARCHS} "
            f"(got {found[0] if found else 'no such model'})"
        )
    t_params = _params(*found)
    s_params = _params("rlfn", {**student, "rrb_expand": 0})
    if t_params <= s_params:
        raise ValueError(
            f"dipnet.teacher: {teacher!r} ({t_params:,} parameters) is not larger than the "
            f"student ({s_params:,})"
        )
    return teacher


def plan(section: dict[str, Any], config: dict[str, Any], paths: Paths) -> Plan:
    """The stage models, the ablation table and the scatter."""
    name = section.get("name", "dipnet")
    student = {**section["student"], "bias": False}
    teacher = check_teacher(section, config, student)
    seed = section["train"].get("seed", config.get("seed", 0))
    recipe = {**section["train"], "seed": seed}
    prune, prog = section["prune"], section["progressive"]
    if prog["patch"].get("lr_patch", 48) <= recipe.get("lr_patch", 48):
        raise ValueError("dipnet.progressive.patch.lr_patch must exceed dipnet.train.lr_patch")
    if prog["l2"].get("loss", "l2") != "l2":
        raise ValueError("dipnet.progressive.l2.loss must be l2 (the final L2 fine-tune)")
    fig_set = section.get("figure", {}).get("set", paths.test_sets[0])
    if fig_set not in paths.test_sets:
        raise ValueError(f"dipnet.figure.set: {fig_set!r} is not a test set {paths.test_sets}")
    official = official_model(config)
    target = section.get("target", "enhanced")
    rounding = {}
    if prune.get("widths", "exact") == "latency":
        from litesr.measure.width_latency import cost_target  # imports torch

        rounding = {"latency": cost_target(config.get("cost", {}))}
    size = student["feature_channels"]

    chains = section.get("stage_seeds", 1)

    def model(stage: str, k: int = 0) -> str:
        """The stage's model of chain ``k`` (chain 0 keeps the plain name)."""
        return f"{name}-{stage}" + (f"-s{k}" if k else "")

    def seeded(spec: dict[str, Any], k: int) -> dict[str, Any]:
        """A recipe at its seed + k."""
        return {**spec, "seed": spec["seed"] + k}

    trained = [
        TrainedModel(
            name=model(f"alone-s{k}"),
            arch="rlfn",
            args=student,
            train={**recipe, "seed": seed + k},
            meta={"method": "dipnet", "variant": "alone", "size": size, "seed": seed + k},
        )
        for k in range(section.get("seeds", 3))
    ]

    def chain(k: int) -> list[MadeModel]:
        """The stages after the student alone, made at seed + k."""
        common = {
            "student": student,
            "recipe": seeded(recipe, k),
            "anchor_weight": section.get("anchor_weight", 1.0),
        }
        return [
            MadeModel(
                model("ehr", k),
                "distil",
                {"teacher": teacher, "data": "@train"},
                {**common, "anchors": False, "variant": "ehr"},
            ),
            MadeModel(
                model("anchors", k),
                "distil",
                {"teacher": teacher, "data": "@train"},
                {**common, "anchors": True, "variant": "anchors"},
            ),
            MadeModel(model("reparam", k), "reparam", {"model": model("anchors", k)}, {}),
            MadeModel(
                model("pruned", k),
                "prune",
                {"model": model("reparam", k), "data": "@train", "teacher": teacher},
                {
                    "ratio": prune.get("ratio", 0.3125),
                    "convs": prune.get("convs", ["c1_r", "c2_r"]),
                    "tolerance_db": prune.get("tolerance_db", 0.1),
                    "max_rounds": prune["max_rounds"],
                    "min_rounds": prune.get("min_rounds", 1),
                    "recipe": seeded({"seed": seed, **prune["finetune"]}, k),
                    "target": target,
                    "val_crop": prune.get("val_crop", 48),
                    "val_images": prune.get("val_images", 16),
                    **rounding,
                },
            ),
            MadeModel(
                model("progressive", k),
                "progressive",
                {"model": model("pruned", k), "data": "@train", "teacher": teacher},
                {
                    "patch": seeded({"seed": seed, **prog["patch"]}, k),
                    "l2": seeded({"seed": seed, **prog["l2"], "loss": "l2"}, k),
                    "target": target,
                },
            ),
        ]

    made = [m for k in range(chains) for m in chain(k)]
    named = {"teacher": teacher, "official": official}
    if chains == 1:
        judged = (
            "Each row adds one stage; the student alone is the mean ± std of its seeds. PSNR-Y "
            "/ SSIM-Y per set and scale; cost from the cost table. A change counts as beyond "
            "the seed spread when it exceeds the max − min of the student-alone seeds in every "
            "set and scale."
        )
    else:
        judged = (
            f"Each row adds one stage; every stage is the mean ± std of its seeds ({chains} "
            "per stage after the student alone, each chain of stages at its own seed). PSNR-Y "
            "/ SSIM-Y per set and scale; cost from the cost table, the mean over seeds (params "
            "as a range where the pruned widths differ). Each stage is compared chain by "
            "chain with the previous one (the student alone's seed k is chain k): a change "
            "counts as beyond the seed spread when the mean of the per-chain differences "
            "exceeds their max − min in every set and scale (with unequal seed counts, the "
            "larger of the two stages' max − min)."
        )
    tables = [
        Table(
            title="DIPNet: ablation, one row per stage",
            kind="ablation",
            params=named,
            caption=f"{judged} The official DIPNet and the peers (other imported releases, "
            "named by paper) close the table.",
        )
    ]
    figures = [
        Figure(
            name=f"{name}_scatter",
            title="DIPNet: CPU latency against PSNR",
            kind="scatter",
            files={"summary": paths.summary, "cost": paths.cost, "catalog": paths.catalog},
            params={**named, "test_set": fig_set, "scale": paths.scales[-1]},
            caption=f"PSNR-Y on {fig_set} ×{paths.scales[-1]} against batch-1 CPU latency; "
            "a stage with several seeds as their mean (large) and each seed (small); peers "
            "(other imported releases) as diamonds; the dashed line joins the Pareto-optimal "
            "models (means for stages with several seeds).",
        )
    ]
    stages = ("ehr", "anchors", "reparam", "pruned", "progressive")
    roles = {stage: [model(stage, k) for k in range(chains)] for stage in stages}
    roles |= {
        "alone": [m.name for m in trained],
        "teacher": [teacher],
        **({"official": [official]} if official else {}),
    }
    return Plan(trained=trained, made=made, figures=figures, tables=tables, roles=roles)


METHOD = Method(
    name="dipnet",
    schema=Path(__file__).with_name("schema.yaml"),
    plan=plan,
    steps={
        "distil": "litesr.methods.dipnet.pipeline:distil",
        "reparam": "litesr.methods.dipnet.pipeline:reparam",
        "prune": "litesr.methods.dipnet.pipeline:prune",
        "progressive": "litesr.methods.dipnet.pipeline:progressive",
    },
    figures={"scatter": "litesr.methods.dipnet.report:scatter"},
    tables={"ablation": "litesr.methods.dipnet.report:ablation_table"},
    claims=Path(__file__).with_name("claims.yaml"),
)
