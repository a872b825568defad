"""Dual-regression importance (DRC, after DCP): a gradient-based :data:`Importance`.

For a conv ``P``, the consumers are the convs that read its output channels (found on
torch-pruning's dependency graph, as :mod:`litesr.compress.prune` does). Channels are picked
greedily, as in discrimination-aware channel pruning: every input slice of the consumers that
reads one of ``P``'s channels is zeroed; then, ``pick`` channels at a time, the channels whose
consumer slices have the largest gradient norm ``‖∂L/∂W[:, c]‖`` are chosen and their weights
restored, until all are picked. ``L`` is the dual-regression loss on a fixed calibration
batch, ``L1(M(x), y) + λ L1(D(M(x)), x)``, plus ``rec_weight`` times the reconstruction MSE of
the consumers' outputs against a reference (unpruned) model's same-named layers. Channels
picked earlier score higher; the model's weights are unchanged afterwards.

Use it as the ``importance`` of :func:`litesr.compress.prune.select_channels`; it costs
``ceil(C / pick)`` forward/backward passes per scored conv.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch_pruning as tp
from torch import Tensor, nn

from litesr.compress.prune import _dependency_graph


@contextmanager
def _capture(modules: dict[str, nn.Module]) -> Iterator[dict[str, Tensor]]:
    """Record each module's output, by name, while the context is open."""
    outputs: dict[str, Tensor] = {}
    handles = [
        module.register_forward_hook(lambda _m, _i, out, name=name: outputs.__setitem__(name, out))
        for name, module in modules.items()
    ]
    try:
        yield outputs
    finally:
        for handle in handles:
            handle.remove()


class DualRegressionImportance:
    """An :data:`~litesr.compress.prune.Importance` scoring channels by greedy gradient picks.

    ``lr``/``hr``: the calibration batch; ``example_input``: the tracing input;
    ``dual``: the dual network (needed when ``lam > 0``); ``reference``: the unpruned model
    whose consumer outputs the reconstruction term targets (needed when ``rec_weight > 0``).
    """

    def __init__(
        self,
        model: nn.Module,
        lr: Tensor,
        hr: Tensor,
        example_input: Tensor,
        *,
        dual: nn.Module | None = None,
        lam: float = 0.1,
        reference: nn.Module | None = None,
        rec_weight: float = 1.0,
        pick: int = 4,
    ) -> None:
        if lam > 0 and dual is None:
            raise ValueError(f"dual weight λ = {lam} needs a dual network")
        if rec_weight > 0 and reference is None:
            raise ValueError(f"reconstruction weight {rec_weight} needs a reference model")
        if pick < 1:
            raise ValueError(f"pick must be >= 1, got {pick}")
        self.model, self.lr, self.hr, self.dual = model, lr, hr, dual
        self.lam, self.reference, self.rec_weight, self.pick = lam, reference, rec_weight, pick
        self.graph = _dependency_graph(model, example_input)
        self.names = {module: name for name, module in model.named_modules()}

    def consumers(self, conv: nn.Conv2d) -> list[tuple[nn.Conv2d, list[int], list[int]]]:
        """(consumer conv, its input-channel indices, ``conv``'s matching output channels)."""
        everything = list(range(conv.out_channels))
        group = self.graph.get_pruning_group(conv, tp.prune_conv_out_channels, everything)
        found = [
            (item.dep.target.module, list(item.idxs), list(item.root_idxs))
            for item in group
            if isinstance(item.dep.target.module, nn.Conv2d)
            and not self.graph.is_out_channel_pruning_fn(item.dep.handler)
        ]
        if not found:
            raise ValueError(f"no conv reads the output channels of {self.names.get(conv)!r}")
        return found

    def loss(self, consumers: dict[str, nn.Conv2d], targets: dict[str, Tensor]) -> Tensor:
        """Dual-regression loss on the calibration batch plus the consumers' reconstruction."""
        with _capture(consumers) as outputs:
            sr = self.model(self.lr)
        total = nn.functional.l1_loss(sr, self.hr)
        if self.lam > 0:
            total = total + self.lam * nn.functional.l1_loss(self.dual(sr), self.lr)
        for name, target in targets.items():
            if outputs[name].shape != target.shape:
                raise ValueError(
                    f"layer {name!r}: output {tuple(outputs[name].shape)} cannot be compared "
                    f"with the reference's {tuple(target.shape)}"
                )
            total = total + self.rec_weight * nn.functional.mse_loss(outputs[name], target)
        return total

    def __call__(self, conv: nn.Conv2d) -> Tensor:
        found = self.consumers(conv)
        consumers = {self.names[c]: c for c, _, _ in found}
        targets: dict[str, Tensor] = {}
        if self.rec_weight > 0:
            refs = {name: self.reference.get_submodule(name) for name in consumers}
            with torch.no_grad(), _capture(refs) as outputs:
                self.reference(self.lr)
            targets = dict(outputs)
        saved = [c.weight.detach().clone() for c, _, _ in found]
        n = conv.out_channels
        order: list[int] = []
        try:
            with torch.no_grad():
                for c, idxs, _ in found:
                    c.weight[:, idxs] = 0.0
            while len(order) < n:
                grads = torch.autograd.grad(
                    self.loss(consumers, targets), [c.weight for c, _, _ in found]
                )
                norm2 = torch.zeros(n, dtype=torch.float64)
                for grad, (_, idxs, roots) in zip(grads, found, strict=True):
                    per_slice = grad.detach()[:, idxs].transpose(0, 1).flatten(1).pow(2).sum(1)
                    norm2.index_add_(0, torch.tensor(roots), per_slice.double().cpu())
                norm2[order] = -math.inf
                ranked = torch.sort(norm2, descending=True, stable=True).indices.tolist()
                chosen = ranked[: min(self.pick, n - len(order))]
                with torch.no_grad():
                    for (c, idxs, roots), weight in zip(found, saved, strict=True):
                        slot = [i for i, r in zip(idxs, roots, strict=True) if r in chosen]
                        c.weight[:, slot] = weight[:, slot]
                order += chosen
        finally:
            with torch.no_grad():
                for (c, _, _), weight in zip(found, saved, strict=True):
                    c.weight.copy_(weight)
        scores = torch.empty(n)
        scores[order] = torch.arange(n, 0, -1, dtype=scores.dtype)
        return scores
