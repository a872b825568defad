"""MemSR's memory argument in numbers: the two-activation-map floor of a network and the
plain student MemSR builds of an EDSR teacher (for ``benchmarks/bench_memsr.py`` and the
tests; weights do not matter for memory)."""

from __future__ import annotations

import torch
from torch import nn

from litesr.methods.memsr.convert import convert, edsr_acts
from litesr.methods.memsr.init import authors_init

PROBE_HW = (16, 16)  # maps are measured at this LR size and scaled by the pixel count


def floor_bytes(model: nn.Module, lr_hw: tuple[int, int]) -> int:
    """The two-activation-map floor, fp32: the largest input + output of one layer, a layer
    being a convolution with its activation and, where one follows, its pixel shuffle (which
    keeps the element count: the layer's output is as large as the convolution's; the
    pre-shuffle map is an intermediate that a banded execution never holds whole). Any
    layer-by-layer execution holds at least this much at once.

    With EDSR's tail the floor is set by the tail (per factor 2, conv F→4F + shuffle: F at
    the lower size in, F at the higher out), the same for the teacher and its plain student;
    EDSR's skips keep at most four body maps alive at LR (4F at LR: F at the output size at
    ×2, F / 4 at ×4), below it. Measured with forward hooks at ``PROBE_HW`` and scaled by the
    pixel count (every map of a padded 3×3 convolution or a shuffle is proportional to it)."""
    sizes: list[int] = []

    def hook(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
        sizes.append(args[0].numel() + out.numel())

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, *PROBE_HW))
    finally:
        for h in handles:
            h.remove()
    return 4 * max(sizes) * lr_hw[0] * lr_hw[1] // (PROBE_HW[0] * PROBE_HW[1])


def authors_student(teacher: nn.Module, seed: int = 0) -> nn.Module:
    """The plain student MemSR builds of an EDSR ``teacher`` (its shape as the workflow's
    ``init`` step makes it: ``convert`` then ``authors_init``), on random calibration
    patches."""
    plain, offsets = convert(teacher)
    calibration = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(seed))
    return authors_init(plain, calibration, edsr_acts(teacher), offsets).student.eval()
