"""Paper-scale run plan: every training job of the GPU configs, its steps, its estimated GPU
time and what ``--profile workflow/profiles/slurm`` asks SLURM for.

Each config is read as the workflow reads it (strict load, schema defaults, every enabled
method's schema, then :func:`litesr.methods.collect.collect`); every job that trains (the
``train`` rule, and the ``method_model`` steps) is split into its stages, each with its steps,
batch, LR patch, the network it trains and the frozen networks it runs forward.

Step times come from the H100 measurements in ``benchmarks/measured/bench_models_h100.txt``
(``benchmarks/bench_models.py``: forward, L1, backward, Adam on random patches, fp32, batch 16
of LR 48). A stage whose network and batch are the measured ones takes the measured time; any
other is scaled from the measured network of the same architecture nearest in MACs per LR
pixel, in proportion to MACs per step (MACs per LR pixel × batch × LR patch²), and says so in
its ``basis`` column. A frozen network's forward counts a third of its training step.

The SLURM request is read from a dry run of the workflow with the SLURM profile (in a copy of
the workflow, so a run in the checkout is not disturbed): each job's threads, ``mem_mb``,
``runtime`` (minutes) and ``gpu``, as the SLURM executor plugin turns them into ``sbatch``
options.

Example: ``python benchmarks/run_plan.py --markdown --out benchmarks/measured/run_plan.md``.
"""

from __future__ import annotations

import argparse
import copy
import functools
import importlib.util
import itertools
import json
import math
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from snakemake.utils import validate

from litesr.config_check import check_schema, strict_load
from litesr.launch import asked_gpus, job_resources
from litesr.measure.cost import count_macs, count_params
from litesr.methods.collect import WorkflowPlan, collect, enabled
from litesr.methods.dipnet.pipeline import can_shrink, merged_copy, prune_round
from litesr.methods.drc.search import candidate_widths
from litesr.methods.drc.select import Selection
from litesr.methods.plan import MadeModel, Paths
from litesr.models import arch_of, build

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks" / "measured" / "bench_models_h100.txt"
PROFILE = "workflow/profiles/slurm"
WORKFLOW_FILES = ("Snakefile", "workflow", "config", "notebooks", "envs", "src")
MAC_PATCH = 48
"""MACs per LR pixel are counted on one LR patch of this side."""
FORWARD_SHARE = 1 / 3
"""A frozen network's forward, as a share of its training step (backward ≈ 2 forwards)."""
NO_TRAINING = {
    ("authors", "import"),
    ("authors", "file"),
    ("dipnet", "reparam"),
    ("memsr", "convert"),
    ("memsr", "init"),
}
"""Method steps that train nothing (imports, conversions, closed-form initialisations)."""


def default_configs() -> list[Path]:
    """The GPU configs: ``config/*_gpu.yaml`` and ``config/paper.yaml``."""
    return [*sorted((REPO / "config").glob("*_gpu.yaml")), REPO / "config" / "paper.yaml"]


@dataclass(frozen=True)
class Net:
    """A network as ``build(arch, scale=scale, **args)`` makes it; ``args`` is JSON."""

    arch: str
    args: str
    scale: int

    @classmethod
    def of(cls, arch: str, args: dict[str, Any], scale: int) -> Net:
        own = {k: v for k, v in args.items() if k != "scale"}
        return cls(arch, json.dumps(own, sort_keys=True), scale)

    @property
    def label(self) -> str:
        args = " ".join(f"{k}={short(v)}" for k, v in json.loads(self.args).items())
        return f"{self.arch} ×{self.scale}" + (f" {args}" if args else "")


def short(value: Any) -> str:
    """A value in few characters: runs of equal list items as ``item×count``."""
    if not isinstance(value, list):
        return json.dumps(value, separators=(",", ":"))
    runs = [(item, len(list(group))) for item, group in itertools.groupby(map(short, value))]
    return "[" + ",".join(item if n == 1 else f"{item}×{n}" for item, n in runs) + "]"


def same_network(a: Net, b: Net) -> bool:
    """Whether two networks are the same (equal arguments written differently): the same
    architecture, scale, parameters and MACs."""
    return shape(a) == shape(b)


@functools.cache
def shape(net: Net) -> tuple[str, int, int, float]:
    return net.arch, net.scale, count_params(built(net)), macs_per_pixel(net)


@functools.cache
def macs_per_pixel(net: Net) -> float:
    """Forward MACs per LR pixel (one MAC_PATCH² patch, on the CPU, one thread)."""
    model = build(net.arch, scale=net.scale, **json.loads(net.args)).eval()
    return count_macs(model, (MAC_PATCH, MAC_PATCH)) / MAC_PATCH**2


@dataclass(frozen=True)
class Stage:
    """One stage of a training job: ``steps`` steps of ``batch`` LR patches of ``patch`` px
    training ``net`` (None: not known before the run) with ``frozen`` run forward."""

    name: str
    steps: int
    batch: int
    patch: int
    net: Net | None
    frozen: tuple[Net, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class Measured:
    """One H100 row of bench_models: the network and its training step (ms)."""

    label: str
    net: Net
    params: int
    ms: float


class StepTimes:
    """Training step times from the H100 measurements, scaled where nothing was measured."""

    def __init__(self, bench: Path = BENCH) -> None:
        text = bench.read_text()
        found = re.search(r"training: batch (\d+), LR patch (\d+)", text)
        if found is None:
            raise ValueError(f"{bench}: no 'training: batch B, LR patch P' line")
        self.batch, self.patch = int(found[1]), int(found[2])
        self.gpu = re.search(r"^GPU: (.*)$", text, re.M)[1].strip()
        configs = _bench_models().CONFIGS
        self.rows: list[Measured] = []
        for line in text.splitlines()[4:]:
            words = line.split()
            arch, label, numbers = words[0], " ".join(words[1:-8]), words[-8:]
            scale, params, ms = int(numbers[0]), int(numbers[1]), float(numbers[5])
            kwargs = dict(configs.get(arch, [("default", {})]))[label]
            net = Net.of(arch, kwargs, scale)
            built = count_params(build(arch, scale=scale, **kwargs))
            if built != params:
                raise ValueError(f"{bench}: {arch} {label} has {params} parameters, built {built}")
            self.rows.append(Measured(f"{arch} {label}", net, params, ms))

    def exponent(self, arch: str) -> float:
        """How step time grows with MACs per LR pixel: the slope of log time against log
        MACs over the measured networks of ``arch`` (over all of them for an architecture
        measured once)."""
        rows = [r for r in self.rows if r.net.arch == arch]
        rows = rows if len(rows) > 1 else self.rows
        x = np.log([macs_per_pixel(r.net) for r in rows])
        return float(np.polyfit(x, np.log([r.ms for r in rows]), 1)[0])

    def train_ms(self, net: Net, batch: int, patch: int) -> tuple[float, str, bool]:
        """One training step of ``net`` (ms), how it was obtained, and whether it was
        measured as it is."""
        same = [r for r in self.rows if r.net.arch == net.arch] or self.rows
        mpp = macs_per_pixel(net)
        ref = min(same, key=lambda r: abs(math.log(mpp / macs_per_pixel(r.net))))
        pixels = batch * patch**2 / (self.batch * self.patch**2)
        parts, ms = [ref.label], ref.ms * pixels
        if not same_network(ref.net, net):
            macs, power = mpp / macs_per_pixel(ref.net), self.exponent(ref.net.arch)
            ms *= macs**power
            parts.append(f"(MACs/px ×{macs:.3g})^{power:.2f}")
        if pixels != 1:
            parts.append(f"pixels ×{pixels:.3g}")
        return ms, " × ".join(parts), len(parts) == 1

    def step_ms(self, stage: Stage, processes: int) -> tuple[float, str]:
        """One step of ``stage`` (ms) on each of ``processes`` GPUs, and its basis:
        ``measured`` where the stage is a measured network at the measured batch alone."""
        if stage.net is None:
            return math.nan, "not estimated: the network is known only after the run"
        batch = max(stage.batch // processes, 1)
        ms, basis, measured = self.train_ms(stage.net, batch, stage.patch)
        for net in stage.frozen:
            ms += FORWARD_SHARE * self.train_ms(net, batch, stage.patch)[0]
        if stage.frozen:
            basis += f" + {len(stage.frozen)} frozen forward(s) at 1/3 of their training step"
        return ms, ("measured: " if measured and not stage.frozen else "assumed: ") + basis


def _bench_models() -> Any:
    """benchmarks/bench_models.py as a module (its CONFIGS name the measured networks)."""
    spec = importlib.util.spec_from_file_location(
        "bench_models", REPO / "benchmarks" / "bench_models.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_config(path: Path) -> tuple[dict[str, Any], WorkflowPlan]:
    """The config and its plan, as the Snakefile and workflow/rules/common.smk make them."""
    config = strict_load(path)
    check_schema(config, REPO / "config" / "schema.yaml")
    validate(config, str(REPO / "config" / "schema.yaml"))
    for name, method in enabled(config).items():
        validate(config["methods"][name], str(method.schema))
    data = config["data"]
    train_set = next(iter(data.get("train", {})), None)
    paths = Paths(scales=config["scales"], train_set=train_set, test_sets=list(data["test"]))
    return config, collect(config, paths)


class Stages:
    """The stages of every training job of one plan."""

    def __init__(self, plan: WorkflowPlan) -> None:
        self.plan = plan

    def network(self, ref: str, scale: int) -> Net | None:
        """The network of model ``ref`` where the config fixes it (None: known after the run)."""
        if ref in self.plan.trained:
            model = self.plan.trained[ref]
            return Net.of(model.arch, model.args, scale)
        if ref not in self.plan.made:
            return None
        method, made = self.plan.made[ref]
        p = made.params
        if (method, made.step) == ("drc", "primal"):
            return Net.of(p["arch"], p["args"], scale)
        if (method, made.step) == ("dipnet", "distil"):
            return Net.of("rlfn", p["student"], scale)
        if (method, made.step) == ("dipnet", "reparam"):
            trained = self.network(made.inputs["model"], scale)
            return None if trained is None else merged(trained)
        if (method, made.step) == ("dipnet", "prune"):
            start = self.network(made.inputs["model"], scale)
            return None if start is None else pruned(start, p["convs"], p["ratio"], p["min_rounds"])
        if (method, made.step) == ("memsr", "convert"):
            return self.network(made.inputs["teacher"], scale)
        return None

    def trained(self, name: str, scale: int) -> list[Stage]:
        model = self.plan.trained[name]
        r = model.train
        net = Net.of(model.arch, model.args, scale)
        return [Stage("train", r["steps"], r.get("batch_size", 16), r.get("lr_patch", 48), net)]

    def made(self, name: str, scale: int) -> list[Stage]:
        method, made = self.plan.made[name]
        if (method, made.step) in NO_TRAINING:
            return [Stage(f"{method}.{made.step}: no training", 0, 0, 0, None)]
        step = getattr(self, f"_{method}_{made.step}", None)
        if step is None:
            steps = sum(r["steps"] for r in recipes(made.params))
            return [Stage(f"{method}.{made.step}", steps, 0, 0, None, note="step not modelled")]
        return step(made, scale)

    def _ail_rounds(self, made: MadeModel, scale: int) -> list[Stage]:
        p, r = made.params, made.params["recipe"]
        student = self.network(made.inputs["init"], scale)
        teacher = self.network(made.inputs["teacher"], scale) if "teacher" in made.inputs else None
        live = p["variant"] == "ail" and p.get("patches") is None
        first = (teacher,) if live and teacher else ()
        later = (*first, student) if p["variant"] != "plain" and student else first
        patch = r.get("lr_patch", 48)
        if p.get("patches"):
            patch = p["patches"].get("hr_patch", patch * scale) // scale
        batch = r.get("batch_size", 16)
        note = "" if not live or teacher else "teacher's network unknown: not timed"
        stages = [Stage("round 0", r["steps"], batch, patch, student, first, note)]
        if p["rounds"] > 1:
            rest = r["steps"] * (p["rounds"] - 1)
            stages.append(Stage(f"rounds 1-{p['rounds'] - 1}", rest, batch, patch, student, later))
        return stages

    def _dipnet_distil(self, made: MadeModel, scale: int) -> list[Stage]:
        r = made.params["recipe"]
        teacher = self.network(made.inputs["teacher"], scale)
        return [
            Stage(
                "distil",
                r["steps"],
                r.get("batch_size", 16),
                r.get("lr_patch", 48),
                Net.of("rlfn", made.params["student"], scale),
                (teacher,) if teacher else (),
            )
        ]

    def _teacher(self, made: MadeModel, scale: int) -> tuple[Net, ...]:
        """The frozen teacher of a DIPNet fine-tune (target ``enhanced``), if known."""
        if made.params.get("target") != "enhanced":
            return ()
        teacher = self.network(made.inputs["teacher"], scale)
        return (teacher,) if teacher else ()

    def _dipnet_prune(self, made: MadeModel, scale: int) -> list[Stage]:
        p, r = made.params, made.params["recipe"]
        net = self.network(made.inputs["model"], scale)
        stages = []
        for k in range(p["max_rounds"]):
            if net is None or not can_shrink(built(net), p["convs"], p["ratio"]):
                break
            net = pruned(net, p["convs"], p["ratio"], 1)
            stages.append(
                Stage(
                    f"prune round {k}",
                    r["steps"],
                    r.get("batch_size", 16),
                    r.get("lr_patch", 48),
                    net,
                    self._teacher(made, scale),
                    "upper bound: every round runs" if k >= p["min_rounds"] else "",
                )
            )
        return stages

    def _dipnet_progressive(self, made: MadeModel, scale: int) -> list[Stage]:
        net = self.network(made.inputs["model"], scale)
        note = "pruned network after min_rounds (the widest it can be)"
        return [
            Stage(
                name,
                made.params[name]["steps"],
                made.params[name].get("batch_size", 16),
                made.params[name].get("lr_patch", 48),
                net,
                self._teacher(made, scale),
                note,
            )
            for name in ("patch", "l2")
        ]

    def _drc_primal(self, made: MadeModel, scale: int) -> list[Stage]:
        r = made.params["recipe"]
        net = Net.of(made.params["arch"], made.params["args"], scale)
        note = "dual network trained along (≈0.2 % of the MACs: not timed)"
        return [
            Stage(
                "primal", r["steps"], r.get("batch_size", 16), r.get("lr_patch", 48), net, (), note
            )
        ]

    def _drc_finetune(self, made: MadeModel, scale: int, primal: Net | None) -> Stage:
        p, r = made.params, made.params["finetune"]
        uniform = None
        if primal is not None:
            args = json.loads(primal.args)
            width = max(candidate_widths(args.get("n_feats", 64), p["ratio"]))
            blocks = args.get("n_resblocks", 16)
            uniform = Net.of(primal.arch, {**args, "block_widths": [width] * blocks}, scale)
        frozen = (primal,) if primal is not None and p.get("distill", 0) > 0 else ()
        return Stage(
            "finetune",
            r["steps"],
            r.get("batch_size", 16),
            r.get("lr_patch", 48),
            uniform,
            frozen,
            "uniform width (DRC: its largest candidate, an upper bound); dual not timed",
        )

    def _drc_drc(self, made: MadeModel, scale: int) -> list[Stage]:
        p = made.params
        primal = self.network(made.inputs["primal"], scale)
        search, select = p["search"], Selection(**p.get("selection", {}))
        passes = 0
        if primal is not None:
            args = json.loads(primal.args)
            width = max(candidate_widths(args.get("n_feats", 64), p["ratio"]))
            per_pick = -(-select.patches // select.batch) + select.refit_steps
            passes = args.get("n_resblocks", 16) * -(-width // select.pick) * per_pick
        return [
            Stage(
                "search",
                search["steps"],
                2 * search.get("batch_size", 16),
                search.get("lr_patch", 48),
                primal,
                (),
                "two halves of a batch per step",
            ),
            Stage(
                "select",
                passes,
                select.batch,
                select.lr_patch,
                primal,
                (primal,) if primal else (),
                "passes: blocks × picks × (scoring batches + re-fit steps), at the largest width",
            ),
            self._drc_finetune(made, scale, primal),
        ]

    def _drc_l1(self, made: MadeModel, scale: int) -> list[Stage]:
        return [self._drc_finetune(made, scale, self.network(made.inputs["primal"], scale))]

    def _memsr_student(self, made: MadeModel, scale: int) -> list[Stage]:
        p, r = made.params, made.params["recipe"]
        teacher = self.network(made.inputs["teacher"], scale)
        note = ""
        if p["shape"] == "authors" or teacher is None:
            net, note = teacher, "the authors' student timed as the teacher (same convs)"
        else:
            blocks = json.loads(teacher.args).get("n_resblocks", 16)
            widths = [p["rank"] or 64] * (2 * blocks + 2) + [3 * scale * scale]
            net = Net.of("plain", {"widths": widths}, scale)
        frozen = (teacher,) if p["init"] == "memsr" and teacher else ()
        return [
            Stage(
                "student",
                r["steps"],
                r.get("batch_size", 16),
                r.get("lr_patch", 48),
                net,
                frozen,
                note,
            )
        ]


def recipes(params: Any) -> list[dict[str, Any]]:
    """Every mapping with ``steps`` inside a step's params."""
    if isinstance(params, dict):
        own = [params] if isinstance(params.get("steps"), int) else []
        return own + [r for v in params.values() for r in recipes(v)]
    if isinstance(params, list):
        return [r for v in params for r in recipes(v)]
    return []


def built(net: Net) -> torch.nn.Module:
    return build(net.arch, scale=net.scale, **json.loads(net.args)).eval()


def merged(net: Net) -> Net:
    """The network with every RRB merged (dipnet ``reparam``)."""
    arch, args = arch_of(merged_copy(built(net)))
    return Net.of(arch, args, net.scale)


def pruned(net: Net, convs: list[str], ratio: float, rounds: int) -> Net:
    """The network after ``rounds`` pruning rounds (dipnet ``prune``)."""
    model = built(net)
    for _ in range(rounds):
        model = prune_round(copy.deepcopy(model), convs, ratio)
    arch, args = arch_of(model)
    return Net.of(arch, args, net.scale)


def dry_run(config: Path, workdir: Path) -> list[dict[str, Any]]:
    """Every job of a SLURM-profile dry run of ``config`` to the report: its rule,
    wildcards, threads and resources."""
    for name in WORKFLOW_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, workdir / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, workdir / name)
    command = [sys.executable, "-m", "snakemake", "-n", "reports/all.pdf"]
    command += ["--configfile", str(config.resolve()), "--profile", PROFILE, "--cores", "1024"]
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"dry run of {config} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )
    jobs = []
    for block in re.split(r"\n\s*\n", result.stdout):
        rule = re.search(r"^rule (\w+):$", block, re.M)
        if rule is None:
            continue
        fields = dict(re.findall(r"^ {4}(\w+): (.*)$", block, re.M))
        pairs = (kv.split("=", 1) for kv in fields.get("wildcards", "").split(", ") if kv)
        res = dict(kv.split("=", 1) for kv in fields["resources"].split(", "))
        jobs.append(
            {
                "rule": rule[1],
                "wildcards": dict(pairs),
                "threads": int(fields.get("threads", 1)),
                "resources": res,
            }
        )
    return jobs


def sbatch(job: dict[str, Any]) -> str:
    """The options the SLURM executor plugin sets from a job's threads and resources."""
    res = job["resources"]
    gpus = int(res.get("gpu", 0))
    first = f"--gpus={gpus}" if gpus else "--ntasks=1"
    return f"{first} --cpus-per-task={job['threads']} --mem {res['mem_mb']} -t {res['runtime']}"


def with_shared(workdir: Path) -> Path:
    """``workdir/litesr`` with ``../shared`` beside it, as configs that read the authors'
    weights or folder sets expect."""
    shared = REPO.parent / "shared"
    if shared.is_dir():
        (workdir / "shared").symlink_to(shared)
    (workdir / "litesr").mkdir()
    return workdir / "litesr"


def plan_config(path: Path, times: StepTimes) -> tuple[pd.DataFrame, dict[str, Any], pd.DataFrame]:
    """The stage table of one config, its summary row, and its other jobs (per request)."""
    config, plan = read_config(path)
    stages = Stages(plan)
    with tempfile.TemporaryDirectory() as tmp:
        jobs = dry_run(path, with_shared(Path(tmp)))
    device, default_gpu = config.get("device", "cpu"), config.get("resources", {}).get("gpu", 0)
    rows, other = [], {}
    for job in jobs:
        if job["rule"] not in ("train", "method_model"):
            other.setdefault(sbatch(job), []).append(job["rule"])
            continue
        name, scale = job["wildcards"]["model"], int(job["wildcards"]["scale"])
        if job["rule"] == "train":
            parts, params = stages.trained(name, scale), plan.trained[name].train
        else:
            parts, params = stages.made(name, scale), plan.made[name][1].params
        processes, _ = job_resources(asked_gpus(params), default_gpu, device)
        for stage in parts:
            ms, basis = times.step_ms(stage, processes) if stage.steps else (0.0, "")
            rows.append(
                {
                    "config": path.name,
                    "job": f"{name} ×{scale}",
                    "stage": stage.name,
                    "network": stage.net.label if stage.net else "",
                    "frozen": ", ".join(n.label for n in stage.frozen),
                    "steps": stage.steps,
                    "batch": stage.batch,
                    "lr_patch": stage.patch,
                    "step_ms": ms,
                    "gpu_h": stage.steps * ms * processes / 3.6e6,
                    "basis": basis,
                    "note": stage.note,
                    "sbatch": sbatch(job),
                    "runtime_min": int(job["resources"]["runtime"]),
                    "processes": processes,
                }
            )
    table = pd.DataFrame(rows).sort_values("job", kind="stable", ignore_index=True)
    per_job = table.groupby("job").agg(
        hours=("gpu_h", "sum"),
        steps=("steps", "sum"),
        processes=("processes", "first"),
        limit=("runtime_min", "first"),
    )
    wall = per_job.hours / per_job.processes
    others = pd.DataFrame(
        {
            "config": path.name,
            "jobs": len(rules),
            "rules": ", ".join(f"{r} ×{rules.count(r)}" for r in sorted(set(rules))),
            "sbatch": request,
        }
        for request, rules in sorted(other.items())
    )
    summary = {
        "config": path.name,
        "training jobs": int((per_job.steps > 0).sum()),
        "training steps": int(table.steps.sum()),
        "GPU-h": table.gpu_h.sum(),
        "longest job (h)": wall.max(),
        "jobs over their runtime": int((wall * 60 > per_job.limit).sum()),
        "stages not timed": int(table.step_ms.isna().sum()),
        "training job request": "; ".join(sorted(table.sbatch.unique())),
        "jobs training nothing": int((per_job.steps == 0).sum()),
        "other jobs": int(others.jobs.sum()) if len(others) else 0,
    }
    return table, summary, others


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="*", type=Path, help="default: the GPU configs")
    parser.add_argument("--bench", type=Path, default=BENCH, help="bench_models output (GPU)")
    parser.add_argument("--markdown", action="store_true", help="markdown tables")
    parser.add_argument("--out", type=Path, help="also write the output to this file")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    times = StepTimes(args.bench)
    tables, summaries, others = [], [], []
    for path in args.configs or default_configs():
        table, summary, other = plan_config(path, times)
        tables.append(table)
        summaries.append(summary)
        others.append(other)
    summary, other = pd.DataFrame(summaries), pd.concat(others, ignore_index=True)
    stages = pd.concat(tables, ignore_index=True).drop(columns=["runtime_min", "processes"])
    powers = ", ".join(
        f"{a} {times.exponent(a):.2f}" for a in sorted({r.net.arch for r in times.rows})
    )
    head = (
        f"Step times: {times.gpu}, fp32 training steps of {args.bench.name} (batch {times.batch}, "
        f"LR patch {times.patch}). basis `measured`: that network at that batch; `assumed`: "
        "the measured network of the same architecture nearest in MACs per LR pixel, × (MACs "
        f"ratio)^k (k: {powers}, the slope of log time on log MACs over the architecture's "
        "measured networks, over all of them for one measured once), × the ratio of pixels "
        "per batch; a frozen network's forward costs 1/3 of its training step. GPU-h = steps "
        f"× step_ms × processes. sbatch: a dry run with --profile {PROFILE}."
    )
    frames = [summary, stages, other]
    if args.markdown:
        parts = [f.to_markdown(index=False, floatfmt=".3g") for f in frames]
    else:
        with pd.option_context("display.width", 250, "display.max_colwidth", 80):
            parts = [f.to_string(index=False) for f in frames]
    text = "\n\n".join([head, *parts])
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
