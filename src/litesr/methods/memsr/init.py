"""MemSR initialisation of a plain student from the plain teacher's features.

The plain teacher (``convert``) is a stack of layers; layer 0 lifts the image, layers
``1 .. E`` are the body features (head, two per residual block, body end ``E``), the rest
are the upsampler and the tail. For each body feature ``f`` (the constant channel left out)
on the pixels of a few calibration patches:

- centre it (``μ`` = channel mean) and take its SVD ``f - μ = U S Vᵀ``; keep rank ``r``:
  a fixed ``r`` (capped at the feature's width) or, with ``rank="auto"``, the smallest ``r``
  whose relative residual ``‖f - μ - U_r U_rᵀ (f - μ)‖_F / ‖f - μ‖_F`` is below ``eps``;
- the student's feature is meant to be ``g = U_rᵀ (f - μ) + β``, where ``β`` shifts each
  coordinate up by 3 × the mean of its negative part (the authors' ``decompose_adjust``)
  so that a ReLU clips little of it;
- the bridge is the 1×1 conv ``g ↦ U_r g + (μ - U_r β)``, which maps ``g`` back onto ``f``.

Two students:

- ``shape="authors"`` (:func:`authors_init`, the authors' ``MemSR_Init.init_student``): one
  layer per body feature, rank ``r`` = the teacher's width by default, the teacher's own
  activations (Identity on the head, on each block's second conv and on the body end), a
  constant channel instead of biases, the body end at full width (identity bridge) and the
  teacher's upsampler and tail copied. Each layer is solved in weight space
  (``solve="weights"``, theirs): the teacher layer composed with the previous bridge, then
  projected on the next bridge (``U_rᵀ``); or in data space (``solve="features"``): the
  least-squares conv from the student's own previous features onto ``g``. Every body
  feature and the SR output are distilled.
- ``shape="width"`` (:func:`width_init`, litesr's earlier, narrower student): rank ``r`` on
  every body feature including the body end, ReLU after every layer, plain biases, one conv
  + PixelShuffle as the tail (least squares onto the teacher's SR), solved in data space.

ReLU does not commute with the rotation ``U_r``, so below full rank (or with ReLU layers at
any rank) the initialised student only approximates the teacher, as in the authors' code.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from litesr.models import build

ADJUST = 3.0
SHAPES = ("authors", "width")
SOLVES = ("weights", "features")


@dataclass
class Initialised:
    """A student, its bridges and what they are matched with.

    ``bridges[i]`` maps the student's hidden feature ``pairs[i][0]`` onto the plain teacher's
    feature ``pairs[i][1]`` (constant channel left out); with ``distill_sr`` the SR outputs
    are compared too. ``report`` holds per bridge the rank, the SVD residual and the width.
    """

    student: nn.Module
    bridges: nn.ModuleList
    pairs: list[tuple[int, int]]
    distill_sr: bool
    report: dict[str, list[float]] = field(default_factory=dict)


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


def _pixels(f: Tensor) -> Tensor:
    """(N, C, H, W) → (C, N·H·W)."""
    return f.transpose(0, 1).flatten(1)


def _unpixels(g: Tensor, like: Tensor) -> Tensor:
    """(C, N·H·W) → (N, C, H, W) with ``like``'s batch and spatial size."""
    return g.reshape(len(g), like.shape[0], *like.shape[-2:]).transpose(0, 1)


def _lstsq_conv(
    inputs: Tensor, target: Tensor, *, const: bool = False, ridge: float = 1e-8
) -> tuple[Tensor, Tensor]:
    """Conv 3×3 weight and bias (``const``: a 3×3 kernel on a zero-padded ones channel)
    minimising ‖conv(inputs) − target‖² (zero padding)."""
    n, c_in = inputs.shape[:2]
    if const:
        inputs = torch.cat([inputs, torch.ones_like(inputs[:, :1])], dim=1)
    cols = F.unfold(inputs, 3, padding=1).transpose(1, 2).reshape(-1, 9 * inputs.shape[1])
    if not const:
        cols = torch.cat([cols, torch.ones(len(cols), 1, dtype=cols.dtype)], dim=1)
    y = target.flatten(2).transpose(1, 2).reshape(-1, target.shape[1])
    gram = cols.T @ cols
    gram += ridge * gram.diagonal().mean() * torch.eye(len(gram), dtype=gram.dtype)
    x = torch.linalg.solve(gram, cols.T @ y)
    if const:
        kernel = x.T.reshape(-1, c_in + 1, 3, 3)
        return kernel[:, :c_in], kernel[:, c_in]
    return x[:-1].T.reshape(-1, c_in, 3, 3), x[-1]


@dataclass
class _Bridge:
    """``f ≈ U g + b`` (``U``: (C, r) with orthonormal columns, ``b``: (C,)); ``residual``:
    the SVD's relative residual at rank r."""

    U: Tensor
    b: Tensor
    residual: float = 0.0

    @classmethod
    def identity(cls, b: Tensor) -> _Bridge:
        return cls(torch.eye(len(b), dtype=b.dtype), b)

    def module(self) -> nn.Module:
        """The 1×1 conv; an identity ``U`` gives a fixed shift by ``b`` (the authors'
        parameter-free ``IdLayer``), or ``nn.Identity`` when ``b`` is zero too."""
        fixed = torch.equal(self.U, torch.eye(len(self.b), dtype=self.U.dtype))
        if fixed and not self.b.any():
            return nn.Identity()
        conv = nn.Conv2d(self.U.shape[1], self.U.shape[0], 1)
        conv.weight.data.copy_(self.U.reshape(*self.U.shape, 1, 1))
        conv.bias.data.copy_(self.b)
        return conv.float().requires_grad_(not fixed)

    def coords(self, f: Tensor) -> Tensor:
        """``g = Uᵀ (f − b)`` of a (C, N) feature."""
        return self.U.T @ (f - self.b[:, None])


def svd_bridge(f: Tensor, rank: int | str, eps: float) -> _Bridge:
    """The bridge of a (C, N) feature: its centred SVD at ``rank``, shifted by ``β``."""
    mu = f.mean(dim=1, keepdim=True)
    u, s, _ = torch.linalg.svd(f - mu, full_matrices=False)
    r = choose_rank(s, rank, eps)
    g = u[:, :r].T @ (f - mu)
    beta = -ADJUST * g.clamp_max(0).mean(dim=1, keepdim=True)
    residual = float(s[r:].square().sum().sqrt() / s.square().sum().sqrt())
    return _Bridge(u[:, :r], (mu - u[:, :r] @ beta).flatten(), residual)


def _teacher_layer(conv: nn.Conv2d, n_out: int) -> tuple[Tensor, Tensor]:
    """A plain-teacher layer (``i > 0``) as (weights on the features, 3×3 kernel on the
    constant channel, bias folded into its centre), output rows ``[:n_out]``."""
    w = conv.weight.detach().double()[:n_out]
    kernel = w[:, -1].clone()
    if conv.bias is not None:
        kernel[:, 1, 1] += conv.bias.detach().double()[:n_out]
    return w[:, :-1], kernel


def _features(plain_teacher: nn.Module, x: Tensor) -> tuple[Tensor, list[Tensor]]:
    teacher = copy.deepcopy(plain_teacher).double()
    with torch.no_grad():
        return teacher(x.double(), return_features=True)


@torch.no_grad()
def authors_init(
    plain_teacher: nn.Module,
    calibration: Tensor,
    acts: list[str],
    offsets: list[float],
    *,
    rank: int | str | None = None,
    eps: float = 5e-2,
    solve: str = "weights",
) -> Initialised:
    """The authors' student of the plain teacher: see the module docstring. ``acts`` are
    the teacher's own activations per plain layer (``convert.edsr_acts``), ``offsets`` the
    offset its linear channels store (``convert``); ``rank`` defaults to the teacher's width
    (its head's).

    The student computes true values where the teacher stores offset ones: its body end
    and upsampler layers subtract the teacher's offsets (the body end's identity bridge adds
    it back for the distillation), as the authors' body end is free of their B = 1000. A
    student reading offset values would turn a small weight change ``δ`` into ``δ · offset``
    errors."""
    if solve not in SOLVES:
        raise ValueError(f"memsr solve {solve!r}: use one of {SOLVES}")
    x = calibration.double()
    sr, feats = _features(plain_teacher, x)
    taps = teacher_taps(plain_teacher)
    widths = [f.shape[1] - 1 for f in feats]  # without the constant channel
    rank = widths[taps[0]] if rank is None else rank
    convs = plain_teacher.convs

    def offset(i: int, n: int) -> Tensor:
        return torch.full((n,), float(offsets[i]), dtype=torch.float64)

    previous = _Bridge.identity(offset(0, x.shape[1]))  # the lift: f_0 = x + offset
    student_feat = x
    weights, kernels, bridges = [], [], []
    report: dict[str, list[float]] = {"rank": [], "residual": [], "width": []}
    for tap in taps:
        f = _pixels(feats[tap][:, :-1])
        bridge = _Bridge.identity(offset(tap, len(f)))  # the body end: its true values
        if tap != taps[-1]:  # the body end keeps the teacher's width
            bridge = svd_bridge(f, rank, eps)
        if solve == "weights":
            w, k = _teacher_layer(convs[tap], widths[tap])
            w_s = torch.einsum("oikl,ir->orkl", w, previous.U)
            k_s = k + torch.einsum("oikl,i->okl", w, previous.b)
            w_s = torch.einsum("or,oikl->rikl", bridge.U, w_s)
            k_s = torch.einsum("or,okl->rkl", bridge.U, k_s)
            k_s[:, 1, 1] -= bridge.U.T @ bridge.b
        else:
            target = _unpixels(bridge.coords(f), feats[tap])
            w_s, k_s = _lstsq_conv(student_feat, target, const=True)
        student_feat = F.conv2d(student_feat, w_s, padding=1)
        student_feat += F.conv2d(torch.ones_like(student_feat[:, :1]), k_s[:, None], padding=1)
        if acts[tap] == "relu":
            student_feat = student_feat.clamp_min(0)
        weights.append(w_s)
        kernels.append(k_s)
        bridges.append(bridge)
        report["rank"].append(bridge.U.shape[1])
        report["residual"].append(bridge.residual)
        report["width"].append(len(f))
        previous = bridge
    tail = range(taps[-1] + 1, len(convs))
    last = len(convs) - 1
    for i in tail:  # the upsampler and the tail, copied (the constant channels dropped)
        n_out = convs[i].out_channels - (plain_teacher.factors[i] ** 2 if i < last else 0)
        w, k = _teacher_layer(convs[i], n_out)
        k = k + offsets[i - 1] * w.sum(1)  # reads true values: the input's offset added
        k[:, 1, 1] -= offsets[i] if i < last else 0.0  # writes true values
        weights.append(w)
        kernels.append(k)
    student = build(
        "plain",
        scale=int(plain_teacher.scale),
        widths=[len(k) for k in kernels],
        factors=[1] * len(taps) + [plain_teacher.factors[i] for i in tail],
        acts=[acts[t] for t in taps] + ["identity"] * len(tail),
        const=True,
    )
    for conv, const, w, k in zip(student.convs, student.consts, weights, kernels, strict=True):
        conv.weight.data.copy_(w)
        const.data.copy_(k)
    pairs = [(k, tap) for k, tap in enumerate(taps)]
    modules = nn.ModuleList(b.module() for b in bridges)
    return Initialised(student, modules, pairs, distill_sr=True, report=report)


@torch.no_grad()
def width_init(
    plain_teacher: nn.Module, calibration: Tensor, *, rank: int | str = 64, eps: float = 5e-2
) -> Initialised:
    """litesr's narrower student (see the module docstring): every body feature at rank
    ``r``, ReLU after every layer, plain biases, one conv + PixelShuffle as the tail."""
    x = calibration.double()
    sr, feats = _features(plain_teacher, x)
    scale = int(plain_teacher.scale)
    student_feat = x
    weights, biases, bridges = [], [], []
    report: dict[str, list[float]] = {"rank": [], "residual": [], "width": []}
    taps = teacher_taps(plain_teacher)
    for tap in taps:
        f = _pixels(feats[tap][:, :-1])
        bridge = svd_bridge(f, rank, eps)
        w, b = _lstsq_conv(student_feat, _unpixels(bridge.coords(f), feats[tap]))
        student_feat = F.conv2d(student_feat, w, b, padding=1).clamp_min(0)
        weights.append(w)
        biases.append(b)
        bridges.append(bridge)
        report["rank"].append(bridge.U.shape[1])
        report["residual"].append(bridge.residual)
        report["width"].append(len(f))
    w, b = _lstsq_conv(student_feat, F.pixel_unshuffle(sr, scale))
    weights.append(w)
    biases.append(b)
    student = build("plain", scale=scale, widths=[len(b) for b in biases])
    for conv, w, b in zip(student.convs, weights, biases, strict=True):
        conv.weight.data.copy_(w)
        conv.bias.data.copy_(b)
    modules = nn.ModuleList(b.module() for b in bridges)
    pairs = [(k, tap) for k, tap in enumerate(taps)]
    return Initialised(student, modules, pairs, distill_sr=False, report=report)


def he_init(student: nn.Module, seed: int) -> nn.Module:
    """Random initialisation for a fair baseline: He (kaiming-normal, fan-in) on every conv,
    with the ReLU gain √2 before a ReLU and gain 1 before none (so the signal keeps its scale
    through the layers), zero biases and zero constant-channel kernels (as the authors'
    ``SR_conv_init`` and ``ConvLayer``)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for conv, act in zip(student.convs, student.acts, strict=True):
            gain = 2.0 if act == "relu" else 1.0
            conv.weight.normal_(0.0, (gain / conv.weight[0].numel()) ** 0.5, generator=gen)
            if conv.bias is not None:
                conv.bias.zero_()
        for const in getattr(student, "consts", []):
            const.zero_()
    return student
