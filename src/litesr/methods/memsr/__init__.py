"""MemSR (Wu, Lee, Ma, ICML 2022): plain networks for memory-lean SR, on the shared pieces.

From an EDSR teacher of ``models``, per scale:

- ``memsr-plain-teacher``: the teacher's exact plain form (``convert``; see ``convert.py``);
- per student shape of ``students`` (prefix ``memsr-authors``: the authors' student, one
  layer per teacher feature at the teacher's width with its activations, a constant channel
  and its upsampler; prefix ``memsr-w<W>``: litesr's narrower student of width W, see
  ``init``):

  - ``<prefix>-memsr-init`` / ``<prefix>-random-init``: the plain student right after the
    MemSR (SVD) initialisation / a He initialisation of the same architecture, untrained
    (``init``): initialisation quality as a number;
  - ``<prefix>-memsr``: that student trained with init-aware distillation (``student``; see
    ``task``); ``<prefix>-random``: the random one trained on L1 alone;
  - ``<prefix>-residual``: an EDSR of the student's width and the teacher's depth, trained
    plainly;

all trained students with the same recipe (equal budget), once per seed of ``seeds`` (the
first seed's keep the plain names, the others' end in ``-s<seed>``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litesr.methods.plan import Figure, MadeModel, Paths, Plan, Table, TrainedModel
from litesr.methods.registry import Method, lazy_exports

__all__ = ["METHOD", "DistillWeight", "MemSRTask", "authors_init", "width_init"]
__getattr__ = lazy_exports(
    __name__,
    {
        "DistillWeight": "litesr.methods.memsr.task",
        "MemSRTask": "litesr.methods.memsr.task",
        "authors_init": "litesr.methods.memsr.init",
        "width_init": "litesr.methods.memsr.init",
    },
)

PLAIN_TEACHER = "memsr-plain-teacher"
VARIANTS = ("memsr-init", "random-init", "memsr", "random", "residual")


def prefix(shape: str, width: int) -> str:
    """The model names' prefix of a student shape, and its variants' (metadata) prefix."""
    return "memsr-authors" if shape == "authors" else f"memsr-w{width}"


def variant(shape: str, name: str) -> str:
    """A variant as the model's metadata names it: the width shape's start with ``width-``."""
    return name if shape == "authors" else f"width-{name}"


def plan(section: dict[str, Any], config: dict[str, Any], paths: Paths) -> Plan:
    """The plain teacher, per student shape the students at initialisation and trained (per
    seed) and the residual baseline, the table and (given a TSV) the memory figure."""
    teacher = section["teacher"]
    spec = config["models"].get(teacher)
    if spec is None or spec["arch"] != "edsr":
        raise ValueError(
            f"memsr.teacher: {teacher!r} must name an edsr model of `models` "
            f"(got {spec['arch'] if spec else 'no such model'})"
        )
    shapes = section.get("students", ["authors"])
    if "width" in shapes and "width" not in section:
        raise ValueError("memsr.width: the `width` student needs a width")
    args = spec.get("args", {})
    depth, teacher_width = args.get("n_resblocks", 16), args.get("n_feats", 64)
    auto = section.get("rank_rule", "fixed") == "auto"
    seeds = section.get("seeds", [config.get("seed", 0)])
    made = [
        MadeModel(
            name=PLAIN_TEACHER,
            step="convert",
            inputs={"teacher": teacher, "data": "@train"},
            params={"offset": section.get("offset", "auto")},
        )
    ]
    trained, roles = [], {"teacher": [teacher], "plain-teacher": [PLAIN_TEACHER]}
    for shape in shapes:
        width = teacher_width if shape == "authors" else section["width"]
        rank = "auto" if auto else (None if shape == "authors" else width)
        common = {
            "shape": shape,
            "rank": rank,
            "eps": section.get("eps", 5e-2),
            "solve": section.get("solve", "weights"),
            "size": width,
        }
        pre = prefix(shape, width)

        def names(name: str, pre: str = pre) -> list[str]:
            return [f"{pre}-{name}" + (f"-s{s}" if i else "") for i, s in enumerate(seeds)]

        made.append(
            MadeModel(
                name=f"{pre}-memsr-init",
                step="init",
                inputs={"teacher": PLAIN_TEACHER, "data": "@train"},
                params={**common, "init": "memsr"},
            )
        )
        for i, seed in enumerate(seeds):
            recipe = {"seed": seed, **section["train"]}
            starts = {"memsr": f"{pre}-memsr-init", "random": names("random-init")[i]}
            made += [
                MadeModel(
                    name=names("random-init")[i],
                    step="init",
                    inputs={"teacher": PLAIN_TEACHER, "data": "@train"},
                    params={**common, "init": "random", "seed": seed},
                ),
            ] + [
                MadeModel(
                    name=names(init)[i],
                    step="student",
                    inputs={
                        "teacher": PLAIN_TEACHER,
                        "start": starts[init],
                        "data": "@train",
                    },
                    params={
                        **common,
                        "init": init,
                        "recipe": recipe,
                        "distill": section.get("distill", {}),
                    },
                )
                for init in ("memsr", "random")
            ]
            trained.append(
                TrainedModel(
                    name=names("residual")[i],
                    arch="edsr",
                    args={"n_resblocks": depth, "n_feats": width},
                    train=recipe,
                    meta={"method": "memsr", "variant": variant(shape, "residual"), "size": width},
                )
            )
        lead = "" if shape == "authors" else "width-"
        roles |= {f"{lead}{v}": names(v) for v in VARIANTS}
        roles[f"{lead}memsr-init"] = [f"{pre}-memsr-init"]
    figures = []
    if "memory" in section:
        figures.append(
            Figure(
                name="memsr_memory",
                title="MemSR: peak inference memory against output size",
                kind="memory",
                files={"table": section["memory"]},
                caption="Peak CPU inference memory (RSS of a fresh process, less its baseline) "
                "against output megapixels; dashed: the floor of two activation maps of the "
                "plain student.",
            )
        )
    tables = [
        Table(
            title="MemSR: plain teacher and students at equal budget",
            kind="table",
            params={"teacher": teacher, "plain_teacher": PLAIN_TEACHER},
            caption="PSNR / SSIM (Y), parameters, CPU inference memory and latency (cost "
            "table). 'at initialisation' rows are the students before any training; the gain "
            "rows are MemSR − random initialisation, before and after training. With several "
            "seeds a cell is their mean and (spread) their max − min.",
        )
    ]
    return Plan(trained=trained, made=made, figures=figures, tables=tables, roles=roles)


METHOD = Method(
    name="memsr",
    schema=Path(__file__).with_name("schema.yaml"),
    plan=plan,
    steps={
        "convert": "litesr.methods.memsr.steps:convert_teacher",
        "init": "litesr.methods.memsr.steps:init_student",
        "student": "litesr.methods.memsr.steps:train_student",
    },
    figures={"memory": "litesr.methods.memsr.report:memory_figure"},
    tables={"table": "litesr.methods.memsr.report:memsr_table"},
    claims=Path(__file__).with_name("claims.yaml"),
)
