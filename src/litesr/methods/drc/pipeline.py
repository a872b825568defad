"""DRC's steps: dual-regression training of the primal, DRC compression and the L1 baseline.

- ``primal``: train an EDSR primal with a fresh dual network (``L1 + λ · dual``).
- ``drc``: from a trained primal, as resumable stages: ``search`` (channel numbers, on a copy;
  see :mod:`litesr.methods.drc.search`), one ``prune<i>`` stage per residual block (channels
  chosen by :class:`~litesr.compress.importance_grad.DualRegressionImportance`, then a short
  fine-tune of the whole model) and ``finetune`` (``L1 + λ · dual + β · feature distillation``
  from the frozen unpruned primal). The dual network is carried between stages in side files.
- ``l1``: the baseline at the same ratio: every block pruned to the uniform width (the largest
  search candidate) by filter L1 norm in one go, then fine-tuned with the same objective for
  the same number of post-pruning steps as ``drc`` (its per-layer steps plus its final ones).

The prunable convs are the first conv of every EDSR residual block (the channels between the
block's two convs); the residual stream and the upsampler keep their widths. Pruned models
are saved as ``edsr`` with ``block_widths``, so ``litesr.models.store`` reloads them.
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn

from litesr.atomic import atomic_path, output_lock
from litesr.compress.importance_grad import DualRegressionImportance
from litesr.compress.prune import apply_pruning, l1_norm, select_channels
from litesr.data.sources import data_fingerprint
from litesr.device import resolve_device
from litesr.digest import file_sha256
from litesr.methods.drc.dual import DualNet, DualTask, load_dual, save_dual
from litesr.methods.drc.search import HalvesSampler, SearchTask, candidate_widths
from litesr.models import arch_of, build
from litesr.models.store import load_model, save_model
from litesr.train.loop import fit
from litesr.train.run import sampler_for, train_model
from litesr.train.spec import TrainSpec
from litesr.train.stages import Stage, StageFiles, run_stages
from litesr.tsv import write_tsv

logger = logging.getLogger(__name__)


def prunable_convs(model: nn.Module) -> list[str]:
    """The first conv of every residual block of an EDSR model."""
    arch, _ = arch_of(model)
    if arch != "edsr":
        raise ValueError(f"DRC prunes EDSR primals (block_widths), not {arch!r}")
    return [f"body.{i}.body.0" for i in range(len(model.body))]


def block_widths(model: nn.Module) -> list[int]:
    return [block.body[0].out_channels for block in model.body]


def prune_to(
    model: nn.Module, widths: dict[str, int], example: Tensor, importance=l1_norm
) -> nn.Module:
    """Prune the named convs to ``widths`` (in place) and record the new ``block_widths``."""
    removed = select_channels(model, list(widths), widths, example, importance)
    apply_pruning(model, removed, example)
    arch, args = arch_of(model)
    model.litesr_arch = (arch, {**args, "block_widths": block_widths(model)})
    return model


def _dual(scale: int, dual: dict[str, Any], seed: int) -> DualNet:
    torch.manual_seed(seed)
    return DualNet(scale, **dual)


def _dual_file(files: StageFiles) -> Path:
    return files.model.with_name(files.model.stem + ".dual.safetensors")


def _widths_file(files: StageFiles) -> Path:
    return files.model.with_name(files.model.stem + ".widths.json")


def _example(model: nn.Module) -> Tensor:
    return torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0)).to(
        next(model.parameters()).device
    )


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
    """Train ``arch`` from the recipe's seed with a fresh dual network, ``L1 + λ · dual``, on
    the shared ``train`` step (same seed, same draws as the plain primal). One training run:
    ``stages`` is not used."""
    with torch.device("meta"):
        widths = block_widths(build(arch, scale=scale, **args))
    return train_model(
        arch=arch,
        args=args,
        recipe=recipe,
        data=data,
        scale=scale,
        out=out,
        log=log,
        meta={"method": "drc", "variant": "dual", "size": 0.0, "lam": lam, "widths": widths},
        make_task=lambda model: DualTask(model, DualNet(scale, **dual), lam),
        key=f"|drc-dual|{sorted(dual.items())}|{lam}",
        device=device,
        progress=progress,
    )


class _Run:
    """What every stage of one compression run shares."""

    def __init__(
        self,
        primal: Path,
        data: Path,
        scale: int,
        dual: dict,
        lam: float,
        distill: float,
        seed: int,
        device: str,
        progress: bool,
    ) -> None:
        self.dev = resolve_device(device)
        self.reference, self.meta = load_model(primal, device=self.dev)
        prunable_convs(self.reference)
        if int(self.reference.scale) != scale:
            raise ValueError(f"{primal}: a ×{self.reference.scale} model, not ×{scale}")
        self.data, self.scale, self.dual_args = data, scale, dual
        self.lam, self.distill, self.seed, self.progress = lam, distill, seed, progress

    def sampler(self, spec: TrainSpec):
        return sampler_for(self.data, self.scale, spec)

    def dual(self, previous: StageFiles | None) -> DualNet:
        net = _dual(self.scale, self.dual_args, self.seed)
        if previous is not None:
            load_dual(net, _dual_file(previous))
        return net.to(self.dev)

    def tune(
        self, model: nn.Module, dual: DualNet, recipe: dict, files: StageFiles, tag: str
    ) -> None:
        spec = TrainSpec.from_dict(recipe)
        task = DualTask(model, dual, self.lam, reference=self.reference, distill=self.distill)
        fit(
            task,
            self.sampler(spec),
            spec,
            checkpoint=files.checkpoint,
            log_tsv=files.log,
            device=str(self.dev),
            fingerprint=tag,
            progress=self.progress,
        )


def _finish(model: nn.Module, stages: list[Stage], out: Path, log: Path, meta: dict) -> Path:
    table = pd.concat(
        [pd.read_csv(s.files.log, sep="\t").assign(stage=s.name) for s in stages],
        ignore_index=True,
    )
    write_tsv(table, log, float_format=None)
    arch, args = arch_of(model)
    save_model(model.cpu(), out, arch=arch, args=args, meta={**meta, "widths": block_widths(model)})
    return Path(out)


def drc_compress(
    *,
    primal: Path,
    data: Path,
    scale: int,
    ratio: float,
    search: dict[str, Any],
    layer: dict[str, Any],
    finetune: dict[str, Any],
    importance: dict[str, Any],
    dual: dict[str, Any],
    lam: float,
    distill: float,
    seed: int,
    out: Path,
    log: Path,
    stages: Path,
    device: str = "cpu",
    progress: bool = True,
) -> Path:
    """DRC: search the channel numbers, prune block by block with the dual-regression
    importance and a short fine-tune each, then fine-tune with distillation."""
    run = _Run(primal, data, scale, dual, lam, distill, seed, device, progress)
    convs = prunable_convs(run.reference)
    candidates = {
        name: candidate_widths(run.reference.get_submodule(name).out_channels, ratio)
        for name in convs
    }
    stages = Path(stages)

    def do_search(model: nn.Module, files: StageFiles) -> nn.Module:
        spec = TrainSpec.from_dict({"seed": seed, **search})
        net = run.dual(None)
        task = SearchTask(
            copy.deepcopy(model).to(run.dev),
            net,
            candidates,
            lam,
            generator=torch.Generator().manual_seed(seed),
        )
        fit(
            task,
            HalvesSampler(run.sampler(spec)),
            spec,
            checkpoint=files.checkpoint,
            log_tsv=files.log,
            device=str(run.dev),
            fingerprint="search",
            progress=progress,
        )
        found = {
            "widths": task.widths(),
            "candidates": candidates,
            "probabilities": task.probabilities(),
        }
        with atomic_path(_widths_file(files)) as tmp:
            tmp.write_text(json.dumps(found, indent=1, sort_keys=True))
        save_dual(net, _dual_file(files))
        return model

    plan = [Stage("search", stages / "search.safetensors", do_search, key=json.dumps(search))]

    def prune_layer(i: int, name: str):
        def do(model: nn.Module, files: StageFiles) -> nn.Module:
            model.to(run.dev)
            widths = json.loads(_widths_file(plan[0].files).read_text())["widths"]
            net = run.dual(plan[i].files)
            lr, hr = run.sampler(TrainSpec.from_dict(layer)).sample(
                importance.get("batch", 8), torch.Generator().manual_seed(seed + 1000 + i)
            )
            imp = DualRegressionImportance(
                model,
                lr.to(run.dev),
                hr.to(run.dev),
                _example(model),
                dual=net,
                lam=lam,
                reference=run.reference,
                rec_weight=importance.get("rec_weight", 1.0),
                pick=importance.get("pick", 4),
            )
            prune_to(model, {name: widths[name]}, _example(model), imp)
            logger.info("DRC: %s pruned to %d channels", name, widths[name])
            run.tune(model, net, {**layer, "seed": seed + 1 + i}, files, f"prune{i}")
            save_dual(net, _dual_file(files))
            return model

        return do

    plan += [
        Stage(
            f"prune{i}",
            stages / f"prune{i}.safetensors",
            prune_layer(i, name),
            key=json.dumps([layer, importance]),
        )
        for i, name in enumerate(convs)
    ]

    def do_finetune(model: nn.Module, files: StageFiles) -> nn.Module:
        run.tune(
            model.to(run.dev),
            run.dual(plan[-2].files),
            {**finetune, "seed": seed},
            files,
            "finetune",
        )
        return model

    plan.append(
        Stage("finetune", stages / "finetune.safetensors", do_finetune, key=json.dumps(finetune))
    )
    fingerprint = json.dumps(
        [file_sha256(primal), ratio, dual, lam, distill, seed, data_fingerprint(data)]
    )
    with output_lock(out):
        model = run_stages(copy.deepcopy(run.reference).cpu(), plan, fingerprint=fingerprint)
        found = json.loads(_widths_file(plan[0].files).read_text())
        return _finish(
            model,
            plan,
            out,
            log,
            {
                "method": "drc",
                "variant": "drc",
                "size": ratio,
                "ratio": ratio,
                "seed": seed,
                "uniform_width": {n: max(c) for n, c in candidates.items()},
                "search": found,
                "primal": str(primal),
                "lam": lam,
                "distill": distill,
            },
        )


def l1_compress(
    *,
    primal: Path,
    data: Path,
    scale: int,
    ratio: float,
    steps: int,
    finetune: dict[str, Any],
    dual: dict[str, Any],
    lam: float,
    distill: float,
    seed: int,
    out: Path,
    log: Path,
    stages: Path,
    device: str = "cpu",
    progress: bool = True,
) -> Path:
    """The baseline: uniform widths by filter L1 norm, then ``steps`` fine-tuning steps with
    DRC's final objective (``finetune`` with ``steps`` replaced and the given ``seed``)."""
    run = _Run(primal, data, scale, dual, lam, distill, seed, device, progress)
    convs = prunable_convs(run.reference)
    uniform = {
        name: max(candidate_widths(run.reference.get_submodule(name).out_channels, ratio))
        for name in convs
    }
    stages = Path(stages)

    def do_prune(model: nn.Module, files: StageFiles) -> nn.Module:
        prune_to(model, uniform, _example(model), l1_norm)
        write_tsv(pd.DataFrame({"conv": list(uniform), "width": list(uniform.values())}), files.log)
        return model

    def do_finetune(model: nn.Module, files: StageFiles) -> nn.Module:
        run.tune(
            model.to(run.dev),
            run.dual(None),
            {**finetune, "steps": steps, "seed": seed},
            files,
            "l1-finetune",
        )
        return model

    plan = [
        Stage("prune", stages / "prune.safetensors", do_prune, key=json.dumps(uniform)),
        Stage(
            "finetune",
            stages / "finetune.safetensors",
            do_finetune,
            key=json.dumps([finetune, steps]),
        ),
    ]
    fingerprint = json.dumps(
        [file_sha256(primal), ratio, dual, lam, distill, seed, data_fingerprint(data)]
    )
    with output_lock(out):
        model = run_stages(copy.deepcopy(run.reference).cpu(), plan, fingerprint=fingerprint)
        return _finish(
            model,
            plan,
            out,
            log,
            {
                "method": "drc",
                "variant": "l1",
                "size": ratio,
                "ratio": ratio,
                "seed": seed,
                "uniform_width": uniform,
                "primal": str(primal),
                "lam": lam,
                "distill": distill,
            },
        )
