"""Structured output-channel pruning of convolutions on torch-pruning's dependency graph.

The caller names the convolutions to prune; ``torch_pruning.DependencyGraph`` finds the layers
coupled to each one (residual additions, ESA's ``x * sigmoid(mask(x))``, the next layers'
input channels), so a named conv and everything coupled to it lose the same channels.

Pruning is in two steps, so that the same choice can be applied or only simulated:

1. :func:`select_channels` scores the output channels of each named conv with an
   :data:`Importance` and returns, per conv, the indices of the channels to remove.
   Coupled layers' scores are summed: the score of a channel is the sum, over every conv
   whose output channels are coupled to it, of that conv's per-channel score.
2. :func:`apply_pruning` removes them (the layers shrink); :func:`mask_channels` zeroes the
   same weights instead (producer filters and biases, consumer input-channel slices), so the
   masked network computes exactly what the pruned one does.

:func:`prune_channels` does both steps. Everything works in place on ``model``.

Protected, and refused with ``ValueError``: channels that reach the model's output or pass
through a PixelShuffle (the last conv's ``3 * scale**2`` channels; EDSR's upsampler convs),
since torch-pruning would treat PixelShuffle as channel-preserving. The input image's three
channels are never pruned: only conv outputs are.

A pruned model no longer matches ``litesr.models.build(arch, **args)``; saving and
reloading it (e.g. with its widths) is up to the compression method.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence

import torch
import torch_pruning as tp
from torch import Tensor, nn

Importance = Callable[[nn.Conv2d], Tensor]
"""Scores a conv's output channels: a 1-D tensor of length ``out_channels``, higher = keep."""

_SHUFFLE_OPS = ("pixelshuffle", "pixelunshuffle")


def l1_norm(conv: nn.Conv2d) -> Tensor:
    """L1 norm of each output filter (weights only, bias excluded)."""
    return conv.weight.detach().flatten(1).abs().sum(dim=1)


def l2_norm(conv: nn.Conv2d) -> Tensor:
    """L2 norm of each output filter (weights only, bias excluded)."""
    return conv.weight.detach().flatten(1).norm(dim=1)


def conv_widths(model: nn.Module) -> dict[str, int]:
    """Output channels of every ``nn.Conv2d`` of ``model``, by module name."""
    return {
        name: module.out_channels
        for name, module in model.named_modules()
        if isinstance(module, nn.Conv2d)
    }


def kept_channels(n: int, ratio: float, round_to: int = 1) -> int:
    """Channels kept when removing a fraction ``ratio`` of ``n``.

    The kept count ``n * (1 - ratio)`` is rounded half up to a multiple of ``round_to``,
    then clipped to ``[min(round_to, n), n]`` (so at least one channel is kept).
    """
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"pruning ratio must be in [0, 1), got {ratio}")
    if round_to < 1:
        raise ValueError(f"round_to must be >= 1, got {round_to}")
    kept = math.floor(n * (1.0 - ratio) / round_to + 0.5) * round_to
    return min(n, max(kept, round_to))


def _dependency_graph(model: nn.Module, example_input: Tensor) -> tp.DependencyGraph:
    """Trace ``model`` on ``example_input``, leaving its train/eval mode as it was."""
    training = model.training
    with torch.enable_grad():
        graph = tp.DependencyGraph().build_dependency(
            model, example_inputs=example_input, verbose=False
        )
    model.train(training)
    return graph


def _conv(model: nn.Module, name: str) -> nn.Conv2d:
    module = model.get_submodule(name)
    if not isinstance(module, nn.Conv2d) or module.groups != 1:
        raise ValueError(f"{name!r} is not an ungrouped nn.Conv2d: {module}")
    return module


def _group(graph: tp.DependencyGraph, model: nn.Module, name: str) -> tp.Group:
    """The dependency group of all output channels of conv ``name``; refuses protected ones."""
    conv = _conv(model, name)
    everything = list(range(conv.out_channels))
    group = graph.get_pruning_group(conv, tp.prune_conv_out_channels, everything)
    for item in group:
        node = item.dep.target
        op = node.grad_fn.name().lower() if node.grad_fn is not None else ""
        if node.type == tp.ops.OPTYPE.OUTPUT or op.startswith(_SHUFFLE_OPS):
            raise ValueError(
                f"cannot prune the output channels of conv {name!r}: they reach the model's "
                f"output or a PixelShuffle (via {node.name})"
            )
    return group


def _coupled_outputs(
    graph: tp.DependencyGraph, group: tp.Group
) -> list[tuple[nn.Conv2d, list[int], list[int]]]:
    """(conv, its channel indices, the root conv's matching indices) for each conv whose
    output channels are in ``group``."""
    return [
        (item.dep.target.module, item.idxs, item.root_idxs)
        for item in group
        if isinstance(item.dep.target.module, nn.Conv2d)
        and graph.is_out_channel_pruning_fn(item.dep.handler)
    ]


def select_channels(
    model: nn.Module,
    convs: Iterable[str],
    ratio: float | Mapping[str, int],
    example_input: Tensor,
    importance: Importance = l2_norm,
    *,
    round_to: int = 1,
) -> dict[str, list[int]]:
    """Output channels to remove from each named conv: the lowest group scores (model unchanged).

    ``ratio`` is the fraction of channels removed (see :func:`kept_channels` for rounding) or,
    per conv name, the number of channels to keep. A named conv coupled to an earlier named
    one (e.g. both sides of a residual add) is covered by the earlier one's entry; their
    target widths must then agree. Ties are broken by channel index.
    """
    graph = _dependency_graph(model, example_input)
    removed: dict[str, list[int]] = {}
    target_of: dict[nn.Conv2d, int] = {}  # conv -> kept width, over all groups selected so far
    for name in convs:
        conv = _conv(model, name)
        n = conv.out_channels
        kept = ratio[name] if isinstance(ratio, Mapping) else kept_channels(n, ratio, round_to)
        if not 1 <= kept <= n:
            raise ValueError(f"conv {name!r} has {n} channels, cannot keep {kept}")
        if conv in target_of:
            if target_of[conv] != kept:
                raise ValueError(
                    f"conv {name!r} is coupled to an earlier named conv with a different "
                    f"target width ({target_of[conv]} != {kept})"
                )
            continue
        scores = torch.zeros(n, dtype=torch.float64)
        for coupled, idxs, root_idxs in _coupled_outputs(graph, _group(graph, model, name)):
            scores[root_idxs] += importance(coupled)[idxs].to(scores)
            target_of[coupled] = kept
        order = torch.sort(scores, stable=True).indices
        removed[name] = sorted(order[: n - kept].tolist())
    return removed


def _groups_to_prune(
    model: nn.Module, removed: Mapping[str, Sequence[int]], example_input: Tensor
) -> tuple[tp.DependencyGraph, list[tp.Group]]:
    """Dependency groups restricted to the channels in ``removed``; coupled roots are refused."""
    graph = _dependency_graph(model, example_input)
    groups, seen = [], set()
    for name, idxs in removed.items():
        convs = {conv for conv, _, _ in _coupled_outputs(graph, _group(graph, model, name))}
        if convs & seen:
            raise ValueError(f"conv {name!r} is coupled to another conv of the same plan")
        seen |= convs
        if idxs:
            conv = _conv(model, name)
            groups.append(graph.get_pruning_group(conv, tp.prune_conv_out_channels, list(idxs)))
    return graph, groups


def apply_pruning(
    model: nn.Module, removed: Mapping[str, Sequence[int]], example_input: Tensor
) -> nn.Module:
    """Remove the given output channels of each named conv and of its coupled layers, in place.

    ``removed`` maps conv names to channel indices of the unpruned model, as returned by
    :func:`select_channels`. Returns ``model``.
    """
    _, groups = _groups_to_prune(model, removed, example_input)
    for group in groups:
        group.prune()
    return model


@torch.no_grad()
def mask_channels(
    model: nn.Module, removed: Mapping[str, Sequence[int]], example_input: Tensor
) -> nn.Module:
    """Zero, in place, exactly the weights :func:`apply_pruning` would remove; returns ``model``.

    Producers lose their filters and biases, consumers the matching input-channel slices, so
    the outputs equal the pruned model's whatever the activations. Only ``nn.Conv2d`` layers
    (ungrouped) may hold parameters in the coupled groups.
    """
    graph, groups = _groups_to_prune(model, removed, example_input)
    for group in groups:
        for item in group:
            module = item.dep.target.module
            if not isinstance(module, nn.Conv2d) or module.groups != 1:
                if isinstance(module, nn.Module) and any(module.parameters(recurse=False)):
                    raise NotImplementedError(f"cannot mask coupled layer {module}")
                continue
            if graph.is_out_channel_pruning_fn(item.dep.handler):
                module.weight[item.idxs] = 0.0
                if module.bias is not None:
                    module.bias[item.idxs] = 0.0
            else:
                module.weight[:, item.idxs] = 0.0
    return model


def prune_channels(
    model: nn.Module,
    convs: Iterable[str],
    ratio: float | Mapping[str, int],
    example_input: Tensor,
    importance: Importance = l2_norm,
    *,
    round_to: int = 1,
) -> nn.Module:
    """:func:`select_channels` then :func:`apply_pruning`: prunes ``model`` in place, returns it."""
    removed = select_channels(model, convs, ratio, example_input, importance, round_to=round_to)
    return apply_pruning(model, removed, example_input)
