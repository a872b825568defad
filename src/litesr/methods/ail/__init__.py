"""AIL: adaptive importance learning (Zhang et al., IJCV 2020), on the shared pieces.

For every student width and scale, a plainly pre-trained VDSR student is the common start
of the variants: ``ail-w<W>-pretrain``, made by the shared ``train`` rule from ``pretrain``,
or the existing model named by ``start`` (e.g. the authors' ``authors-ail_vdsr13_plain``).
Each variant is trained for the same rounds and steps (equal budget), on the same fixed
patch set when ``patches`` is given (the teacher's outputs then computed once per patch):

- ``plain``: every pixel has weight 1;
- ``ail``: teacher-initialised importance, then the growing λ_r (see ``importance``);
- ``noteacher``: the ablation whose initial importance is the constant ``uniform_init``
  (the authors' code has no such variant; the constant is our choice).

With ``seeds``, every variant is trained once per seed (each seed on its own patch set); the
table and the scorecard average over the seeds and show their spread. With ``ladder``, the
plain and AIL students of the figures' width are also trained with more steps per round
(``ail-w<W>-<variant>-r<steps>``), to show how both gains move with the budget.

Schedule in the authors' code: 10 rounds × 50 epochs, SGD (momentum 0.9, weight decay
1e-4), lr 0.1 ÷ 10 every 10 epochs and reset each round, gradient-norm clip 0.4.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litesr.methods.plan import Figure, MadeModel, Paths, Plan, Table, TrainedModel
from litesr.methods.registry import Method, lazy_exports
from litesr.train.spec import TrainSpec

__all__ = ["METHOD", "VARIANTS", "AILTask", "Importance", "round_files", "train_rounds"]
__getattr__ = lazy_exports(
    __name__,
    {
        "VARIANTS": "litesr.methods.ail.importance",
        "AILTask": "litesr.methods.ail.importance",
        "Importance": "litesr.methods.ail.importance",
        "round_files": "litesr.methods.ail.rounds",
        "train_rounds": "litesr.methods.ail.rounds",
    },
)


def student(width: int, variant: str, seed: int | None = None) -> str:
    """The model name of a student; ``seed`` for a seed after the first."""
    return f"ail-w{width}-{variant}" + ("" if seed is None else f"-s{seed}")


def vdsr_args(config: dict[str, Any], key: str, name: str) -> dict[str, Any]:
    """The args of the vdsr model ``name`` (of ``models`` or an imported authors' model); a
    ValueError naming ``key`` otherwise."""
    from litesr.models.releases import arch_and_args  # imports torch: not at module level

    found = arch_and_args(config, name)
    if found is None or found[0] != "vdsr":
        raise ValueError(
            f"{key}: {name!r} must name a vdsr model of `models` or of methods.authors.releases "
            f"(got {found[0] if found else 'no such model'})"
        )
    return {"width": 64, "depth": 20, **found[1]}  # VDSR's defaults, then the model's args


def scaled_round(recipe: dict[str, Any], steps: int) -> dict[str, Any]:
    """The round ``recipe`` stretched to ``steps`` steps: its milestones and checkpoint
    interval scaled alike, so that every rung divides the rate at the same fractions."""
    factor = steps / recipe["steps"]
    scaled = {**recipe, "steps": steps}
    if "milestones" in recipe:
        scaled["milestones"] = [round(m * factor) for m in recipe["milestones"]]
    if "checkpoint_every" in recipe:
        scaled["checkpoint_every"] = max(1, round(recipe["checkpoint_every"] * factor))
    return scaled


def plan(section: dict[str, Any], config: dict[str, Any], paths: Paths) -> Plan:
    """Pre-trained students (unless ``start`` names one), the variants' rounds, the figures
    and the table."""
    from litesr.methods.ail.importance import Importance  # imports torch: not at module level
    from litesr.methods.ail.patches import lr_side

    teacher, start = section["teacher"], section.get("start")
    depth = vdsr_args(config, "ail.teacher", teacher)["depth"]
    widths, variants, rounds = section["widths"], section["variants"], section["rounds"]
    if start is not None:
        if "pretrain" in section:
            raise ValueError("ail.pretrain: leave it out when ail.start names the starting model")
        width = vdsr_args(config, "ail.start", start)["width"]
        if widths != [width]:
            raise ValueError(
                f"ail.widths: {widths} must be [{width}], the width of ail.start {start!r}"
            )
    elif "pretrain" not in section:
        raise ValueError("ail.pretrain: required unless ail.start names the starting model")
    patches = section.get("patches")
    for scale in paths.scales if patches else ():
        lr_side(scale, TrainSpec.from_dict(section["round"]), patches.get("hr_patch"))
    Importance.from_dict(section.get("importance", {}))
    maps = section["maps"]
    width0, scale0 = maps.get("width", widths[0]), paths.scales[0]
    if width0 not in widths:
        raise ValueError(f"ail.maps.width: {width0} is not one of ail.widths {widths}")
    if maps["set"] not in paths.test_sets:
        raise ValueError(f"ail.maps.set: {maps['set']!r} is not a test set {paths.test_sets}")

    trained = [
        TrainedModel(
            name=student(w, "pretrain"),
            arch="vdsr",
            args={"width": w, "depth": depth},
            train=section["pretrain"],
            meta={"method": "ail", "variant": "pretrain", "size": w},
        )
        for w in widths
        if start is None
    ]
    seeds = section.get("seeds", [config.get("seed", 0)])

    def names(width: int, variant: str) -> list[str]:
        """The students of every seed; the first seed's keeps the plain name."""
        return [student(width, variant, s if i else None) for i, s in enumerate(seeds)]

    def rounds_model(name: str, width: int, variant: str, i: int, recipe: dict) -> MadeModel:
        """The rounds of one variant, trained with ``seeds[i]`` on the i-th patch set."""
        return MadeModel(
            name=name,
            step="rounds",
            inputs={
                "init": start or student(width, "pretrain"),
                "data": "@train",
                **({"teacher": teacher} if variant == "ail" else {}),
            },
            params={
                "variant": variant,
                "rounds": rounds,
                "recipe": {"seed": seeds[i], **recipe},
                "importance": section.get("importance", {}),
                "size": width,
                **({"patches": {**patches, "seed": patches.get("seed", 0) + i}} if patches else {}),
            },
        )

    made = [
        rounds_model(names(w, v)[i], w, v, i, section["round"])
        for w in widths
        for v in variants
        for i in range(len(seeds))
    ]
    compared = [v for v in ("plain", "ail") if v in variants]
    rungs = {section["round"]["steps"]: {v: names(width0, v) for v in compared}}
    for rung in section.get("ladder", []):
        steps, picked = rung["steps"], rung.get("seeds", seeds)
        if steps in rungs:
            raise ValueError(f"ail.ladder: {steps} steps per round is already a rung")
        if not set(picked) <= set(seeds):
            raise ValueError(f"ail.ladder: seeds {picked} must be among ail.seeds {seeds}")
        indices = sorted(seeds.index(s) for s in picked)
        rungs[steps] = {
            v: [f"{student(width0, v)}-r{steps}" + (f"-s{seeds[i]}" if i else "") for i in indices]
            for v in compared
        }
        recipe = scaled_round(section["round"], steps)
        made += [
            rounds_model(name, width0, v, i, recipe)
            for v in compared
            for name, i in zip(rungs[steps][v], indices, strict=True)
        ]
    on_ladder = [m for rung in list(rungs.values())[1:] for group in rung.values() for m in group]
    maps_student = student(width0, "ail")
    figures = [
        Figure(
            name="ail_importance",
            title="AIL: importance maps over rounds",
            kind="importance",
            files={
                "teacher": paths.model(teacher, scale0),
                "student": paths.model(maps_student, scale0),
                "data": paths.data(maps["set"], scale0),
            },
            params={
                "stages": paths.stages(maps_student, scale0),
                "rounds": rounds,
                "image": maps["image"],
                "scale": scale0,
                "importance": section.get("importance", {}),
            },
            caption=f"Importance w of the width-{width0} AIL student on {maps['image']} "
            f"(×{scale0}) at the start of rounds (six at most): bright pixels weigh more. "
            "Round 0 is the teacher term alone; later rounds add the easy pixels of the student "
            "itself.",
        ),
        Figure(
            name="ail_rounds",
            title="AIL: training per round",
            kind="rounds",
            files={"logs": [paths.train_log(student(width0, v), scale0) for v in variants]},
            params={"labels": [f"w{width0} {v}" for v in variants]},
            caption="Loss and mean importance over all rounds; dotted lines mark where a round "
            "restarts the learning-rate schedule.",
        ),
        Figure(
            name="ail_width",
            title="AIL: PSNR against student size",
            kind="width",
            files={"summary": paths.summary, "cost": paths.cost, "catalog": paths.catalog},
            params={"teacher": teacher, **({"exclude": on_ladder} if on_ladder else {})},
            caption="PSNR of each variant against student parameters; the dashed line is the "
            "teacher, the dotted one marks 25 % of its parameters.",
        ),
    ]
    tables = [
        Table(
            title="AIL: teacher, plain and AIL students",
            kind="table",
            params={
                "teacher": teacher,
                **({"start": start} if start else {}),
                **({"exclude": on_ladder} if on_ladder else {}),
            },
            caption="Plain and AIL students trained from the pre-trained one at equal budget. "
            "Gain AIL − pretrained is the authors' protocol (it includes the extra training of "
            "the rounds); gain AIL − plain is ours, at equal budget (stricter). Where the "
            "authors' students are imported, their own AIL − pretrained gain is shown too.",
        )
    ]
    if on_ladder:
        ladder = {
            "rungs": [[steps, groups] for steps, groups in rungs.items()],
            "start": start or student(width0, "pretrain"),
        }
        figures.append(
            Figure(
                name="ail_ladder",
                title="AIL: gains against steps per round",
                kind="ladder",
                files={"summary": paths.summary},
                params=ladder,
                caption="Gain of the AIL student over its start (the authors' protocol) and over "
                "plain rounds at equal budget, against the steps of each of the rounds; dots are "
                "seeds, lines their means. The dashed line is the authors' own AIL − start, "
                "measured on their released weights where they are imported.",
            )
        )
        tables.append(
            Table(
                title="AIL: the budget ladder",
                kind="ladder",
                params=ladder,
                caption="Each rung trains the same rounds from the same start with more steps "
                "per round (milestones scaled alike). Gains are means over the rung's seeds, in "
                "dB; spread is the largest minus the smallest AIL − plain over seeds.",
            )
        )
    roles = {v: names(width0, v) for v in variants}
    roles |= {"pretrain": [start or student(width0, "pretrain")], "teacher": [teacher]}
    teacher_width = vdsr_args(config, "ail.teacher", teacher)["width"]
    if "ail" in variants and teacher_width // 2 in widths:
        roles["quarter"] = names(teacher_width // 2, "ail")
    return Plan(trained=trained, made=made, figures=figures, tables=tables, roles=roles)


METHOD = Method(
    name="ail",
    schema=Path(__file__).with_name("schema.yaml"),
    plan=plan,
    steps={"rounds": "litesr.methods.ail.rounds:train_rounds"},
    figures={
        "importance": "litesr.methods.ail.report:importance_maps",
        "rounds": "litesr.methods.ail.report:round_curves",
        "width": "litesr.methods.ail.report:width_figure",
        "ladder": "litesr.methods.ail.report:ladder_figure",
    },
    tables={
        "table": "litesr.methods.ail.report:ail_table",
        "ladder": "litesr.methods.ail.report:ladder_table",
    },
    claims=Path(__file__).with_name("claims.yaml"),
)
