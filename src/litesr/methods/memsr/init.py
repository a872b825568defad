"""MemSR initialisation of a plain student from the plain teacher's features.

For each body feature ``f`` of the plain teacher (the LR layers after the lift, up to the
one that feeds the upsampler; the constant channel left out), on the pixels of a few
calibration patches:

- centre it (``μ`` = channel mean) and take its SVD ``f - μ = U S Vᵀ``; keep rank ``r``:
  a fixed ``r`` (the authors' released setting, r = 64, capped at the feature's width) or,
  with ``rank="auto"``, the smallest ``r`` whose relative residual
  ``‖f - μ - U_r U_rᵀ (f - μ)‖_F / ‖f - μ‖_F`` is below ``eps`` (5e-2 in the authors' code);
- the student's feature is meant to be ``g = U_rᵀ (f - μ) + β``, where ``β`` shifts each
  coordinate up by 3 × the mean of its negative part (the authors' ``decompose_adjust``)
  so that the student's ReLU clips little of it;
- the student's layer is the least-squares conv 3×3 + bias mapping the student's *own*
  previous features (computed by the layers already initialised) onto ``g``: this is the
  least-squares solution of ``bridge(g_s) ≈ f`` since ``U_r`` has orthonormal columns;
- the bridge is the 1×1 conv ``g ↦ U_r g + (μ - U_r β)`` (the feature mean, less the shift).

The student's last layer is the least-squares conv onto the teacher's SR output, pixel-
unshuffled to ``3 · scale²`` LR channels, followed by the PixelShuffle: the student keeps the
memory-lean shape (no layer at HR resolution). ReLU does not commute with the rotation
``U_r``, so even at full rank the initialised student only approximates the teacher (as in
the authors' code); the test measures how closely.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from litesr.models import build

ADJUST = 3.0


def teacher_taps(plain_teacher: nn.Module) -> list[int]:
    """Indices (into the hidden features) of the converted teacher's body features: layer 0
    (the lift of the input) is skipped, the upsampler's layers are not body features."""
    first_shuffle = next(i for i, f in enumerate(plain_teacher.factors) if f > 1)
    return list(range(1, first_shuffle))


def choose_rank(s: Tensor, rank: int | str, eps: float) -> int:
    """``rank`` capped at the width, or (``"auto"``) the smallest r with residual < eps."""
    if rank != "auto":
        return min(int(rank), len(s))
    energy = (s**2).flip(0).cumsum(0).flip(0)  # energy[r] = Σ_{j >= r} s_j²
    residual = (energy / energy[0]).sqrt()
    below = [r for r in range(1, len(s)) if residual[r] < eps]
    return below[0] if below else len(s)


def _lstsq_conv(inputs: Tensor, target: Tensor, ridge: float = 1e-8) -> tuple[Tensor, Tensor]:
    """Conv 3×3 weight and bias minimising ‖conv(inputs) − target‖² (zero padding)."""
    n, c_in = inputs.shape[:2]
    cols = F.unfold(inputs, 3, padding=1).transpose(1, 2).reshape(-1, 9 * c_in)
    a = torch.cat([cols, torch.ones(len(cols), 1, dtype=cols.dtype)], dim=1)
    y = target.flatten(2).transpose(1, 2).reshape(-1, target.shape[1])
    gram = a.T @ a
    gram += ridge * gram.diagonal().mean() * torch.eye(len(gram), dtype=gram.dtype)
    x = torch.linalg.solve(gram, a.T @ y)
    return x[:-1].T.reshape(-1, c_in, 3, 3), x[-1]


def _pixels(f: Tensor) -> Tensor:
    """(N, C, H, W) → (C, N·H·W)."""
    return f.transpose(0, 1).flatten(1)


@torch.no_grad()
def memsr_init(
    plain_teacher: nn.Module,
    calibration: Tensor,
    *,
    rank: int | str = 64,
    eps: float = 5e-2,
) -> tuple[nn.Module, nn.ModuleList, dict[str, list[float]]]:
    """The initialised plain student, its bridges, and per layer the rank and residual."""
    teacher = copy.deepcopy(plain_teacher).double()
    x = calibration.double()
    sr, feats = teacher(x, return_features=True)
    scale = int(teacher.scale)
    student_feat = x
    weights, biases, bridges = [], [], nn.ModuleList()
    report: dict[str, list[float]] = {"rank": [], "residual": [], "width": []}
    for tap in teacher_taps(teacher):
        f = _pixels(feats[tap][:, :-1])  # the constant channel carries no information
        mu = f.mean(dim=1, keepdim=True)
        u, s, _ = torch.linalg.svd(f - mu, full_matrices=False)
        r = choose_rank(s, rank, eps)
        g = u[:, :r].T @ (f - mu)
        beta = -ADJUST * g.clamp_max(0).mean(dim=1, keepdim=True)
        target = (g + beta).reshape(r, x.shape[0], *feats[tap].shape[-2:]).transpose(0, 1)
        w, b = _lstsq_conv(student_feat, target)
        student_feat = F.conv2d(student_feat, w, b, padding=1).clamp_min(0)
        weights.append(w)
        biases.append(b)
        bridge = nn.Conv2d(r, f.shape[0], 1)
        bridge.weight.data.copy_(u[:, :r].reshape(f.shape[0], r, 1, 1))
        bridge.bias.data.copy_((mu - u[:, :r] @ beta).flatten())
        bridges.append(bridge.float())
        tail = s[r:].square().sum().sqrt() / s.square().sum().sqrt()
        report["rank"].append(r)
        report["residual"].append(float(tail))
        report["width"].append(f.shape[0])
    w, b = _lstsq_conv(student_feat, F.pixel_unshuffle(sr, scale))
    weights.append(w)
    biases.append(b)
    student = build("plain", scale=scale, widths=[len(b) for b in biases])
    for conv, w, b in zip(student.convs, weights, biases, strict=True):
        conv.weight.data.copy_(w)
        conv.bias.data.copy_(b)
    return student, bridges, report
