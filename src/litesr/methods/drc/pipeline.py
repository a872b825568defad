"""DRC's steps on the shared step harness (:class:`litesr.train.step.StepRun`).

- ``primal``: an EDSR primal trained with a fresh dual network, ``L1 + λ · dual``; the
  trained dual network is saved in the primal's file (metadata ``dual``) and every later
  step starts from it, as the authors' ``--pre_train_dual``.
- ``fit_dual``: instead, a converged primal (an imported release: EDSR or RLFN) kept frozen
  while a dual network is fitted to it; saved the same way.
- ``drc``: stages ``search`` (channel numbers, on a copy; :mod:`~litesr.methods.drc.search`),
  ``select<i>`` (the channels of block ``i``, greedily, the dual frozen;
  :mod:`~litesr.methods.drc.select`) and ``finetune`` (``L1 + λ · dual + β · distillation``
  from the unpruned primal, the dual trained along).
- ``l1``: the baseline at the same ratio: every block pruned to the uniform width (the largest
  search candidate) by filter L1 norm, then the same ``finetune`` as ``drc``'s: the same
  recipe, steps, schedule and objective (only the selection differs).
- ``select`` and ``tune`` (the selection diagnostic): every block pruned to the uniform width
  by one of :data:`CRITERIA`, and that pruned model fine-tuned as ``drc``'s; only the
  selection differs between the criteria.

The pruned channels are the inner ones of every EDSR residual block (the first conv's outputs,
read by the second); the residual stream and the upsampler keep their widths. Pruned models
are saved as ``edsr`` with ``block_widths``, so ``litesr.models.store`` reloads them.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn

from litesr.atomic import atomic_path
from litesr.compress.prune import apply_pruning, l1_norm, select_channels
from litesr.digest import file_sha256
from litesr.measure.cost import lr_size_for_output
from litesr.measure.width_latency import LayerShape, width_table
from litesr.methods.drc import CRITERIA
from litesr.methods.drc.dual import DualNet, DualTask, dual_from_meta, dual_meta
from litesr.methods.drc.search import HalvesSampler, SearchTask, alpha_lr, candidate_widths
from litesr.methods.drc.select import LayerSelection, Selection
from litesr.models import arch_of, build
from litesr.models.rlfn import fold_rgb_range
from litesr.models.store import load_model
from litesr.train.run import sampler_for
from litesr.train.spec import TrainSpec
from litesr.train.stages import StageFiles
from litesr.train.step import StageFn, StepRun
from litesr.tsv import write_tsv

NAME = "drc"
ALPHA_WEIGHT_DECAY = 1e-3
"""The authors' weight decay of α (``alpha_weight_decay``)."""
LEGACY = {"pick": 4, "refit_steps": 0, "units": 1.0}
"""The port's earlier selection (with the configured batch and patch size): one batch per
pass, 4 channels per pick, no re-fit, the loss in [0, 1] units, and a freshly initialised
dual network."""


ARCHS = ("edsr", "rlfn")
"""The primals DRC prunes: EDSR (each residual block's inner channels) and RLFN (each
block's two inner widths, ``c1_r`` and ``c2_r`` outputs; the residual stream and the ESA
branch keep theirs)."""


def layer_pairs(model: nn.Module) -> dict[str, str]:
    """Producer → consumer conv of every prunable inner width of an EDSR or RLFN model."""
    arch = arch_of(model)[0]
    if arch == "edsr":
        return {f"body.{i}.body.0": f"body.{i}.body.2" for i in range(len(model.body))}
    if arch == "rlfn":
        if not all(isinstance(b.c1_r, nn.Conv2d) for b in model.blocks):
            raise ValueError("DRC prunes deployed RLFNs (plain convs), not RepBlock forms")
        pairs = {}
        for i in range(len(model.blocks)):
            pairs |= {
                f"blocks.{i}.c1_r": f"blocks.{i}.c2_r",
                f"blocks.{i}.c2_r": f"blocks.{i}.c3_r",
            }
        return pairs
    raise ValueError(f"DRC prunes {ARCHS} primals (block_widths), not {arch!r}")


def block_widths(model: nn.Module) -> list[int] | list[list[int]]:
    """The model's ``block_widths`` argument: EDSR one width per block, RLFN a pair."""
    if arch_of(model)[0] == "rlfn":
        return [[b.c1_r.out_channels, b.c2_r.out_channels] for b in model.blocks]
    return [block.body[0].out_channels for block in model.body]


def _example(model: nn.Module) -> Tensor:
    return torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0)).to(
        next(model.parameters()).device
    )


def _pruned(model: nn.Module, removed: dict[str, list[int]]) -> nn.Module:
    """Remove the channels (in place) and record the new ``block_widths``."""
    apply_pruning(model, removed, _example(model))
    arch, args = arch_of(model)
    model.litesr_arch = (arch, {**args, "block_widths": block_widths(model)})
    return model


def prune_to(model: nn.Module, widths: dict[str, int], importance=l1_norm) -> nn.Module:
    """Prune the named producer convs to ``widths`` by ``importance`` (in place)."""
    return _pruned(model, select_channels(model, list(widths), widths, _example(model), importance))


def load_primal(path: Path, device: torch.device) -> tuple[nn.Module, DualNet, float]:
    """A DRC primal, the dual network trained with it and its features' scale (1 for a
    network of [0, 1] images; the folded range of a 0–255 release, see :func:`fit_dual`)."""
    model, meta = load_model(path, device=device)
    if "dual" not in meta:
        raise ValueError(f"{path}: no dual network in the file; make it with the drc primal step")
    return model, dual_from_meta(meta["dual"]).to(device), float(meta.get("feature_scale", 1))


def _step(out: Path, log: Path, stages: Path, device: str, progress: bool) -> StepRun:
    return StepRun(NAME, out=out, log=log, stages=stages, device=device, progress=progress)


def train_primal(
    *,
    data: Path,
    scale: int,
    arch: str,
    args: dict[str, Any],
    recipe: dict[str, Any],
    dual: dict[str, Any],
    lam: float,
    out: Path,
    log: Path,
    stages: Path,
    device: str = "cpu",
    progress: bool = True,
) -> Path:
    """Train ``arch`` with a fresh dual network, ``L1 + λ · dual``, with the plain primal's
    draws (the recipe's seed, then the model, then the dual); save the dual with it."""
    spec = TrainSpec.from_dict(recipe)
    with _step(out, log, stages, device, progress) as run:
        torch.manual_seed(spec.seed)
        model = build(arch, scale=scale, **args)
        task = DualTask(model, DualNet(scale, **dual), lam)
        key = f"{arch}{sorted(args.items())}{scale}|drc-dual|{sorted(dual.items())}|{lam}"
        run.fit(task, spec, run.files, data=data, scale=scale, tag=key)
        return run.finish(
            model,
            variant="dual",
            size=0.0,
            lam=lam,
            widths=block_widths(model),
            train=recipe,
            data=str(data),
            dual=dual_meta(task.dual),
        )


def fit_dual(
    *,
    primal: Path,
    data: Path,
    scale: int,
    recipe: dict[str, Any],
    dual: dict[str, Any],
    lam: float,
    out: Path,
    log: Path,
    stages: Path,
    device: str = "cpu",
    progress: bool = True,
) -> Path:
    """A converged (e.g. released) ``primal`` with a dual network fitted to it: the primal is
    frozen and only D learns ``L1(D(P(x)), x)``. An RLFN's 0–255 range is first folded into
    its first and last convs (:func:`litesr.models.rlfn.fold_rgb_range`) so that the pruned
    models run on [0, 1] like every litesr model."""
    spec = TrainSpec.from_dict(recipe)
    with _step(out, log, stages, device, progress) as run:
        model, meta = load_model(primal)
        feature_scale = float(getattr(model, "rgb_range", 1))
        if arch_of(model)[0] == "rlfn":
            fold_rgb_range(model)
        layer_pairs(model)  # refuses an architecture DRC cannot prune
        model.requires_grad_(False)
        torch.manual_seed(spec.seed)
        task = DualTask(model, DualNet(scale, **dual), lam)
        key = f"{file_sha256(primal)}|drc-dual-fit|{sorted(dual.items())}|{lam}"
        run.fit(task, spec, run.files, data=data, scale=scale, tag=key)
        return run.finish(
            model,
            variant="dual-fit",
            size=0.0,
            lam=lam,
            widths=block_widths(model),
            dual_fit=recipe,
            data=str(data),
            source=str(primal),
            release=meta.get("release", ""),
            feature_scale=feature_scale,
            dual=dual_meta(task.dual),
        )


class _Compression:
    """What the stages of one compression of a DRC primal share: the step, the unpruned
    primal (the reference), its dual network, the data and the objective's weights. Its
    methods make the stages. With ``latency`` (``device``, ``threads``: the cost settings),
    the candidate widths are rounded by the latency table of each producer and consumer."""

    def __init__(
        self,
        run: StepRun,
        primal: Path,
        data: Path,
        scale: int,
        ratio: float,
        lam: float,
        distill: float,
        seed: int,
        latency: dict[str, Any] | None = None,
    ) -> None:
        self.run, self.data, self.scale = run, data, scale
        self.lam, self.distill, self.seed = lam, distill, seed
        self.reference, self.dual, self.feature_scale = load_primal(primal, run.dev)
        self.pairs = layer_pairs(self.reference)
        self.latency = latency
        self.candidates = {
            p: candidate_widths(self.width(p), ratio, latency=self.table(p)) for p in self.pairs
        }
        self.widths_file = run.stage_dir / "search.widths.json"

    def width(self, producer: str) -> int:
        """The unpruned width of ``producer``'s outputs."""
        return self.reference.get_submodule(producer).out_channels

    def table(self, producer: str) -> dict[int, float] | None:
        """The latency table (ms per width, 1 to the full width) of ``producer`` and its
        consumer on the LR size of a 720p output; None without ``latency``."""
        if self.latency is None:
            return None
        conv = self.reference.get_submodule(producer)
        consumer = self.reference.get_submodule(self.pairs[producer])
        hw = lr_size_for_output(scale=self.scale)
        shape = LayerShape(conv.in_channels, consumer.out_channels, conv.kernel_size[0], hw)
        return width_table(shape, range(1, conv.out_channels + 1), **self.latency)

    def key(self, *parts: Any) -> list[Any]:
        """The step's fingerprint: ``parts``, and the candidates when latency rounded them
        (exact ones follow from the ratio)."""
        return [*parts] if self.latency is None else [*parts, self.candidates]

    def start(self) -> nn.Module:
        return copy.deepcopy(self.reference).cpu()

    def found(self) -> dict[str, Any]:
        """The search's result: widths, candidates and softmax(α), by producer conv."""
        return json.loads(self.widths_file.read_text())

    def search(self, recipe: dict[str, Any], alpha: dict[str, Any]) -> StageFn:
        """Stage: the channel-number search, on a copy of the model and of the dual."""
        spec = TrainSpec.from_dict({"seed": self.seed, **recipe})

        def search(model: nn.Module, files: StageFiles) -> nn.Module:
            task = SearchTask(
                copy.deepcopy(model).to(self.run.dev),
                copy.deepcopy(self.dual),
                {self.pairs[p]: c for p, c in self.candidates.items()},
                self.lam,
                alpha_lr=alpha.get("lr", alpha_lr(spec.steps)),
                alpha_weight_decay=alpha.get("weight_decay", ALPHA_WEIGHT_DECAY),
                generator=torch.Generator().manual_seed(self.seed),
            )
            sampler = HalvesSampler(sampler_for(self.data, self.scale, spec))
            self.run.fit(task, spec, files, sampler=sampler, tag="search")
            widths, probs = task.widths(), task.probabilities()
            found = {
                "widths": {p: widths[c] for p, c in self.pairs.items()},
                "candidates": self.candidates,
                "probabilities": {p: probs[c] for p, c in self.pairs.items()},
            }
            with atomic_path(self.widths_file) as tmp:
                tmp.write_text(json.dumps(found, indent=1))
            return model

        return search

    def select(
        self,
        i: int,
        producer: str,
        settings: Selection,
        width: int | None = None,
        lam: float | None = None,
        dual: nn.Module | None = None,
    ) -> StageFn:
        """Stage: block ``i``'s channels, picked greedily (the dual frozen), the rest removed;
        ``width`` defaults to the searched one, ``lam`` and ``dual`` to the compression's."""

        def select(model: nn.Module, files: StageFiles) -> nn.Module:
            model = model.to(self.run.dev)
            patches = TrainSpec(steps=1, lr_patch=settings.lr_patch)
            sampler = sampler_for(self.data, self.scale, patches)
            gen = torch.Generator().manual_seed(self.seed + 1000 + i)
            units = settings.units / self.feature_scale
            scaled = settings if self.feature_scale == 1 else replace(settings, feature_units=units)
            chooser = LayerSelection(
                model,
                self.reference,
                self.dual if dual is None else dual,
                self.lam if lam is None else lam,
                sampler,
                scaled,
                gen,
            )
            keep = self.found()["widths"][producer] if width is None else width
            kept = chooser(self.pairs[producer], keep)
            n = model.get_submodule(producer).out_channels
            _pruned(model, {producer: sorted(set(range(n)) - set(kept))})
            write_tsv(pd.DataFrame(chooser.log), files.log, float_format=None)
            return model

        return select

    @property
    def uniform(self) -> dict[str, int]:
        """The uniform width of every block at this ratio (its largest search candidate)."""
        return {p: max(c) for p, c in self.candidates.items()}

    def prune_uniform(self, random: bool = False) -> StageFn:
        """Stage: every block to the uniform width by filter L1 norm (or, with ``random``,
        keeping channels drawn uniformly with the compression's seed)."""
        uniform = self.uniform
        gen = torch.Generator().manual_seed(self.seed)

        def draw(conv: nn.Conv2d) -> Tensor:
            return torch.rand(conv.out_channels, generator=gen)

        def prune(model: nn.Module, files: StageFiles) -> nn.Module:
            prune_to(model, uniform, draw if random else l1_norm)
            table = pd.DataFrame({"conv": list(uniform), "width": list(uniform.values())})
            write_tsv(table, files.log)
            return model

        return prune

    def finetune(self, recipe: dict[str, Any], seed: int) -> StageFn:
        """Stage: ``L1 + λ · dual + β · distillation`` from the unpruned primal, the dual
        trained along; the same for DRC and L1."""

        def finetune(model: nn.Module, files: StageFiles) -> nn.Module:
            task = DualTask(
                model.to(self.run.dev),
                self.dual,
                self.lam,
                reference=self.reference,
                distill=self.distill / self.feature_scale,  # features on [0, 1] images' scale
            )
            tune = {**recipe, "seed": seed}
            self.run.fit(task, tune, files, data=self.data, scale=self.scale, tag="finetune")
            return model

        return finetune

    def finish(self, model: nn.Module, variant: str, **meta: Any) -> Path:
        self.run.merged_log()
        return self.run.finish(
            model,
            variant=variant,
            size=meta["ratio"],
            seed=self.seed,
            widths=block_widths(model),
            uniform_width=self.uniform,
            lam=self.lam,
            distill=self.distill,
            **({} if self.latency is None else {"candidates": self.candidates}),
            **meta,
        )


def drc_compress(
    *,
    primal: Path,
    data: Path,
    scale: int,
    ratio: float,
    search: dict[str, Any],
    alpha: dict[str, Any],
    selection: dict[str, Any],
    finetune: dict[str, Any],
    lam: float,
    distill: float,
    seed: int,
    latency: dict[str, Any] | None = None,
    out: Path,
    log: Path,
    stages: Path,
    device: str = "cpu",
    progress: bool = True,
) -> Path:
    """DRC: search the channel numbers, select each block's channels, fine-tune."""
    with _step(out, log, stages, device, progress) as run:
        drc = _Compression(run, primal, data, scale, ratio, lam, distill, seed, latency)
        run.stage("search", drc.search(search, alpha), key=[search, alpha])
        for i, producer in enumerate(drc.pairs):
            run.stage(f"select{i}", drc.select(i, producer, Selection(**selection)), key=selection)
        run.stage("finetune", drc.finetune(finetune, seed), key=finetune)
        key = drc.key(ratio, lam, distill, seed)
        model = run.stages(drc.start(), inputs=[primal, data], key=key)
        return drc.finish(
            model, "drc", ratio=ratio, search=drc.found(), selection=selection, primal=str(primal)
        )


def l1_compress(
    *,
    primal: Path,
    data: Path,
    scale: int,
    ratio: float,
    finetune: dict[str, Any],
    lam: float,
    distill: float,
    seed: int,
    latency: dict[str, Any] | None = None,
    out: Path,
    log: Path,
    stages: Path,
    device: str = "cpu",
    progress: bool = True,
) -> Path:
    """The baseline: uniform widths by filter L1 norm, then DRC's fine-tuning with ``seed``."""
    with _step(out, log, stages, device, progress) as run:
        l1 = _Compression(run, primal, data, scale, ratio, lam, distill, seed, latency)
        run.stage("prune", l1.prune_uniform(), key={p: max(c) for p, c in l1.candidates.items()})
        run.stage("finetune", l1.finetune(finetune, seed), key=finetune)
        key = l1.key(ratio, lam, distill, seed)
        model = run.stages(l1.start(), inputs=[primal, data], key=key)
        return l1.finish(model, "l1", ratio=ratio, primal=str(primal))


def fresh_dual(dual: DualNet, seed: int) -> DualNet:
    """A dual network of ``dual``'s shape with new default-initialised weights."""
    torch.manual_seed(seed)
    return DualNet(dual.scale, dual.n_feats, dual.slope).to(next(dual.parameters()).device)


def select_uniform(
    *,
    primal: Path,
    data: Path,
    scale: int,
    ratio: float,
    criterion: str,
    selection: dict[str, Any],
    lam: float,
    distill: float,
    seed: int,
    latency: dict[str, Any] | None = None,
    out: Path,
    log: Path,
    stages: Path,
    device: str = "cpu",
    progress: bool = True,
) -> Path:
    """The diagnostic's pruning: every block to the uniform width of ``ratio`` by
    ``criterion`` (one of :data:`CRITERIA`), no fine-tuning."""
    if criterion not in CRITERIA:
        raise ValueError(f"drc.diagnostic: criterion {criterion!r} is not one of {CRITERIA}")
    with _step(out, log, stages, device, progress) as run:
        c = _Compression(run, primal, data, scale, ratio, lam, distill, seed, latency)
        if criterion in ("l1", "random"):
            run.stage("prune", c.prune_uniform(random=criterion == "random"), key=c.uniform)
        else:
            legacy = criterion == "drc-legacy"
            settings = Selection(**selection)
            if legacy:
                settings = Selection(**{**asdict(settings), **LEGACY, "patches": settings.batch})
            dual = fresh_dual(c.dual, seed) if legacy else None
            lam_used = 0.0 if criterion == "drc-nodual" else None
            for i, producer in enumerate(c.pairs):
                fn = c.select(i, producer, settings, c.uniform[producer], lam_used, dual)
                run.stage(f"select{i}", fn, key=[criterion, asdict(settings)])
        key = c.key(ratio, criterion, lam, seed)
        model = run.stages(c.start(), inputs=[primal, data], key=key)
        return c.finish(model, f"pruned-{criterion}", ratio=ratio, primal=str(primal))


def tune_pruned(
    *,
    primal: Path,
    pruned: Path,
    data: Path,
    scale: int,
    ratio: float,
    finetune: dict[str, Any],
    lam: float,
    distill: float,
    seed: int,
    latency: dict[str, Any] | None = None,
    out: Path,
    log: Path,
    stages: Path,
    device: str = "cpu",
    progress: bool = True,
) -> Path:
    """The diagnostic's fine-tuning: ``pruned`` (a :func:`select_uniform` model) tuned as
    DRC's and L1's models are, with ``seed``."""
    with _step(out, log, stages, device, progress) as run:
        c = _Compression(run, primal, data, scale, ratio, lam, distill, seed, latency)
        start, meta = load_model(pruned)
        run.stage("finetune", c.finetune(finetune, seed), key=finetune)
        key = c.key(ratio, lam, distill, seed)
        model = run.stages(start, inputs=[primal, pruned, data], key=key)
        criterion = meta["variant"].removeprefix("pruned-")
        return c.finish(model, f"tuned-{criterion}", ratio=ratio, primal=str(primal))
