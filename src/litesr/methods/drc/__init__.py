"""DRC: dual regression compression (Guo et al.), on the shared pieces.

An EDSR primal is trained twice at equal budget: plainly (``drc.primal``, a model of
``models`` made by the shared ``train`` rule) and with dual regression (``drc-primal``, the
same arch, args, recipe and seed with ``L1 + λ · L1(D(P(x)), x)``; its dual network D is saved
in its file). The dual-trained primal is compressed at every ratio by DRC (``drc-r<100·ratio>``:
channel-number search, greedy block-by-block channel selection with the frozen D, fine-tuning
with distillation) and by the L1-norm baseline (``drc-l1-r<100·ratio>-s<seed>``: uniform
widths, the same fine-tuning) for each baseline seed. With ``drc.widths: latency`` the search's
candidate widths (and so the baseline's uniform width, the largest) are rounded to widths that
are fast on the cost device (:func:`litesr.measure.width_latency.fast_width`). See
:mod:`litesr.methods.drc.pipeline`;
:file:`deviations.yaml` lists every difference from the authors' code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litesr.methods.plan import Figure, MadeModel, Paths, Plan, Table, TrainedModel
from litesr.methods.registry import Method, lazy_exports

__all__ = ["METHOD", "DualNet", "DualTask", "SearchTask", "candidate_widths"]
__getattr__ = lazy_exports(
    __name__,
    {
        "DualNet": "litesr.methods.drc.dual",
        "DualTask": "litesr.methods.drc.dual",
        "SearchTask": "litesr.methods.drc.search",
        "candidate_widths": "litesr.methods.drc.search",
    },
)

PRIMAL = "drc-primal"


def tag(ratio: float) -> str:
    """``r30`` for ratio 0.3 (model names hold no dots)."""
    return f"r{round(ratio * 100)}"


def drc_name(ratio: float) -> str:
    return f"drc-{tag(ratio)}"


def l1_name(ratio: float, seed: int) -> str:
    return f"drc-l1-{tag(ratio)}-s{seed}"


def plan(section: dict[str, Any], config: dict[str, Any], paths: Paths) -> Plan:
    """Both primals, the DRC and L1 models of every ratio, the widths figure and the table."""
    ratios = section["ratios"]
    if len({tag(r) for r in ratios}) != len(ratios):
        raise ValueError(f"drc.ratios: {ratios} name the same model (ratios are kept to 1 %)")
    seed = config.get("seed", 0)
    lam, distill = section.get("lam", 0.1), section.get("distill", 1.0)
    seeds = section.get("baseline_seeds", [0, 1, 2])
    common = {"lam": lam, "distill": distill, "finetune": section.get("finetune")}
    common |= latency_rounding(section, config)
    made, trained, primals = primal_models(section, config, seed, lam)
    inputs = {"primal": PRIMAL, "data": "@train"}
    for ratio in ratios:
        params = {
            "ratio": ratio,
            "search": section["search"],
            "alpha": section.get("alpha", {}),
            "selection": section.get("selection", {}),
            "seed": seed,
        }
        made.append(MadeModel(drc_name(ratio), "drc", {**inputs}, {**params, **common}))
        made += [
            MadeModel(l1_name(ratio, s), "l1", {**inputs}, {"ratio": ratio, "seed": s, **common})
            for s in seeds
        ]
    made += diagnostic_models(section, inputs, common, seed)
    scale0 = paths.scales[0]
    figures = [
        Figure(
            name="drc_widths",
            title="DRC: searched per-layer widths",
            kind="widths",
            files={
                "models": [paths.model(drc_name(r), scale0) for r in ratios],
                "primal": paths.model(PRIMAL, scale0),
            },
            caption=f"Inner width of every residual block after DRC (×{scale0}; left, solid, "
            "from each model file's metadata) against the uniform width of the same ratio "
            "(dashed; the L1 baseline's, the largest search candidate), as a fraction of the "
            "full width. Right: the authors' searched widths of DRN-S ×4 (their released "
            "search_x4p0{3,5,7}.txt, 30 blocks per level), with their uniform widths.",
        ),
        Figure(
            name="drc_alpha",
            title="DRC: the channel-number search, softmax(α) per layer",
            kind="alpha",
            files={"logs": [paths.train_log(drc_name(r), scale0) for r in ratios]},
            caption="softmax(α) of every searched layer (one panel per residual block, one "
            "line per candidate width) over the search steps, one row per ratio. α starts "
            "at 1e-3 · N(0, 1) (uniform) and has its own learning rate (by default the "
            "authors' travel: lr × steps = 0.75).",
        ),
    ]
    if not ratios:  # the primals only: nothing searched
        figures = []
    tables = [
        Table(
            title="DRC: pruned primals against the unpruned ones and L1-norm pruning",
            kind="table",
            params={"primal": section["primal"], "seeds": len(seeds)},
            caption="PSNR-Y / SSIM-Y per set and scale, parameters, MACs (720p output) and CPU "
            "latency. Ratio r removes the fraction r of every residual block's inner channels "
            "(its first conv's outputs); the residual stream, head and upsampler keep theirs, "
            "so the parameters and MACs removed (params_cut, MACs_cut, against the dual-trained "
            "primal) are smaller than r. The L1 row is the mean over the baseline seeds; its "
            "spread is max − min PSNR over the seeds. DRC − L1 is a win only where it exceeds "
            "that spread.",
        )
    ]
    roles = dict(primals)
    for ratio in ratios:
        roles[f"drc-{tag(ratio)}"] = [drc_name(ratio)]
        roles[f"l1-{tag(ratio)}"] = [l1_name(ratio, s) for s in seeds]
    for ratio in section.get("diagnostic", {}).get("ratios", []):
        tables.append(
            Table(
                title=f"DRC: which channels to keep, at equal widths (r = {ratio:g})",
                kind="diagnostic",
                params={"ratio": ratio},
                caption="Every block pruned to the same uniform width by each selection, "
                "scored right after pruning and after the same fine-tuning (DRC's recipe and "
                "objective). drc: the greedy selection with the primal's dual; drc-nodual: "
                "the same with λ = 0 in its loss; drc-legacy: this port's earlier selection "
                "(one batch per pass, 4 channels per pick, no re-fit, [0, 1] units, a fresh "
                "dual); random and l1 over seeds (mean, spread max − min in brackets; the "
                "tuned l1 models are the baseline's). A gap between selections is shown only "
                "where it exceeds the spread.",
            )
        )
        for criterion, arms in diagnostic_arms(section, ratio).items():
            roles[f"x{tag(ratio)}-{criterion}-pruned"] = arms["pruned"]
            roles[f"x{tag(ratio)}-{criterion}-tuned"] = arms["tuned"]
    return Plan(made=made, trained=trained, figures=figures, tables=tables, roles=roles)


def latency_rounding(section: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """The compression steps' ``latency`` parameter (the cost device and threads) where
    ``drc.widths`` is ``latency``; nothing where it is ``exact`` (the default)."""
    if section.get("widths", "exact") != "latency":
        return {}
    from litesr.measure.width_latency import cost_target  # imports torch

    return {"latency": cost_target(config.get("cost", {}))}


def primal_models(
    section: dict[str, Any], config: dict[str, Any], seed: int, lam: float
) -> tuple[list[MadeModel], list[TrainedModel], dict[str, list[str]]]:
    """The dual primal every compression starts from, and the roles ``primal`` / ``dual``.

    ``drc.primal`` names either an unpruned EDSR model of ``models`` (trained plainly by the
    shared rule; ``drc-primal`` is the same trained with dual regression, and
    ``primal_seeds`` adds seeds of both) or a model the ``authors`` method imports (EDSR or
    RLFN, converged: ``drc-primal`` is it, frozen, with a dual network fitted to it for
    ``dual_fit``; no plain-vs-dual comparison)."""
    from litesr.models.releases import imported  # imports torch

    name, dual = section["primal"], section.get("dual", {})
    release = imported(config).get(name)
    if release is not None:
        if release.arch not in ("edsr", "rlfn") or "block_widths" in release.args:
            raise ValueError(f"drc.primal: {name!r} is a {release.arch}; DRC prunes edsr or rlfn")
        if "dual_fit" not in section or section.get("primal_seeds"):
            raise ValueError(
                f"drc: the imported primal {name!r} needs `dual_fit` (no primal_seeds)"
            )
        params = {"recipe": {"seed": seed, **section["dual_fit"]}, "dual": dual, "lam": lam}
        fitted = MadeModel(PRIMAL, "fit_dual", {"primal": name, "data": "@train"}, params)
        return [fitted], [], {"dual": [PRIMAL]}
    spec = config["models"].get(name)
    if spec is None or spec["arch"] != "edsr":
        raise ValueError(
            f"drc.primal: {name!r} must name an edsr model of `models` or an imported model "
            f"(got {spec['arch'] if spec else 'no such model'})"
        )
    args = spec.get("args", {})
    if "block_widths" in args:
        raise ValueError("drc.primal: the primal must be unpruned; its args set block_widths")
    extra = section.get("primal_seeds", [])
    if seed in extra:
        raise ValueError(f"drc.primal_seeds: {seed} is the workflow seed, already trained")
    made, trained = [], []
    for s in [seed, *extra]:
        recipe = {**spec["train"], "seed": s} if s != seed else {"seed": seed, **spec["train"]}
        params = {"arch": "edsr", "args": args, "recipe": recipe, "dual": dual, "lam": lam}
        made.append(
            MadeModel(
                PRIMAL if s == seed else f"{PRIMAL}-s{s}", "primal", {"data": "@train"}, params
            )
        )
        if s != seed:
            trained.append(
                TrainedModel(
                    name=f"{name}-s{s}",
                    arch="edsr",
                    args=args,
                    train=recipe,
                    meta={"method": "drc", "variant": "nodual", "size": 0.0},
                )
            )
    roles = {
        "primal": [name, *(f"{name}-s{x}" for x in extra)],
        "dual": [PRIMAL, *(f"{PRIMAL}-s{x}" for x in extra)],
    }
    return made, trained, roles


CRITERIA = ("l1", "random", "drc", "drc-nodual", "drc-legacy")
"""Channel selections the diagnostic compares: filter L1 norm, uniformly random, DRC's greedy
selection, the same without the dual term (λ = 0 in its loss), and the selection as this port
made it before it followed the authors' code (``pipeline.LEGACY``)."""


def diagnostic_arms(section: dict[str, Any], ratio: float) -> dict[str, dict[str, list[str]]]:
    """Model names of each selection of the diagnostic at ``ratio``: pruned, then fine-tuned.
    L1 selection is deterministic (one pruned model) and its tuned models are the baseline's
    at that ratio; random draws one selection per seed; DRC's selections run once, with the
    workflow seed."""
    diagnostic = section["diagnostic"]
    if tag(ratio) not in {tag(r) for r in section["ratios"]}:
        raise ValueError(f"drc.diagnostic.ratios: {ratio} must be one of drc.ratios")
    seeds = section.get("baseline_seeds", [0, 1, 2])
    random_seeds = diagnostic.get("seeds", seeds)
    base = f"drc-x{tag(ratio)}"
    arms = {}
    for criterion in diagnostic.get("criteria", CRITERIA):
        if criterion == "l1":
            arms[criterion] = {
                "pruned": [f"{base}-l1"],
                "tuned": [l1_name(ratio, s) for s in seeds],
            }
        elif criterion == "random":
            arms[criterion] = {
                "pruned": [f"{base}-random-s{s}" for s in random_seeds],
                "tuned": [f"{base}-random-s{s}-ft" for s in random_seeds],
            }
        else:
            arms[criterion] = {
                "pruned": [f"{base}-{criterion}"],
                "tuned": [f"{base}-{criterion}-ft"],
            }
    return arms


def diagnostic_models(
    section: dict[str, Any], inputs: dict[str, str], common: dict[str, Any], seed: int
) -> list[MadeModel]:
    """The diagnostic's pruned and fine-tuned models (none without ``drc.diagnostic``)."""
    made = []
    diagnostic = section.get("diagnostic", {})
    random_seeds = diagnostic.get("seeds", section.get("baseline_seeds", [0, 1, 2]))
    for ratio in diagnostic.get("ratios", []):
        for criterion, arm in diagnostic_arms(section, ratio).items():
            arm_seeds = random_seeds if criterion == "random" else [seed]
            for i, pruned in enumerate(arm["pruned"]):
                params = {
                    "ratio": ratio,
                    "criterion": criterion,
                    "selection": section.get("selection", {}),
                    "lam": common["lam"],
                    "distill": common["distill"],
                    "seed": arm_seeds[i],
                    **({"latency": common["latency"]} if "latency" in common else {}),
                }
                made.append(MadeModel(pruned, "select", {**inputs}, params))
                if criterion != "l1":
                    tuned = {"primal": PRIMAL, "pruned": pruned, "data": "@train"}
                    params = {"ratio": ratio, "seed": arm_seeds[i], **common}
                    made.append(MadeModel(arm["tuned"][i], "tune", tuned, params))
    return made


METHOD = Method(
    name="drc",
    schema=Path(__file__).with_name("schema.yaml"),
    plan=plan,
    steps={
        "primal": "litesr.methods.drc.pipeline:train_primal",
        "fit_dual": "litesr.methods.drc.pipeline:fit_dual",
        "drc": "litesr.methods.drc.pipeline:drc_compress",
        "l1": "litesr.methods.drc.pipeline:l1_compress",
        "select": "litesr.methods.drc.pipeline:select_uniform",
        "tune": "litesr.methods.drc.pipeline:tune_pruned",
    },
    figures={
        "widths": "litesr.methods.drc.report:widths_figure",
        "alpha": "litesr.methods.drc.report:alpha_figure",
    },
    tables={
        "table": "litesr.methods.drc.report:drc_table",
        "diagnostic": "litesr.methods.drc.report:diagnostic_table",
    },
    claims=Path(__file__).with_name("claims.yaml"),
)
