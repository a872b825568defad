"""The harness of one method step: what every step that makes a model file does around its
algorithm.

A step locks its output, trains tasks on the shared loop (each with its own checkpoint and
log), runs resumable stages, merges their logs into the step's log and saves the model with
the method's metadata. With :class:`StepRun` a step reads as its algorithm::

    with StepRun("dipnet", out=out, log=log, stages=stages, device=device) as run:
        run.stage("patch", lambda net, files: run.fit(task(net), patch, files, data, scale))
        net = run.stages(start, inputs=[model, data])
        return run.finish(net, variant="progressive", source=str(model))

A killed step resumes at the stage and step it reached (see ``litesr.train.stages``) and ends
with the weights an uninterrupted one would have made. Under ``torchrun`` every rank runs the
step and trains together in ``fit``; rank 0 alone locks and writes the step's files.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from torch import nn

from litesr.atomic import output_lock
from litesr.data.sources import data_fingerprint
from litesr.digest import file_sha256
from litesr.models import arch_of
from litesr.models.store import save_model
from litesr.train import dist
from litesr.train.loop import fit
from litesr.train.objectives import Task
from litesr.train.patches import Sampler
from litesr.train.run import sampler_for
from litesr.train.spec import TrainSpec
from litesr.train.stages import Stage, StageFiles, run_stages
from litesr.tsv import write_tsv

StageFn = Callable[[nn.Module, StageFiles], nn.Module]


def input_key(path: str | os.PathLike[str] | None) -> str | None:
    """What an input contributes to a step's fingerprint: a prepared set's content key, a
    file's SHA-256, or ``None`` for an absent optional input."""
    if path is None:
        return None
    path = Path(path)
    return data_fingerprint(path) if path.is_dir() else file_sha256(path)


class StepRun:
    """One method step that makes ``out`` (weights) and ``log`` (the per-step TSV).

    Use it as a context manager: the output is locked for the step's duration, so a second
    run making the same model stops at once.
    """

    def __init__(
        self,
        method: str,
        *,
        out: str | os.PathLike[str],
        log: str | os.PathLike[str],
        stages: str | os.PathLike[str],
        device: str = "cpu",
        progress: bool = True,
    ) -> None:
        self.method = method
        self.out, self.log, self.stage_dir = Path(out), Path(log), Path(stages)
        self.dev = dist.setup(device)
        self.progress = progress
        self.plan: list[Stage] = []
        self._lock = contextlib.ExitStack()

    def __enter__(self) -> StepRun:
        if dist.is_main():
            self._lock.enter_context(output_lock(self.out))
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.close()

    @property
    def files(self) -> StageFiles:
        """The step's own files when it trains once, without stages: its checkpoint beside
        the output, its log the step's log."""
        return StageFiles(self.out, self.log, self.out.with_name(self.out.name + ".ckpt"))

    def fit(
        self,
        task: Task,
        recipe: dict[str, Any] | TrainSpec,
        files: StageFiles,
        *,
        data: str | os.PathLike[str] | None = None,
        scale: int | None = None,
        sampler: Sampler | None = None,
        tag: str = "",
    ) -> Task:
        """Train ``task`` for ``recipe`` on the shared loop, resumable from ``files``.

        Patches come from ``sampler``, or are drawn from the prepared set ``data`` at
        ``scale``; ``tag`` names what the checkpoint depends on beyond recipe and data.
        """
        spec = recipe if isinstance(recipe, TrainSpec) else TrainSpec.from_dict(recipe)
        if sampler is None:
            if data is None or scale is None:
                raise ValueError("StepRun.fit needs a sampler, or data and scale")
            sampler = sampler_for(Path(data), scale, spec)
        return fit(
            task,
            sampler,
            spec,
            checkpoint=files.checkpoint,
            log_tsv=files.log,
            device=str(self.dev),
            fingerprint=tag,
            progress=self.progress,
        )

    def stage(self, name: str, run: StageFn, key: Any = "") -> Stage:
        """Add a stage ``run(model, files) -> model`` saved as ``<stages>/<name>``; ``key``
        (JSON) names its settings, so that changing them redoes it and what follows."""
        text = key if isinstance(key, str) else json.dumps(key, sort_keys=True)
        stage = Stage(name, self.stage_dir / f"{name}.safetensors", run, key=text)
        self.plan.append(stage)
        return stage

    def stages(
        self,
        model: nn.Module,
        *,
        inputs: Sequence[str | os.PathLike[str] | None],
        key: Any = "",
        upto: int | None = None,
    ) -> nn.Module:
        """Run the stages (the first ``upto``) in order from ``model``, skipping those already
        finished.

        A stage counts as finished only when the content of every file or set in ``inputs``,
        ``key`` and the settings of it and every earlier stage are those it was made with.
        """
        fingerprint = json.dumps([[input_key(p) for p in inputs], key], sort_keys=True)
        return run_stages(model, self.plan[:upto], fingerprint=fingerprint)

    def merged_log(self, column: str = "stage", rows: Sequence[dict[str, Any]] = ()) -> None:
        """Write the step's log: every stage's log in order, tagged with its stage name in
        ``column`` (or with the matching dict of ``rows``), numbered by ``global_step``."""
        if not dist.is_main():
            return
        rows = list(rows) or [{column: s.name} for s in self.plan]
        tables = [
            pd.read_csv(s.files.log, sep="\t").assign(**row)
            for s, row in zip(self.plan, rows, strict=False)
        ]
        table = pd.concat(tables, ignore_index=True)
        table.insert(0, "global_step", range(1, len(table) + 1))
        write_tsv(table, self.log, float_format=None)

    def finish(self, model: nn.Module, *, variant: str, **meta: Any) -> Path:
        """Save ``model`` as the step's output with ``method``, ``variant`` and ``meta``, then
        remove the step's own checkpoint (kept until now, so a crash while saving loses no
        training)."""
        name, args = arch_of(model.cpu())
        if dist.is_main():
            save_model(
                model,
                self.out,
                arch=name,
                args=args,
                meta={"method": self.method, "variant": variant, **meta},
            )
            self.files.checkpoint.unlink(missing_ok=True)
        return self.out
