"""The workflow's plan: every model, figure and table, gathered once from the config and
every enabled method's plan, and checked before any rule is defined."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from litesr.claims import load_claims, resolve
from litesr.methods.plan import Figure, MadeModel, Paths, Table, TrainedModel
from litesr.methods.registry import Method, methods
from litesr.models.limits import check_size, min_input_size
from litesr.train.spec import TrainSpec

RESERVED_NAMES = ("bicubic",)


class ConfigError(ValueError):
    """The configuration is wrong; the message names the key."""


@dataclass
class WorkflowPlan:
    """What the rules make: models trained plainly, models made by method steps, figures
    and tables (each with the method that declared it). ``scales``: the scales each model is
    made at (a model made at some of the configured scales only has its reason in
    ``absent``)."""

    trained: dict[str, TrainedModel] = field(default_factory=dict)
    made: dict[str, tuple[str, MadeModel]] = field(default_factory=dict)
    reported: list[str] = field(default_factory=list)
    scales: dict[str, list[int]] = field(default_factory=dict)
    absent: dict[str, str] = field(default_factory=dict)
    figures: list[tuple[str, Figure]] = field(default_factory=list)
    tables: list[tuple[str, Table]] = field(default_factory=list)
    rules: list[Path] = field(default_factory=list)
    claims: list[dict[str, Any]] = field(default_factory=list)

    def add_model(self, name: str, where: str) -> None:
        if name in RESERVED_NAMES:
            raise ConfigError(f"{where}: the model name {name!r} is reserved")
        if name in self.trained or name in self.made:
            raise ConfigError(f"{where}: a model named {name!r} is already defined")


def check_recipe(recipe: dict[str, Any], where: str) -> None:
    try:
        TrainSpec.from_dict(recipe)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{where}: {err}") from None


def check_arch(arch: str, args: dict[str, Any], scales: list[int], where: str) -> None:
    """Check a model's arguments against its architecture's constructor and the size limits
    (:func:`~litesr.models.limits.check_size`: by formula, nothing is built, so the check
    costs no time even for a huge model). The constructor's own checks of the values run when
    the model is first built."""
    if "scale" in args:
        raise ConfigError(f"{where}: args must not set scale (the workflow's `scales` do)")
    try:
        for scale in scales:
            check_size(arch, {**args, "scale": scale})
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{where}: {err}") from None


def check_patch(
    arch: str, args: dict[str, Any], scales: list[int], recipe: dict[str, Any], where: str
) -> None:
    """The recipe's LR patches must be no smaller than the model's smallest input (RLFN's
    attention pools a 7x7 window: 15 pixels): :func:`~litesr.models.limits.min_input_size`,
    a constant per architecture (probed on ``meta`` tensors only for one without)."""
    patch = TrainSpec.from_dict({"seed": 0, **recipe}).lr_patch
    try:
        need = max(min_input_size(arch, {**args, "scale": scale}) for scale in scales)
    except (ValueError, TypeError, RuntimeError) as err:
        raise ConfigError(f"{where}.args: {err}") from None
    if patch < need:
        raise ConfigError(
            f"{where}.train.lr_patch: {patch} is smaller than the {need} pixels the {arch} model "
            f"needs (its smallest LR input); use lr_patch: {need} or more"
        )


def enabled(config: dict[str, Any]) -> dict[str, Method]:
    """The registered methods the config has a section for, in the config's order (which
    is also the order their rules files are included in; it must not matter)."""
    known = methods()
    sections = config.get("methods", {})
    unknown = sorted(set(sections) - set(known))
    if unknown:
        raise ConfigError(f"methods: unknown method(s) {unknown}; registered: {sorted(known)}")
    return {name: known[name] for name in sections}


def check_sets(config: dict[str, Any], paths: Paths) -> None:
    """Cross-references the schema cannot see: set names used by several sections."""
    both = sorted(set(config["data"].get("train", {})) & set(paths.test_sets))
    if both:
        raise ConfigError(f"data: {both} is both the training set and a test set")
    crop = config.get("report", {}).get("crop")
    if crop and crop["set"] not in paths.test_sets:
        raise ConfigError(f"report.crop.set: {crop['set']!r} is not a test set {paths.test_sets}")


def made_scales(model: MadeModel, scales: list[int], where: str) -> list[int]:
    """The configured scales ``model`` is made at, in the config's order."""
    if model.scales is None:
        return list(scales)
    extra = sorted(set(model.scales) - set(scales))
    if extra or not model.scales:
        raise ConfigError(f"{where}: scales {list(model.scales)} must be some of `scales` {scales}")
    return [s for s in scales if s in model.scales]


def check_trainable(plan: WorkflowPlan, paths: Paths) -> None:
    """Something to evaluate, and a training set wherever something is trained: a config
    may have no ``models`` and no ``data.train`` when its models all come from methods that
    train nothing (the ``authors`` releases and files)."""
    if not plan.reported:
        raise ConfigError(
            "models: nothing to evaluate; give `models` to train, or released models or "
            "model files under methods.authors (releases, files)"
        )
    if paths.train_set is not None:
        return
    if plan.trained:
        name = next(iter(plan.trained))
        raise ConfigError(
            f"data.train: the model {name!r} is trained, and there is no training set"
        )
    for method_name, model in plan.made.values():
        if "@train" in model.inputs.values():
            raise ConfigError(
                f"data.train: methods.{method_name} (model {model.name}) trains on the "
                "training set, and there is none"
            )


def collect(config: dict[str, Any], paths: Paths) -> WorkflowPlan:
    """The plan of the whole workflow; a ``ConfigError`` names the first wrong key."""
    check_sets(config, paths)
    plan = WorkflowPlan()
    claimed = []
    for name, spec in config.get("models", {}).items():
        where = f"models.{name}"
        plan.add_model(name, where)
        check_recipe({"seed": 0, **spec["train"]}, f"{where}.train")
        check_arch(spec["arch"], spec.get("args", {}), paths.scales, f"{where}.args")
        check_patch(spec["arch"], spec.get("args", {}), paths.scales, spec["train"], where)
        plan.trained[name] = TrainedModel(name, spec["arch"], spec.get("args", {}), spec["train"])
        plan.scales[name] = list(paths.scales)
        plan.reported.append(name)
    for method_name, method in enabled(config).items():
        section = config["methods"][method_name]
        try:
            method_plan = method.plan(section, config, paths)
        except ConfigError:
            raise
        except (ValueError, KeyError) as err:
            raise ConfigError(f"methods.{method_name}: {err}") from None
        for model in method_plan.trained:
            where = f"methods.{method_name} (model {model.name})"
            plan.add_model(model.name, where)
            check_recipe({"seed": 0, **model.train}, where)
            check_arch(model.arch, model.args, paths.scales, where)
            check_patch(model.arch, model.args, paths.scales, model.train, where)
            plan.trained[model.name] = model
            plan.scales[model.name] = list(paths.scales)
        for model in method_plan.made:
            where = f"methods.{method_name} (model {model.name})"
            plan.add_model(model.name, where)
            if model.step not in method.steps:
                raise ConfigError(f"methods.{method_name}: no step {model.step!r}")
            plan.made[model.name] = (method_name, model)
            plan.scales[model.name] = made_scales(model, paths.scales, where)
            if plan.scales[model.name] != list(paths.scales):
                plan.absent[model.name] = model.absent or "not made at this scale"
        for model in [*method_plan.trained, *method_plan.made]:
            if model.reported:
                plan.reported.append(model.name)
        plan.figures += [(method_name, fig) for fig in method_plan.figures]
        plan.tables += [(method_name, table) for table in method_plan.tables]
        if method.rules:
            plan.rules.append(method.rules)
        if method.claims:
            claimed.append((load_claims(method.claims), method_plan.roles))
    for method_name, model in plan.made.values():
        missing = [
            m
            for m in model.inputs.values()
            if m != "@train"
            and not m.startswith("file:")
            and m not in plan.trained
            and m not in plan.made
        ]
        if missing:
            raise ConfigError(f"methods.{method_name}: model {model.name} needs unknown {missing}")
        for ref in model.inputs.values():
            lacking = [s for s in plan.scales[model.name] if s not in plan.scales.get(ref, [s])]
            if lacking:
                raise ConfigError(
                    f"methods.{method_name}: model {model.name} at ×{lacking[0]} needs {ref}, "
                    f"which is not made at ×{lacking[0]} ({plan.absent[ref]})"
                )
    check_trainable(plan, paths)
    for doc, roles in claimed:
        plan.claims += resolve(doc, roles, plan.reported, paths.test_sets)
    return plan
