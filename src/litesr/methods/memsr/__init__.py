"""MemSR (Wu, Lee, Ma, ICML 2022): plain networks for memory-lean SR, on the shared pieces.

From an EDSR teacher of ``models``, per scale:

- ``memsr-plain-teacher``: the teacher's exact plain form (``convert``; see ``convert.py``);
- ``memsr-w<W>-memsr``: a plain student of width W (one hidden layer per body feature of the
  plain teacher, then conv + PixelShuffle), SVD / least-squares initialised from the plain
  teacher and trained with init-aware distillation (``student``; see ``init``, ``task``);
- ``memsr-w<W>-random``: the same student shape from random initialisation, L1 alone;
- ``memsr-w<W>-residual``: an EDSR of width W and the teacher's depth, trained plainly;

all students with the same recipe (equal budget).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litesr.methods.plan import Figure, MadeModel, Paths, Plan, Table, TrainedModel
from litesr.methods.registry import Method, lazy_exports

__all__ = ["METHOD", "MemSRTask", "convert", "distill_weight", "memsr_init"]
__getattr__ = lazy_exports(
    __name__,
    {
        "MemSRTask": "litesr.methods.memsr.task",
        "convert": "litesr.methods.memsr.convert",
        "distill_weight": "litesr.methods.memsr.task",
        "memsr_init": "litesr.methods.memsr.init",
    },
)

PLAIN_TEACHER = "memsr-plain-teacher"


def student(width: int, variant: str) -> str:
    """The model name of a student."""
    return f"memsr-w{width}-{variant}"


def plan(section: dict[str, Any], config: dict[str, Any], paths: Paths) -> Plan:
    """The plain teacher, the three students, the table and (given a TSV) the memory figure."""
    teacher = section["teacher"]
    spec = config["models"].get(teacher)
    if spec is None or spec["arch"] != "edsr":
        raise ValueError(
            f"memsr.teacher: {teacher!r} must name an edsr model of `models` "
            f"(got {spec['arch'] if spec else 'no such model'})"
        )
    width = section["width"]
    depth = spec.get("args", {}).get("n_resblocks", 16)
    rank = width if section.get("rank_rule", "fixed") == "fixed" else "auto"
    recipe = {"seed": config.get("seed", 0), **section["train"]}
    made = [
        MadeModel(
            name=PLAIN_TEACHER,
            step="convert",
            inputs={"teacher": teacher, "data": "@train"},
            params={"offset": section.get("offset", "auto")},
        )
    ] + [
        MadeModel(
            name=student(width, init),
            step="student",
            inputs={"teacher": PLAIN_TEACHER, "data": "@train"},
            params={
                "init": init,
                "rank": rank,
                "eps": section.get("eps", 5e-2),
                "recipe": recipe,
                "distill": section.get("distill", {}),
                "size": width,
            },
        )
        for init in ("memsr", "random")
    ]
    trained = [
        TrainedModel(
            name=student(width, "residual"),
            arch="edsr",
            args={"n_resblocks": depth, "n_feats": width},
            train=recipe,
            meta={"method": "memsr", "variant": "residual", "size": width},
        )
    ]
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
            "table); the gain row is MemSR initialisation − random initialisation.",
        )
    ]
    roles = {
        "teacher": [teacher],
        "plain-teacher": [PLAIN_TEACHER],
        **{v: [student(width, v)] for v in ("memsr", "random", "residual")},
    }
    return Plan(trained=trained, made=made, figures=figures, tables=tables, roles=roles)


METHOD = Method(
    name="memsr",
    schema=Path(__file__).with_name("schema.yaml"),
    plan=plan,
    steps={
        "convert": "litesr.methods.memsr.steps:convert_teacher",
        "student": "litesr.methods.memsr.steps:train_student",
    },
    figures={"memory": "litesr.methods.memsr.report:memory_figure"},
    tables={"table": "litesr.methods.memsr.report:memsr_table"},
    claims=Path(__file__).with_name("claims.yaml"),
)
