"""Shared compression primitives: structured channel pruning and re-parameterisation."""

from litesr.compress.prune import (
    Importance,
    apply_pruning,
    conv_widths,
    kept_channels,
    l1_norm,
    l2_norm,
    mask_channels,
    prune_channels,
    select_channels,
)
from litesr.compress.reparam import (
    Conv3XC,
    RepBlock,
    identity_kernel,
    merge_1x1_then_valid,
    merge_parallel,
    merge_sequential_1x1,
    reparameterize,
)

__all__ = [
    "Conv3XC",
    "Importance",
    "RepBlock",
    "apply_pruning",
    "conv_widths",
    "identity_kernel",
    "kept_channels",
    "l1_norm",
    "l2_norm",
    "mask_channels",
    "merge_1x1_then_valid",
    "merge_parallel",
    "merge_sequential_1x1",
    "prune_channels",
    "reparameterize",
    "select_channels",
]
