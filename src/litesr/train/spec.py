"""Training recipe: every knob of the shared loop, validated from a config mapping."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TrainSpec:
    """Hyper-parameters of one training run (one model, one scale)."""

    steps: int
    batch_size: int = 16
    lr_patch: int = 48
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    scheduler: str = "none"
    milestones: tuple[int, ...] = ()
    gamma: float = 0.5
    loss: str = "l1"
    channel: str = "rgb"
    grad_clip: float | None = None
    checkpoint_every: int = 100
    precision: str = "fp32"
    channels_last: bool = False
    augment: bool = True
    seed: int = 0
    gpus: int = 1

    OPTIMIZERS = ("adam", "sgd")
    SCHEDULERS = ("none", "multistep", "cosine", "onecycle")
    LOSSES = ("l1", "l2", "l2_sum")
    CHANNELS = ("rgb", "y")
    PRECISIONS = ("fp32", "bf16")

    def __post_init__(self) -> None:
        for name, allowed in (
            ("optimizer", self.OPTIMIZERS),
            ("scheduler", self.SCHEDULERS),
            ("loss", self.LOSSES),
            ("channel", self.CHANNELS),
            ("precision", self.PRECISIONS),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"training {name} {getattr(self, name)!r}: use one of {allowed}")
        for name in ("steps", "batch_size", "lr_patch", "checkpoint_every", "seed", "gpus"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"training {name} must be a whole number, got {value!r}")
        if min(self.steps, self.batch_size, self.lr_patch, self.gpus) < 1:
            raise ValueError("training steps, batch_size, lr_patch and gpus must be positive")
        if self.batch_size % self.gpus:
            raise ValueError(
                f"training batch_size {self.batch_size} is the global batch: it must split "
                f"evenly over gpus = {self.gpus} processes"
            )

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainSpec:
        """Build from a config mapping; unknown keys are an error, not silently ignored."""
        if "amp" in values:
            raise ValueError(
                "training option 'amp' (CUDA fp16) was replaced by 'precision': write "
                "precision: bf16 (bf16 autocast on CPU and CUDA) or precision: fp32"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown training option(s) {unknown}; known: {sorted(known)}")
        fixed = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        return cls(**fixed)

    def fingerprint(self, *extra: Any) -> str:
        """Hash of the recipe and anything else a checkpoint must match to be resumed.

        ``gpus`` is left out: it asks for processes, and the loop adds the number it runs on.
        """
        recipe = {k: v for k, v in dataclasses.asdict(self).items() if k != "gpus"}
        blob = json.dumps([recipe, *extra], sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]
