"""DRC step 1, channel-number search (DARTS-style, first order), as the authors' Search.

Every pruned layer pair (a producer conv and the consumer conv that reads its ``C`` channels)
gets the candidate widths ``c_k = round4(int(C (1 − r) p_k))``, ``p ∈ {0.5, 0.6, …, 1.0}``
(duplicates dropped; round4 rounds to a multiple of 4, halves down, within ``[min(4, C), C]``,
as the authors' ``channel_constraints``); with a latency table (``drc.widths: latency``), each
is then rounded to a width that is fast on the cost device
(:func:`litesr.measure.width_latency.fast_width`), duplicates dropped again. Channels are
ranked by the L1 norm of the consumer's input slices (recomputed from the current weights at
every forward); candidate ``k`` keeps the top ``c_k``. The consumer's input channel ``c`` is
scaled by ``Σ_k softmax(α)_k [c in top c_k]`` (the authors' ``compute_channel_weights``).

Every step updates both, as the authors' ``Search.train``: the weights (primal and dual) on a
batch of the first half of the training images with α detached, and α on a batch of the
second half with the weights detached, in one backward pass. α has its own learning rate and
weight decay (an optimiser group of its own, Adam like the weights'; authors: 3e-4 and 1e-3).
The authors' α gradient is first order too: their second-order term is (p − n)·ε/2 instead of
(p − n)/(2ε), numerically zero. Each layer keeps its argmax width.

How far α can travel: Adam moves a coordinate by at most about its learning rate per step, so
α moves at most ``Σ_t lr_α(t)`` (``lr_α × steps``, half of it under a cosine schedule). The
authors' search is 2,500 steps at 3e-4: ``lr_α × steps = 0.75``. :func:`alpha_lr` keeps that
travel for any number of steps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

from litesr.device import full_precision
from litesr.measure.width_latency import fast_width
from litesr.methods.drc.dual import DualNet, DualTask
from litesr.train.patches import PatchSampler

FRACTIONS = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
AUTHORS_ALPHA_TRAVEL = 3e-4 * 2500
"""The authors' ``alpha_lr × search iterations`` (100 epochs of 25 iterations)."""


def alpha_lr(steps: int, travel: float = AUTHORS_ALPHA_TRAVEL) -> float:
    """α's learning rate for a search of ``steps`` steps: the authors' travel ``lr × steps``."""
    return travel / steps


def round4(channels: int, most: int, factor: int = 4) -> int:
    """``channels`` to a multiple of ``factor`` (a remainder of half or less rounds down),
    clipped to ``[min(factor, most), most]``."""
    rem = channels % factor
    channels = channels + factor - rem if 2 * rem > factor else channels - rem
    return min(max(channels, min(factor, most)), most)


def candidate_widths(
    n: int,
    ratio: float,
    fractions: Sequence[float] = FRACTIONS,
    latency: Mapping[int, float] | None = None,
) -> list[int]:
    """Sorted distinct candidate widths of a conv with ``n`` channels at pruning ``ratio``;
    each rounded by the ``latency`` table (ms per width, 1 to ``n``) when one is given."""
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"pruning ratio must be in [0, 1), got {ratio}")
    widths = {round4(int(n * (1.0 - ratio) * p + 1e-9), n) for p in fractions}
    if latency is not None:
        widths = {fast_width(latency, n, w) for w in widths}
    return sorted(widths)


def slice_l1(consumer: nn.Conv2d) -> Tensor:
    """L1 norm of each input slice ``W[:, c]`` of a conv: the authors' channel order."""
    return consumer.weight.detach().abs().sum(dim=(0, 2, 3))


def width_masks(consumer: nn.Conv2d, widths: Sequence[int]) -> Tensor:
    """K×C 0/1 masks over the consumer's input channels: row k keeps the ``widths[k]``
    channels of largest :func:`slice_l1` (ties: the higher index is kept, as
    :func:`litesr.compress.prune.select_channels` removes the lower one first)."""
    n = consumer.in_channels
    order = torch.sort(slice_l1(consumer).double(), stable=True).indices
    rank = torch.empty(n, dtype=torch.long, device=order.device)
    rank[order] = torch.arange(n, device=order.device)
    bounds = torch.tensor([n - w for w in widths], device=order.device)
    return (rank[None, :] >= bounds[:, None]).to(consumer.weight.dtype)


class HalvesSampler:
    """Batches from two disjoint halves of the training images, side by side: ``n`` patches
    of the first half, then ``n`` of the second."""

    def __init__(self, sampler: PatchSampler) -> None:
        pairs = sampler.pairs
        if len(pairs) < 2:
            raise ValueError("the channel search needs at least two training images (two halves)")
        half = len(pairs) // 2
        self.key = f"halves|{sampler.key}"
        self.halves = [
            PatchSampler(part, sampler.scale, sampler.lr_patch, sampler.augment)
            for part in (pairs[:half], pairs[half:])
        ]

    def sample(self, batch_size: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        a, b = (half.sample(batch_size, gen) for half in self.halves)
        return torch.cat([a[0], b[0]]), torch.cat([a[1], b[1]])


class SearchTask(DualTask):
    """The student with softmax-mixed width masks on the inputs of its consumer convs, the
    dual network and the architecture parameters α (one vector per layer, 1e-3 · N(0, 1)).

    ``layers`` maps each consumer conv's name to its candidate widths; ``alpha_lr`` and
    ``alpha_weight_decay`` are α's optimiser settings (the recipe's apply to the weights).
    """

    def __init__(
        self,
        student: nn.Module,
        dual: DualNet,
        layers: Mapping[str, Sequence[int]],
        lam: float = 0.1,
        *,
        alpha_lr: float,
        alpha_weight_decay: float = 1e-3,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(student, dual, lam)
        self.names = list(layers)
        self.candidates = [list(layers[name]) for name in self.names]
        self.alphas = nn.ParameterList(
            nn.Parameter(1e-3 * torch.randn(len(c), generator=generator)) for c in self.candidates
        )
        self.alpha_lr, self.alpha_weight_decay = alpha_lr, alpha_weight_decay
        self.hard = False
        self._live_alpha = False
        self._hooks = [
            student.get_submodule(name).register_forward_pre_hook(self._mask_hook(i))
            for i, name in enumerate(self.names)
        ]

    def _mask_hook(self, i: int):
        def hook(conv: nn.Conv2d, inputs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
            masks = width_masks(conv, self.candidates[i])
            alpha = self.alphas[i]
            if self.hard:
                weights = nn.functional.one_hot(alpha.argmax(), len(alpha)).to(masks)
            else:
                weights = torch.softmax(alpha if self._live_alpha else alpha.detach(), 0)
            # fp32 under bf16 autocast: α's gradient is a small difference of these sums.
            with full_precision(masks.device):
                mix = weights @ masks
            return (inputs[0] * mix.view(1, -1, 1, 1), *inputs[1:])

        return hook

    def remove_hooks(self) -> None:
        for handle in self._hooks:
            handle.remove()
        self._hooks = []

    def param_groups(self) -> list[dict[str, Any]]:
        alphas = list(self.alphas)
        ids = {id(a) for a in alphas}
        weights = [p for p in self.parameters() if p.requires_grad and id(p) not in ids]
        return [
            {"params": weights},
            {"params": alphas, "lr": self.alpha_lr, "weight_decay": self.alpha_weight_decay},
        ]

    def widths(self) -> dict[str, int]:
        """Each layer's argmax width, by consumer name."""
        return {
            name: cands[int(alpha.argmax())]
            for name, cands, alpha in zip(self.names, self.candidates, self.alphas, strict=True)
        }

    def probabilities(self) -> dict[str, list[float]]:
        """softmax(α) of each layer, by consumer name."""
        return {
            n: torch.softmax(a.detach(), 0).tolist()
            for n, a in zip(self.names, self.alphas, strict=True)
        }

    def _arch_terms(self, lr: Tensor, hr: Tensor) -> dict[str, Tensor]:
        """The loss terms with the student's and the dual's weights detached, α live."""
        self._live_alpha = True
        try:
            sr = functional_call(
                self.student, {k: v.detach() for k, v in self.student.named_parameters()}, (lr,)
            )
        finally:
            self._live_alpha = False
        sr2lr = functional_call(
            self.dual, {k: v.detach() for k, v in self.dual.named_parameters()}, (sr,)
        )
        return {
            "primal": nn.functional.l1_loss(sr, hr),
            "dual": nn.functional.l1_loss(sr2lr, lr),
        }

    def loss(self, lr: Tensor, hr: Tensor) -> tuple[Tensor, dict[str, float]]:
        """Weights on the first half (α detached) + α on the second half (weights detached);
        logs both halves' terms and every layer's softmax(α) (``p<layer>_w<width>``)."""
        n = lr.shape[0] // 2
        weights = self.terms(lr[:n], hr[:n])
        arch = self._arch_terms(lr[n:], hr[n:])
        total = sum(t["primal"] + self.lam * t["dual"] for t in (weights, arch))
        extras = {
            "primal": float(weights["primal"].detach()),
            "dual": float(weights["dual"].detach()),
            "val_primal": float(arch["primal"].detach()),
            "val_dual": float(arch["dual"].detach()),
        }
        for i, (cands, alpha) in enumerate(zip(self.candidates, self.alphas, strict=True)):
            probs = torch.softmax(alpha.detach(), 0).tolist()
            extras |= {f"p{i}_w{w}": p for w, p in zip(cands, probs, strict=True)}
        return total, extras
