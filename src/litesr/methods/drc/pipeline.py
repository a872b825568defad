"""DRC's steps on the shared step harness (:class:`litesr.train.step.StepRun`).

- ``primal``: an EDSR primal trained with a fresh dual network, ``L1 + λ · dual``; the
  trained dual network is saved in the primal's file (metadata ``dual``) and every later
  step starts from it, as the authors' ``--pre_train_dual``.
- ``drc``: stages ``search`` (channel numbers, on a copy; :mod:`~litesr.methods.drc.search`),
  ``select<i>`` (the channels of block ``i``, greedily, the dual frozen;
  :mod:`~litesr.methods.drc.select`) and ``finetune`` (``L1 + λ · dual + β · distillation``
  from the unpruned primal, the dual trained along).
- ``l1``: the baseline at the same ratio: every block pruned to the uniform width (the largest
  search candidate) by filter L1 norm, then the same ``finetune`` as ``drc``'s: the same
  recipe, steps, schedule and objective (only the selection differs).

The pruned channels are the inner ones of every EDSR residual block (the first conv's outputs,
read by the second); the residual stream and the upsampler keep their widths. Pruned models
are saved as ``edsr`` with ``block_widths``, so ``litesr.models.store`` reloads them.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn

from litesr.atomic import atomic_path
from litesr.compress.prune import apply_pruning, l1_norm, select_channels
from litesr.methods.drc.dual import DualNet, DualTask, dual_from_meta, dual_meta
from litesr.methods.drc.search import HalvesSampler, SearchTask, alpha_lr, candidate_widths
from litesr.methods.drc.select import LayerSelection, Selection
from litesr.models import arch_of, build
from litesr.models.store import load_model
from litesr.train.run import sampler_for
from litesr.train.spec import TrainSpec
from litesr.train.stages import StageFiles
from litesr.train.step import StepRun
from litesr.tsv import write_tsv

NAME = "drc"
ALPHA_WEIGHT_DECAY = 1e-3
"""The authors' weight decay of α (``alpha_weight_decay``)."""


def layer_pairs(model: nn.Module) -> dict[str, str]:
    """Producer → consumer conv of every residual block of an EDSR model."""
    if arch_of(model)[0] != "edsr":
        raise ValueError(f"DRC prunes EDSR primals (block_widths), not {arch_of(model)[0]!r}")
    return {f"body.{i}.body.0": f"body.{i}.body.2" for i in range(len(model.body))}


def block_widths(model: nn.Module) -> list[int]:
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


def load_primal(path: Path, device: torch.device) -> tuple[nn.Module, DualNet]:
    """A DRC primal and the dual network trained with it."""
    model, meta = load_model(path, device=device)
    if "dual" not in meta:
        raise ValueError(f"{path}: no dual network in the file; make it with the drc primal step")
    return model, dual_from_meta(meta["dual"]).to(device)


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


def _finetune(
    run: StepRun,
    model: nn.Module,
    files: StageFiles,
    reference: nn.Module,
    dual: DualNet,
    recipe: dict[str, Any],
    data: Path,
    scale: int,
    lam: float,
    distill: float,
) -> nn.Module:
    """DRC's fine-tuning, the same for DRC and L1: ``L1 + λ · dual + β · distillation``."""
    task = DualTask(model.to(run.dev), dual, lam, reference=reference, distill=distill)
    run.fit(task, recipe, files, data=data, scale=scale, tag="finetune")
    return model


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
    out: Path,
    log: Path,
    stages: Path,
    device: str = "cpu",
    progress: bool = True,
) -> Path:
    """DRC: search the channel numbers, select each block's channels, fine-tune."""
    search_spec = TrainSpec.from_dict({"seed": seed, **search})
    settings = Selection(**selection)
    with _step(out, log, stages, device, progress) as run:
        reference, dual = load_primal(primal, run.dev)
        pairs = layer_pairs(reference)
        candidates = {
            p: candidate_widths(reference.get_submodule(p).out_channels, ratio) for p in pairs
        }
        widths_file = Path(stages) / "search.widths.json"

        def search_widths(model: nn.Module, files: StageFiles) -> nn.Module:
            task = SearchTask(
                copy.deepcopy(model).to(run.dev),
                copy.deepcopy(dual),
                {pairs[p]: c for p, c in candidates.items()},
                lam,
                alpha_lr=alpha.get("lr", alpha_lr(search_spec.steps)),
                alpha_weight_decay=alpha.get("weight_decay", ALPHA_WEIGHT_DECAY),
                generator=torch.Generator().manual_seed(seed),
            )
            sampler = HalvesSampler(sampler_for(data, scale, search_spec))
            run.fit(task, search_spec, files, sampler=sampler, tag="search")
            by_consumer, probs = task.widths(), task.probabilities()
            found = {
                "widths": {p: by_consumer[c] for p, c in pairs.items()},
                "candidates": candidates,
                "probabilities": {p: probs[c] for p, c in pairs.items()},
            }
            with atomic_path(widths_file) as tmp:
                tmp.write_text(json.dumps(found, indent=1))
            return model

        def select_block(i: int, producer: str, consumer: str):
            def select(model: nn.Module, files: StageFiles) -> nn.Module:
                width = json.loads(widths_file.read_text())["widths"][producer]
                model = model.to(run.dev)
                sampler = sampler_for(data, scale, TrainSpec(steps=1, lr_patch=settings.lr_patch))
                gen = torch.Generator().manual_seed(seed + 1000 + i)
                chooser = LayerSelection(model, reference, dual, lam, sampler, settings, gen)
                kept = chooser(consumer, width)
                n = model.get_submodule(producer).out_channels
                _pruned(model, {producer: sorted(set(range(n)) - set(kept))})
                write_tsv(pd.DataFrame(chooser.log), files.log, float_format=None)
                return model

            return select

        def tune(model: nn.Module, files: StageFiles) -> nn.Module:
            recipe = {**finetune, "seed": seed}
            return _finetune(run, model, files, reference, dual, recipe, data, scale, lam, distill)

        run.stage("search", search_widths, key=[search, alpha])
        for i, (producer, consumer) in enumerate(pairs.items()):
            run.stage(f"select{i}", select_block(i, producer, consumer), key=selection)
        run.stage("finetune", tune, key=finetune)
        model = run.stages(
            copy.deepcopy(reference).cpu(), inputs=[primal, data], key=[ratio, lam, distill, seed]
        )
        run.merged_log()
        return run.finish(
            model,
            variant="drc",
            size=ratio,
            ratio=ratio,
            seed=seed,
            widths=block_widths(model),
            uniform_width={p: max(c) for p, c in candidates.items()},
            search=json.loads(widths_file.read_text()),
            selection=selection,
            primal=str(primal),
            lam=lam,
            distill=distill,
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
    out: Path,
    log: Path,
    stages: Path,
    device: str = "cpu",
    progress: bool = True,
) -> Path:
    """The baseline: uniform widths by filter L1 norm, then DRC's fine-tuning with ``seed``."""
    with _step(out, log, stages, device, progress) as run:
        reference, dual = load_primal(primal, run.dev)
        uniform = {
            p: max(candidate_widths(reference.get_submodule(p).out_channels, ratio))
            for p in layer_pairs(reference)
        }

        def prune(model: nn.Module, files: StageFiles) -> nn.Module:
            prune_to(model, uniform, l1_norm)
            table = pd.DataFrame({"conv": list(uniform), "width": list(uniform.values())})
            write_tsv(table, files.log)
            return model

        def tune(model: nn.Module, files: StageFiles) -> nn.Module:
            recipe = {**finetune, "seed": seed}
            return _finetune(run, model, files, reference, dual, recipe, data, scale, lam, distill)

        run.stage("prune", prune, key=uniform)
        run.stage("finetune", tune, key=finetune)
        model = run.stages(
            copy.deepcopy(reference).cpu(), inputs=[primal, data], key=[ratio, lam, distill, seed]
        )
        run.merged_log()
        return run.finish(
            model,
            variant="l1",
            size=ratio,
            ratio=ratio,
            seed=seed,
            widths=block_widths(model),
            uniform_width=uniform,
            primal=str(primal),
            lam=lam,
            distill=distill,
        )
