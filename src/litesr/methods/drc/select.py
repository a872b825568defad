"""DRC step 2, channel selection of one layer, as the authors' ``LayerChannelSelection``
(discrimination-aware channel pruning with the dual-regression loss).

A layer is a producer conv and the consumer conv that reads its channels (an EDSR residual
block's two convs). The consumer's input slices start at zero; then, until ``width``
channels are kept:

1. the gradient of the selection loss with respect to the consumer's weights is summed over
   ``patches`` fresh calibration patches (in batches of ``batch``);
2. the ``pick`` unpicked channels with the largest ``Σ_o ‖∂L/∂W[o, c]‖_F`` (the Frobenius
   norm of each kernel's gradient, summed over the consumer's output channels) are picked and
   their slices get the original weights back (the authors' warm start);
3. ``refit_steps`` SGD steps (Nesterov momentum, each on a fresh batch) re-fit the kept
   slices and the consumer's bias; the other slices stay zero.

The selection loss is the dual-regression loss plus the reconstruction of the consumer's
output, in the authors' units (images in [0, ``units``]; theirs 255):
``units · (L1(P(x), y) + λ L1(D(P(x)), x)) + rec_weight · f_units² · MSE(f(P), f(T))``, with D
the primal's dual network (frozen) and T the unpruned model. The weights' gradients are then
the authors' (a network on [0, 1] with the same weights and biases / 255 computes their
features / 255), so ``refit_lr`` is theirs; their bias is 255 × ours, so the bias's step is
``refit_lr / f_units²``. ``f_units`` (``feature_units``) is ``units`` for a network trained
on [0, 1] images; a network whose features already have the 0–255 scale (an RLFN released
for 0–255 with its range folded into its first and last convs) has ``f_units`` = 1. Every
other weight of the model is frozen while a layer is selected.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from litesr.train.patches import Sampler


@dataclass(frozen=True)
class Selection:
    """The selection's settings; defaults are the authors' (DRN-S, DIV2K, ×4)."""

    patches: int = 160
    batch: int = 16
    lr_patch: int = 48
    pick: int = 1
    refit_steps: int = 10
    refit_lr: float = 5e-5
    momentum: float = 0.9
    rec_weight: float = 1.0
    units: float = 255.0
    feature_units: float | None = None

    @property
    def f_units(self) -> float:
        """The features' scale factor to the authors' units (``units`` unless set)."""
        return self.units if self.feature_units is None else self.feature_units

    def __post_init__(self) -> None:
        if min(self.patches, self.batch, self.lr_patch, self.pick) < 1 or self.refit_steps < 0:
            raise ValueError(f"selection settings must be positive: {asdict(self)}")


class _Stop(Exception):
    """Raised by a hook to end a forward pass once the wanted output is known."""


@contextmanager
def _capture(module: nn.Module, stop: bool = False) -> Iterator[list[Tensor]]:
    """Record ``module``'s output; with ``stop``, end the forward pass right there."""
    found: list[Tensor] = []

    def hook(_m: nn.Module, _i: tuple[Tensor, ...], out: Tensor) -> None:
        found.append(out)
        if stop:
            raise _Stop

    handle = module.register_forward_hook(hook)
    try:
        yield found
    finally:
        handle.remove()


@torch.no_grad()
def layer_output(model: nn.Module, name: str, x: Tensor) -> Tensor:
    """The output of ``model``'s module ``name`` on input ``x`` (the rest is not computed)."""
    with _capture(model.get_submodule(name), stop=True) as found:
        try:
            model(x)
        except _Stop:
            pass
    return found[0]


def channel_scores(grad: Tensor) -> Tensor:
    """``Σ_o ‖grad[o, c]‖_F`` per input channel ``c`` of a conv weight's gradient (the
    authors' ``find_most_violated``), in float64 on the CPU."""
    return grad.detach().pow(2).sum((2, 3)).sqrt().sum(0).double().cpu()


class LayerSelection:
    """Greedy selection of the channels a consumer conv keeps (see the module docstring).

    ``model`` is pruned in place (earlier layers already pruned); ``reference`` is the
    unpruned model with the same layer names; ``dual`` the primal's dual network.
    """

    def __init__(
        self,
        model: nn.Module,
        reference: nn.Module,
        dual: nn.Module,
        lam: float,
        sampler: Sampler,
        settings: Selection,
        gen: torch.Generator,
    ) -> None:
        self.model, self.reference, self.dual, self.lam = model, reference, dual, lam
        self.sampler, self.s, self.gen = sampler, settings, gen
        self.log: list[dict[str, float]] = []

    def loss(self, consumer: str, lr: Tensor, hr: Tensor) -> Tensor:
        """The selection loss of one batch, in the authors' units."""
        dev = next(self.model.parameters()).device
        lr, hr = lr.to(dev), hr.to(dev)
        target = layer_output(self.reference, consumer, lr)
        with _capture(self.model.get_submodule(consumer)) as found:
            sr = self.model(lr)
        regression = nn.functional.l1_loss(sr, hr)
        if self.lam > 0:
            regression = regression + self.lam * nn.functional.l1_loss(self.dual(sr), lr)
        rec = nn.functional.mse_loss(found[0], target)
        return self.s.units * regression + self.s.rec_weight * self.s.f_units**2 * rec

    def _batches(self, patches: int) -> Iterator[tuple[Tensor, Tensor]]:
        """Fresh patches, ``patches`` in all, in batches of at most ``batch``."""
        for start in range(0, patches, self.s.batch):
            lr, hr = self.sampler.sample(min(self.s.batch, patches - start), self.gen)[:2]
            yield lr, hr

    def __call__(self, consumer: str, width: int) -> list[int]:
        """Select ``width`` input channels of conv ``consumer``; returns them in pick order.

        Afterwards the consumer's kept slices hold their re-fitted weights and the others are
        zero; the model's other weights are unchanged.
        """
        conv = self.model.get_submodule(consumer)
        if not isinstance(conv, nn.Conv2d) or conv.groups != 1:
            raise ValueError(f"{consumer!r} is not an ungrouped nn.Conv2d")
        n = conv.in_channels
        if not 1 <= width <= n:
            raise ValueError(f"{consumer!r} reads {n} channels, cannot keep {width}")
        grad_state = {p: p.requires_grad for m in (self.model, self.dual) for p in m.parameters()}
        self.model.requires_grad_(False)
        self.dual.requires_grad_(False)
        conv.requires_grad_(True)
        original = conv.weight.detach().clone()
        kept = torch.zeros(n, dtype=torch.bool, device=original.device)
        order: list[int] = []
        try:
            with torch.no_grad():
                conv.weight.zero_()
            while len(order) < width:
                scores, selection_loss = self._scores(consumer, conv)
                scores[kept.cpu()] = -math.inf
                ranked = torch.sort(scores, descending=True, stable=True).indices.tolist()
                chosen = ranked[: min(self.s.pick, width - len(order))]
                kept[chosen] = True
                with torch.no_grad():
                    conv.weight[:, chosen] = original[:, chosen]
                order += chosen
                refit_loss = self._refit(consumer, conv, kept)
                self.log.append(
                    {
                        "step": len(self.log) + 1,
                        "kept": len(order),
                        "channels": " ".join(map(str, chosen)),
                        "selection_loss": selection_loss,
                        "refit_loss": refit_loss,
                    }
                )
        finally:
            for p, state in grad_state.items():
                p.requires_grad_(state)
        return order

    def _scores(self, consumer: str, conv: nn.Conv2d) -> tuple[Tensor, float]:
        """``Σ_o ‖∂L/∂W[o, c]‖_F`` of the loss summed over the calibration patches, and the
        mean batch loss."""
        grad = torch.zeros_like(conv.weight)
        losses = []
        for lr, hr in self._batches(self.s.patches):
            loss = self.loss(consumer, lr, hr)
            grad += torch.autograd.grad(loss, conv.weight)[0]
            losses.append(float(loss.detach()))
        return channel_scores(grad), sum(losses) / len(losses)

    def _refit(self, consumer: str, conv: nn.Conv2d, kept: Tensor) -> float:
        """SGD on the kept slices (gradient masked) and the bias; the last batch's loss."""
        if self.s.refit_steps == 0:
            return math.nan
        groups = [{"params": [conv.weight]}]
        if conv.bias is not None:
            groups.append({"params": [conv.bias], "lr": self.s.refit_lr / self.s.f_units**2})
        opt = torch.optim.SGD(
            groups, lr=self.s.refit_lr, momentum=self.s.momentum, nesterov=self.s.momentum > 0
        )
        mask = kept.to(conv.weight.dtype).view(1, -1, 1, 1)
        losses = []
        for lr, hr in self._batches(self.s.refit_steps * self.s.batch):
            loss = self.loss(consumer, lr, hr)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            conv.weight.grad.mul_(mask)
            opt.step()
            losses.append(float(loss.detach()))
        return losses[-1]
