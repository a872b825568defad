"""DIPNet's stages on the shared loop and stage runner: the ``dipnet.*`` steps.

Each step is one reported model of the ablation and runs its stages on the shared step
harness :class:`litesr.train.step.StepRun` (stage files under ``stages``; a killed job
resumes):

- ``distil``: a from-scratch RRB student trained on the teacher's SR output ("enhanced HR"),
  with or without the multi-anchor feature loss (one stage, ``train``);
- ``reparam``: every RRB merged into one 3×3 conv (stage ``merge``; the merged network is
  checked against the unmerged one before it is kept);
- ``prune``: rounds of "remove the lowest-L2 fraction of filters of each pruned conv, then
  fine-tune" (stages ``round0``, ``round1``...), kept while the validation PSNR holds; with
  ``latency``, each kept width is rounded to one that is fast on the cost device
  (:mod:`litesr.methods.dipnet.widths`);
- ``progressive``: a fine-tune with larger patches, then one with the L2 loss.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from litesr.compress.prune import apply_pruning, kept_channels, l2_norm, select_channels
from litesr.compress.reparam import RepBlock, reparameterize
from litesr.evaluate.metrics import psnr_y
from litesr.evaluate.run import super_resolve
from litesr.measure.cost import count_params
from litesr.measure.width_latency import device_name
from litesr.methods.dipnet.widths import LatencyWidths, exact_kept, widths_after
from litesr.models import arch_of, build
from litesr.models.store import load_model
from litesr.train.objectives import PIXEL_LOSSES, PixelTask, Task
from litesr.train.patches import load_pairs
from litesr.train.run import sampler_for
from litesr.train.spec import TrainSpec
from litesr.train.stages import StageFiles
from litesr.train.step import StepRun
from litesr.tsv import write_tsv

logger = logging.getLogger(__name__)

NAME = "dipnet"
MERGE_TOLERANCE = 1e-4
"""Largest |merged − unmerged| output accepted by the ``merge`` stage (float32 sums)."""
EXAMPLE_HW = 32
"""Side of the example input traced for pruning (ESA needs at least 15 pixels)."""


def anchor_pairs(n_student: int, n_teacher: int) -> list[int]:
    """The teacher block matched to each student block, at the same relative depth: student
    block ``i`` (of S) takes teacher block ``round((i + 1) · T / S) − 1``, so the last blocks
    match and the others are spread evenly."""
    if n_teacher < n_student:
        raise ValueError(
            f"the teacher has {n_teacher} blocks, fewer than the student's {n_student}"
        )
    return [int(np.floor((i + 1) * n_teacher / n_student + 0.5)) - 1 for i in range(n_student)]


class DistilTask(Task):
    """L1 (or ``loss``) to the frozen teacher's SR output, plus, with ``anchors``, the mean L1
    between each student block's output through a learned 1×1 projection (a trainable part)
    and the teacher feature at the matching depth, weighted by ``anchor_weight``."""

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module,
        *,
        anchors: bool = False,
        anchor_weight: float = 1.0,
        loss: str = "l1",
    ) -> None:
        super().__init__(student)
        self.freeze("teacher", teacher)
        self.fn, self.anchor_weight = PIXEL_LOSSES[loss], anchor_weight
        self.pairs: list[int] = []
        if anchors:
            probe = torch.rand(1, 3, 16, 16, device=next(student.parameters()).device)
            with torch.no_grad():
                t_feats = teacher(probe, return_features=True)[1]
                s_feats = student(probe, return_features=True)[1]
            self.pairs = anchor_pairs(len(s_feats), len(t_feats))
            self.proj = nn.ModuleList(
                nn.Conv2d(s.shape[1], t_feats[j].shape[1], 1)
                for s, j in zip(s_feats, self.pairs, strict=True)
            )

    def loss(self, lr: Tensor, hr: Tensor) -> tuple[Tensor, dict[str, float]]:
        with torch.no_grad():
            t_sr, t_feats = self.teacher(lr, return_features=True)
        sr, s_feats = self.student(lr, return_features=True)
        pixel = self.fn(sr, t_sr.clamp(0, 1))
        if not self.pairs:
            return pixel, {}
        anchor = torch.stack(
            [
                F.l1_loss(proj(s), t_feats[j])
                for proj, s, j in zip(self.proj, s_feats, self.pairs, strict=True)
            ]
        ).mean()
        extras = {"pixel": float(pixel.detach()), "anchor": float(anchor.detach())}
        return pixel + self.anchor_weight * anchor, extras


def _finetune_task(model: nn.Module, teacher: nn.Module | None, target: str, loss: str) -> Task:
    """The fine-tuning objective: ``loss`` to the HR patch or to the teacher's output."""
    if target == "hr":
        return PixelTask(model, loss)
    if teacher is None:
        raise ValueError("target 'enhanced' needs a teacher model file")
    return DistilTask(model, teacher, loss=loss)


def _step(out: Path, log: Path, stages: Path, device: str, progress: bool) -> StepRun:
    return StepRun(NAME, out=out, log=log, stages=stages, device=device, progress=progress)


def _size(model: nn.Module) -> int | None:
    """The width the ablation reports a student by."""
    return arch_of(model)[1].get("feature_channels")


def distil(
    *,
    teacher: Path,
    data: Path,
    scale: int,
    student: dict[str, Any],
    recipe: dict[str, Any],
    anchors: bool,
    anchor_weight: float = 1.0,
    variant: str,
    out: Path,
    log: Path,
    stages: Path,
    device: str = "cpu",
    progress: bool = True,
) -> Path:
    """Train a fresh ``rlfn(**student)`` (RRB blocks) on the teacher's SR output, with the
    anchor loss when ``anchors``; the recipe's seed also draws the initial weights."""
    spec = TrainSpec.from_dict(recipe)
    with _step(out, log, stages, device, progress) as run:
        teacher_model = load_model(teacher, device=run.dev)[0]
        torch.manual_seed(spec.seed)
        model = build("rlfn", scale=scale, **student)

        def train(net: nn.Module, files: StageFiles) -> nn.Module:
            task = DistilTask(
                net.to(run.dev), teacher_model, anchors=anchors, anchor_weight=anchor_weight
            )
            run.fit(task, spec, files, data=data, scale=scale, tag=f"{variant}|{student}")
            return net

        run.stage("train", train, key=[anchors, anchor_weight])
        model = run.stages(model, inputs=[teacher, data], key=[spec.fingerprint(), student])
        run.merged_log()
        return run.finish(
            model,
            variant=variant,
            size=_size(model),
            teacher=str(teacher),
            train=recipe,
            anchors=anchors,
        )


def merged_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every RRB merged into one 3×3 conv, rebuildable as plain
    ``rlfn`` (``rrb_expand`` 0)."""
    merged = reparameterize(copy.deepcopy(model).cpu().eval())
    arch, args = arch_of(model)
    merged.litesr_arch = (arch, {**args, "rrb_expand": 0})
    return merged


@torch.no_grad()
def merge_error(model: nn.Module, merged: nn.Module, x: Tensor) -> float:
    """Largest absolute difference between the two networks' outputs on ``x``."""
    return float((model.eval()(x) - merged.eval()(x)).abs().max())


def reparam(
    *,
    model: Path,
    scale: int,
    out: Path,
    log: Path,
    stages: Path,
    device: str = "cpu",
    progress: bool = True,
) -> Path:
    """Merge every RRB of ``model``; refuse the result unless it computes the same outputs."""
    start, meta = load_model(model)
    if not any(isinstance(m, RepBlock) for m in start.modules()):
        raise ValueError(f"{model}: no RRB (RepBlock) to merge")

    def merge(net: nn.Module, files: StageFiles) -> nn.Module:
        merged = merged_copy(net)
        x = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(0))
        error = merge_error(net, merged, x)
        if error > MERGE_TOLERANCE:
            raise RuntimeError(f"merged network differs from {model} by {error:.2e}")
        row = {"params_before": count_params(net), "params_after": count_params(merged)}
        write_tsv(pd.DataFrame([{**row, "max_abs_error": error}]), files.log, float_format=None)
        return merged

    with _step(out, log, stages, device, progress) as run:
        run.stage("merge", merge)
        merged = run.stages(start, inputs=[model])
        run.merged_log()
        return run.finish(
            merged,
            variant="reparam",
            size=_size(merged),
            source=str(model),
            teacher=meta.get("teacher"),
        )


def validation_pairs(data: Path, scale: int, crop: int, images: int) -> list[tuple]:
    """Central ``crop``-pixel LR crops (and their HR) of the first ``images`` training images:
    the pruning rounds' validation set."""
    pairs = load_pairs(Path(data), scale, crop)[:images]
    out = []
    for pair in pairs:
        h, w = pair.lr.shape[:2]
        y, x = (h - crop) // 2, (w - crop) // 2
        hr = pair.hr[y * scale : (y + crop) * scale, x * scale : (x + crop) * scale]
        out.append((pair.lr[y : y + crop, x : x + crop], hr))
    return out


def validation_psnr(
    model: nn.Module, pairs: list[tuple], scale: int, device: torch.device
) -> float:
    """Mean PSNR-Y (border = scale) of ``model`` on ``pairs``."""
    model = model.to(device).eval()
    return float(np.mean([psnr_y(super_resolve(model, lr, device), hr, scale) for lr, hr in pairs]))


def pruned_widths(model: nn.Module) -> list[list[int]]:
    """``[c1_r, c2_r]`` output widths of each block of an ``rlfn``."""
    return [[b.c1_r.out_channels, b.c2_r.out_channels] for b in model.blocks]


def prune_round(
    model: nn.Module, convs: list[str], ratio: float, kept: dict[str, int] | None = None
) -> nn.Module:
    """Remove the ``ratio`` lowest-L2-norm filters of the named convs of every block (their
    consumers lose the matching input channels), or keep the ``kept`` widths (by conv name)
    of highest L2 norm; in place, with the new ``block_widths``."""
    names = [f"blocks.{i}.{c}" for i in range(len(model.blocks)) for c in convs]
    x = torch.rand(1, 3, EXAMPLE_HW, EXAMPLE_HW, device=next(model.parameters()).device)
    apply_pruning(model, select_channels(model, names, kept or ratio, x, l2_norm), x)
    arch, args = arch_of(model)
    model.litesr_arch = (arch, {**args, "block_widths": pruned_widths(model)})
    return model


def can_shrink(model: nn.Module, convs: list[str], ratio: float) -> bool:
    """Whether a round would remove any filter."""
    return any(
        kept_channels(getattr(b, c).out_channels, ratio) < getattr(b, c).out_channels
        for b in model.blocks
        for c in convs
    )


def round_files(stages: Path, rounds: int) -> list[Path]:
    """The network after each pruning round: ``<stages>/round{r}.safetensors`` (r from 0)."""
    return [Path(stages) / f"round{r}.safetensors" for r in range(rounds)]


def prune(
    *,
    model: Path,
    data: Path,
    scale: int,
    ratio: float,
    convs: list[str],
    tolerance_db: float,
    max_rounds: int,
    min_rounds: int,
    recipe: dict[str, Any],
    target: str,
    val_crop: int,
    val_images: int,
    out: Path,
    log: Path,
    stages: Path,
    teacher: Path | None = None,
    latency: dict[str, Any] | None = None,
    device: str = "cpu",
    progress: bool = True,
) -> Path:
    """Prune and fine-tune round after round while the validation PSNR stays within
    ``tolerance_db`` of the unpruned network's (the first ``min_rounds`` rounds are kept
    whatever it is); keep the last good network. Round ``r`` (from 0) fine-tunes with the
    recipe's seed + 1 + r.

    ``latency`` (``device``, ``threads``: the cost settings) rounds each kept width to a
    fast one (:class:`~litesr.methods.dipnet.widths.LatencyWidths`); ``rounds.tsv`` then
    also has the exact and the rounded widths of each round, and ``width_latency.tsv`` beside
    it the latency tables used."""
    spec = TrainSpec.from_dict(recipe)
    rounding = None if latency is None else LatencyWidths(scale, **latency)
    key = f"{ratio}|{convs}|{target}"
    if rounding is not None:
        key += f"|latency|{device_name(rounding.device)}|{rounding.threads}"
    start = load_model(model)[0]
    if arch_of(start)[0] != "rlfn" or any(isinstance(m, RepBlock) for m in start.modules()):
        raise ValueError(f"{model}: pruning needs a merged rlfn network")
    val = validation_pairs(data, scale, val_crop, val_images)
    with _step(out, log, stages, device, progress) as run:
        teacher_model = load_model(teacher, device=run.dev)[0] if target == "enhanced" else None
        sampler = sampler_for(data, scale, spec)

        def one_round(r: int) -> Callable[[nn.Module, StageFiles], nn.Module]:
            def prune_and_tune(net: nn.Module, files: StageFiles) -> nn.Module:
                net = copy.deepcopy(net).to(run.dev)
                kept = None if rounding is None else rounding.kept(net, convs, ratio)
                net = prune_round(net, convs, ratio, kept)
                task = _finetune_task(net, teacher_model, target, spec.loss)
                tune = {**recipe, "seed": spec.seed + 1 + r}
                run.fit(task, tune, files, sampler=sampler, tag=f"prune{r}")
                return net

            return prune_and_tune

        for r in range(max_rounds):
            run.stage(f"round{r}", one_round(r), key=key)
        reference = validation_psnr(start, val, scale, run.dev)
        best, rows = copy.deepcopy(start), []
        for r in range(max_rounds):
            if not can_shrink(best, convs, ratio):
                break
            net = run.stages(
                copy.deepcopy(start),
                inputs=[model, teacher, data],
                key=spec.fingerprint(),
                upto=r + 1,
            )
            psnr = validation_psnr(net, val, scale, run.dev)
            good = r < min_rounds or psnr >= reference - tolerance_db
            row = {
                "round": r,
                "val_psnr_db": psnr,
                "kept": good,
                "params": count_params(net),
                "widths": str(pruned_widths(net)),
            }
            if rounding is not None:
                row["exact_widths"] = str(widths_after(best, exact_kept(best, convs, ratio)))
                row["latency_widths"] = str(widths_after(best, rounding.kept(best, convs, ratio)))
                logger.info(
                    "round %d widths: %s (exact: %s)", r, row["widths"], row["exact_widths"]
                )
            rows.append(row)
            logger.info("pruning round %d: %.3f dB (unpruned %.3f dB)", r, psnr, reference)
            if not good:
                break
            best = net
        summary = pd.DataFrame(rows)
        write_tsv(summary, Path(stages) / "rounds.tsv", float_format=None)
        if rounding is not None:
            write_tsv(rounding.record(), Path(stages) / "width_latency.tsv", float_format=None)
        run.merged_log(rows=[{**row, "unpruned_val_psnr_db": reference} for row in rows])
        return run.finish(
            best,
            variant="pruned",
            size=_size(best),
            source=str(model),
            rounds=int(summary.kept.sum()),
            unpruned_val_psnr_db=reference,
            train=recipe,
            target=target,
        )


def progressive(
    *,
    model: Path,
    data: Path,
    scale: int,
    patch: dict[str, Any],
    l2: dict[str, Any],
    target: str,
    out: Path,
    log: Path,
    stages: Path,
    teacher: Path | None = None,
    device: str = "cpu",
    progress: bool = True,
) -> Path:
    """Fine-tune with the ``patch`` recipe (larger patches), then with ``l2`` (L2 loss)."""
    start = load_model(model)[0]
    with _step(out, log, stages, device, progress) as run:
        teacher_model = load_model(teacher, device=run.dev)[0] if target == "enhanced" else None

        def tune(recipe: dict[str, Any], name: str) -> Callable[[nn.Module, StageFiles], nn.Module]:
            spec = TrainSpec.from_dict(recipe)

            def fine_tune(net: nn.Module, files: StageFiles) -> nn.Module:
                net = net.to(run.dev)
                task = _finetune_task(net, teacher_model, target, spec.loss)
                run.fit(task, spec, files, data=data, scale=scale, tag=name)
                return net

            return fine_tune

        for name, recipe in (("patch", patch), ("l2", l2)):
            run.stage(name, tune(recipe, name), key=target)
        key = [TrainSpec.from_dict(r).fingerprint() for r in (patch, l2)]
        net = run.stages(start, inputs=[model, teacher, data], key=key)
        run.merged_log()
        return run.finish(
            net,
            variant="progressive",
            size=_size(net),
            source=str(model),
            train=[patch, l2],
            target=target,
        )
