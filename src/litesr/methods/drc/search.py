"""DRC step 1, channel-number search (DARTS-style, first order).

Every prunable conv with ``C`` output channels and target ratio ``r`` gets the candidate
widths ``c_k = round4(int(C (1 − r) p_k))``, ``p ∈ {0.5, 0.6, …, 1.0}`` (duplicates dropped;
round4 rounds to a multiple of 4, halves down, within ``[min(4, C), C]``, as the authors'
``channel_constraints``). Channels are ranked by the L1 norm of their filters (the shared
``l1_norm``, recomputed from the current weights at every forward); candidate ``k`` keeps the
top ``c_k``. The conv's output is multiplied by ``Σ_k softmax(α)_k mask_k``.

α and the weights (primal and dual) are updated alternately by one optimiser: odd steps train
the weights on a batch from the first half of the training images (α detached), even steps
train α on a batch from the second half (weights detached, so they get no gradient), both
against the dual-regression loss. The authors use the second-order DARTS update; this is the
first-order one. Each layer keeps its argmax width.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call

from litesr.compress.prune import l1_norm
from litesr.methods.drc.dual import DualNet, DualTask
from litesr.train.patches import PatchSampler

FRACTIONS = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def round4(channels: int, most: int, factor: int = 4) -> int:
    """``channels`` to a multiple of ``factor`` (a remainder of half or less rounds down),
    clipped to ``[min(factor, most), most]``."""
    rem = channels % factor
    channels = channels + factor - rem if 2 * rem > factor else channels - rem
    return min(max(channels, min(factor, most)), most)


def candidate_widths(n: int, ratio: float, fractions: Sequence[float] = FRACTIONS) -> list[int]:
    """Sorted distinct candidate widths of a conv with ``n`` channels at pruning ``ratio``."""
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"pruning ratio must be in [0, 1), got {ratio}")
    return sorted({round4(int(n * (1.0 - ratio) * p + 1e-9), n) for p in fractions})


def width_masks(conv: nn.Conv2d, widths: Sequence[int]) -> Tensor:
    """K×C 0/1 masks: row k keeps the ``widths[k]`` channels of largest filter L1 norm (ties:
    the higher index is kept, as :func:`litesr.compress.prune.select_channels` removes the
    lower one first)."""
    n = conv.out_channels
    order = torch.sort(l1_norm(conv).double(), stable=True).indices
    rank = torch.empty(n, dtype=torch.long, device=order.device)
    rank[order] = torch.arange(n, device=order.device)
    bounds = torch.tensor([n - w for w in widths], device=order.device)
    return (rank[None, :] >= bounds[:, None]).to(conv.weight.dtype)


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
    """The student with softmax-mixed width masks on its prunable convs, the dual network and
    the architecture parameters α (one vector per conv, initialised at 1e-3 · N(0, 1))."""

    def __init__(
        self,
        student: nn.Module,
        dual: DualNet,
        candidates: Mapping[str, Sequence[int]],
        lam: float = 0.1,
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(student, dual, lam)
        self.names = list(candidates)
        self.candidates = [list(candidates[name]) for name in self.names]
        self.alphas = nn.ParameterList(
            nn.Parameter(1e-3 * torch.randn(len(c), generator=generator)) for c in self.candidates
        )
        self.register_buffer("phase", torch.zeros((), dtype=torch.long))
        self.hard = False
        self._arch_step = False
        self._hooks = [
            student.get_submodule(name).register_forward_hook(self._mask_hook(i))
            for i, name in enumerate(self.names)
        ]

    def _mask_hook(self, i: int):
        def hook(conv: nn.Conv2d, _inputs: tuple[Tensor, ...], out: Tensor) -> Tensor:
            masks = width_masks(conv, self.candidates[i])
            alpha = self.alphas[i]
            if self.hard:
                weights = nn.functional.one_hot(alpha.argmax(), len(alpha)).to(masks)
            else:
                weights = torch.softmax(alpha if self._arch_step else alpha.detach(), 0)
            return out * (weights @ masks).view(1, -1, 1, 1)

        return hook

    def remove_hooks(self) -> None:
        for handle in self._hooks:
            handle.remove()
        self._hooks = []

    def widths(self) -> dict[str, int]:
        """Each conv's argmax width."""
        return {
            name: cands[int(alpha.argmax())]
            for name, cands, alpha in zip(self.names, self.candidates, self.alphas, strict=True)
        }

    def probabilities(self) -> dict[str, list[float]]:
        """softmax(α) of each conv, by name."""
        return {
            n: torch.softmax(a.detach(), 0).tolist()
            for n, a in zip(self.names, self.alphas, strict=True)
        }

    def _detached_terms(self, lr: Tensor, hr: Tensor) -> dict[str, Tensor]:
        """The loss terms with the student's and the dual's weights detached (α step)."""
        student = functional_call(
            self.student, {k: v.detach() for k, v in self.student.named_parameters()}, (lr,)
        )
        sr2lr = functional_call(
            self.dual, {k: v.detach() for k, v in self.dual.named_parameters()}, (student,)
        )
        return {
            "primal": nn.functional.l1_loss(student, hr),
            "dual": nn.functional.l1_loss(sr2lr, lr),
            "distill": lr.new_zeros(()),
        }

    def loss(self, lr: Tensor, hr: Tensor) -> tuple[Tensor, dict[str, float]]:
        n = lr.shape[0] // 2
        arch = bool(self.phase.item())
        self._arch_step = arch
        try:
            if arch:
                terms = self._detached_terms(lr[n:], hr[n:])
            else:
                terms = self.terms(lr[:n], hr[:n])
        finally:
            self._arch_step = False
        total = terms["primal"] + self.lam * terms["dual"]
        extras = {"arch_step": float(arch), **{k: float(v.detach()) for k, v in terms.items()}}
        extras["alpha_max_p"] = float(
            torch.stack([torch.softmax(a.detach(), 0).max() for a in self.alphas]).mean()
        )
        return total, extras

    def after_step(self, step: int) -> None:
        self.phase.fill_(1 - int(self.phase.item()))
