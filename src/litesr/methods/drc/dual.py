"""Dual regression: a small network D maps the SR image back to LR, trained with the primal.

D has one stride-2 3×3 conv + LeakyReLU(0.2) per factor 2 of the scale (×3: one 3×3 conv
of stride 3 without padding, so each LR pixel sees exactly its 3×3 HR block), then a 3×3 conv
to RGB, as DRN's ``DownBlock`` (bias-free convs). The loss of :class:`DualTask` is
``L1(P(x), y) + λ L1(D(P(x)), x)`` (λ = 0.1 in the paper), optionally plus a feature
distillation term ``β mean_b L1(f_b(P), f_b(T))`` over the residual-block outputs of a frozen
unpruned model T (DRC's fine-tuning). :func:`dual_meta` stores D in the primal's model file
(its metadata), so every later step starts from the D trained with the primal.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from litesr.train.objectives import Task


class DualNet(nn.Module):
    """SR image → LR image: stride-2 conv blocks, one per factor 2 (×3: one stride-3 conv)."""

    def __init__(self, scale: int, n_feats: int = 16, slope: float = 0.2) -> None:
        super().__init__()
        if scale == 3:
            steps = [(3, 0)]
        elif scale >= 2 and not scale & (scale - 1):
            steps = [(2, 1)] * (scale.bit_length() - 1)
        else:
            raise ValueError(f"the dual network supports scale 3 or a power of two, got {scale}")
        layers: list[nn.Module] = []
        in_ch = 3
        for stride, pad in steps:
            layers += [
                nn.Conv2d(in_ch, n_feats, 3, stride=stride, padding=pad, bias=False),
                nn.LeakyReLU(slope),
            ]
            in_ch = n_feats
        layers.append(nn.Conv2d(n_feats, 3, 3, padding=1, bias=False))
        self.body = nn.Sequential(*layers)
        self.scale, self.n_feats, self.slope = scale, n_feats, slope

    def forward(self, sr: Tensor) -> Tensor:
        return self.body(sr)


def dual_meta(dual: DualNet) -> dict[str, Any]:
    """The dual network as model-file metadata (its settings and its float32 tensors in
    base64), so that it travels inside the primal's file and is covered by its digests."""
    return {
        "scale": dual.scale,
        "n_feats": dual.n_feats,
        "slope": dual.slope,
        "tensors": {
            name: {
                "shape": list(t.shape),
                "float32": base64.b64encode(
                    t.detach().cpu().to(torch.float32).contiguous().numpy().tobytes()
                ).decode(),
            }
            for name, t in dual.state_dict().items()
        },
    }


def dual_from_meta(entry: dict[str, Any]) -> DualNet:
    """The dual network saved by :func:`dual_meta`, bit for bit."""
    dual = DualNet(entry["scale"], entry["n_feats"], entry["slope"])
    state = {
        name: torch.from_numpy(
            np.frombuffer(base64.b64decode(t["float32"]), dtype="<f4").copy()
        ).view(t["shape"])
        for name, t in entry["tensors"].items()
    }
    dual.load_state_dict(state)
    return dual


def block_features(model: nn.Module, lr: Tensor) -> tuple[Tensor, list[Tensor]]:
    """SR output and residual-block outputs of an EDSR-like model (``return_features``)."""
    try:
        return model(lr, return_features=True)
    except TypeError as err:
        raise ValueError(
            f"feature distillation needs a model with forward(x, return_features=True); "
            f"{type(model).__name__} has none"
        ) from err


class DualTask(Task):
    """Primal + dual regression (+ optional distillation from a frozen reference model)."""

    def __init__(
        self,
        student: nn.Module,
        dual: DualNet | None,
        lam: float = 0.1,
        *,
        reference: nn.Module | None = None,
        distill: float = 0.0,
    ) -> None:
        super().__init__(student)
        if lam > 0 and dual is None:
            raise ValueError(f"dual weight λ = {lam} needs a dual network")
        if distill > 0 and reference is None:
            raise ValueError(f"distillation weight {distill} needs a reference model")
        self.lam, self.distill = lam, distill
        if lam > 0:
            self.dual = dual
        if distill > 0:
            self.freeze("reference", reference)

    def terms(self, lr: Tensor, hr: Tensor) -> dict[str, Tensor]:
        """The unweighted loss terms of one batch: ``primal``, ``dual``, ``distill``."""
        if self.distill > 0:
            sr, feats = block_features(self.student, lr)
            with torch.no_grad():
                _, ref = block_features(self.reference, lr)
            if len(feats) != len(ref):
                raise ValueError(f"{len(feats)} student features but {len(ref)} reference ones")
            distill = torch.stack(
                [nn.functional.l1_loss(f, r) for f, r in zip(feats, ref, strict=True)]
            ).mean()
        else:
            sr, distill = self.student(lr), lr.new_zeros(())
        dual = nn.functional.l1_loss(self.dual(sr), lr) if self.lam > 0 else lr.new_zeros(())
        return {"primal": nn.functional.l1_loss(sr, hr), "dual": dual, "distill": distill}

    def loss(self, lr: Tensor, hr: Tensor) -> tuple[Tensor, dict[str, float]]:
        t = self.terms(lr, hr)
        total = t["primal"] + self.lam * t["dual"] + self.distill * t["distill"]
        return total, {name: float(v.detach()) for name, v in t.items()}
