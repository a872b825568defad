"""``litesr export``: a trained model as an ONNX graph that takes any image size.

The graph's input ``lr`` is N×3×H×W float RGB in [0, 1] with dynamic N, H and W; its output
``sr`` is N×3×(scale·H)×(scale·W) (not clamped: clamp to [0, 1] and round as
``litesr.evaluate.run.super_resolve`` does). It is exported with the dynamo exporter
(``torch.onnx.export(dynamo=True)`` with ``dynamic_shapes``); should that fail for an
architecture, the TorchScript exporter (``dynamo=False`` with ``dynamic_axes``) is tried.
Either way the file is then checked with onnxruntime against torch at two image sizes other
than the traced one (max difference ≤ 1e-4), so a graph that only works at the traced size
is refused instead of written.

**Opset.** The graph is written in the opset asked for (``--opset``), or not at all. The
dynamo exporter writes opsets from 18 up to the newest that the ``onnx`` package knows, and
lower ones by a version conversion that does not always succeed (it then keeps opset 18
without saying so); the TorchScript exporter writes opsets 7 to 20. Below 18 the
TorchScript exporter is tried first. Every file's ``opset_import`` is read back, and one in
another opset counts as a failure of that exporter; an opset outside 7 to the newest is
refused before anything is exported.

VDSR upsamples with MATLAB bicubic as a product with interpolation matrices built, and
cached, for the input size (``litesr.data.resize_torch``): traced, these are constants of
the traced size, and the dynamo exporter cannot trace the size-keyed cache. For export the
same interpolation is written as convolutions: for an integer upscaling ``s`` each of the
``s`` output phases is a fixed 5-tap filter (taken from the interpolation matrix itself) on
the input padded by replicating its edge (MATLAB's boundary rule), and the phases are
interleaved. It equals the matrix form up to float rounding.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from litesr.atomic import atomic_path, remove_stale_temporaries

log = logging.getLogger(__name__)

DEFAULT_OPSET = 18
MIN_OPSET = 7  # the oldest opset an exporter writes (the TorchScript one)
DYNAMO_MIN_OPSET = 18  # the dynamo exporter writes lower opsets only by a version conversion
TORCHSCRIPT_MAX_OPSET = 20
TRACE_HW = (48, 40)  # traced LR size; RLFN's ESA needs at least 15×15
CHECK_HWS = ((33, 57), (64, 21))  # sizes the exported graph is checked at
CHECK_ATOL = 1e-4


class ExportError(ValueError):
    """The model could not be exported with a dynamic image size."""


def _phase_filters(scale: int) -> np.ndarray:
    """The ``scale`` × 5 filters of MATLAB bicubic upscaling, one per output phase: output
    ``scale·k + p`` is ``filters[p] @ input[k-2 : k+3]`` (replicate-padded at the edges)."""
    from litesr.data.resize import interp_matrix

    n, k = 9, 4
    matrix = interp_matrix(n, float(scale), n * scale)
    rows = matrix[scale * k : scale * (k + 1)]
    filters = rows[:, k - 2 : k + 3]
    if not np.allclose(filters.sum(axis=1), 1.0) or not np.allclose(rows.sum(axis=1), 1.0):
        raise ExportError(f"bicubic ×{scale} is not a 5-tap filter per output phase")
    return filters


def upsample_bicubic_conv(x: Tensor, scale: int) -> Tensor:
    """MATLAB bicubic upscaling of an N×C×h×w tensor by an integer ``scale``, as convolutions
    (exportable with a dynamic size; equal to ``resize_torch.upsample_bicubic`` up to float
    rounding)."""
    n, c, h, w = x.shape
    f = torch.as_tensor(_phase_filters(scale), dtype=x.dtype, device=x.device)
    y = x.reshape(n * c, 1, h, w)
    y = F.conv2d(F.pad(y, (0, 0, 2, 2), mode="replicate"), f.view(scale, 1, 5, 1))
    y = y.permute(0, 2, 1, 3).reshape(n * c, 1, h * scale, w)  # interleave the row phases
    y = F.conv2d(F.pad(y, (2, 2, 0, 0), mode="replicate"), f.view(scale, 1, 1, 5))
    return y.permute(0, 2, 3, 1).reshape(n, c, h * scale, w * scale)


@contextlib.contextmanager
def exportable(model: nn.Module) -> Iterator[nn.Module]:
    """``model``, with the matrix-form bicubic upsampling of its module (VDSR) swapped for
    :func:`upsample_bicubic_conv` while the context lasts."""
    from litesr.data import resize_torch

    module = sys.modules[type(model).__module__]
    original = resize_torch.upsample_bicubic
    patched = [
        m for m in {module, resize_torch} if getattr(m, "upsample_bicubic", None) is original
    ]
    for m in patched:
        m.upsample_bicubic = upsample_bicubic_conv
    try:
        yield model
    finally:
        for m in patched:
            m.upsample_bicubic = original


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporters' progress chatter (INFO logs of onnxscript, warnings about
    torchvision ops that litesr does not use); real failures still raise."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript", "onnx_ir")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notes; the graph is checked numerically
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _export_dynamo(model: nn.Module, x: Tensor, path: Path, opset: int) -> None:
    height = torch.export.Dim("height", min=16)
    width = torch.export.Dim("width", min=16)
    torch.onnx.export(
        model,
        (x,),
        str(path),
        dynamo=True,
        dynamic_shapes=({0: torch.export.Dim("batch", min=1), 2: height, 3: width},),
        input_names=["lr"],
        output_names=["sr"],
        opset_version=opset,
        external_data=False,
        verbose=False,
    )


def _export_torchscript(model: nn.Module, x: Tensor, path: Path, opset: int) -> None:
    torch.onnx.export(
        model,
        (x,),
        str(path),
        dynamo=False,
        input_names=["lr"],
        output_names=["sr"],
        dynamic_axes={"lr": {0: "batch", 2: "height", 3: "width"}, "sr": {0: "batch"}},
        opset_version=opset,
    )


def max_opset() -> int:
    """The newest ONNX opset that the installed ``onnx`` package knows."""
    import onnx

    return int(onnx.defs.onnx_opset_version())


def supported_opsets() -> str:
    """The opsets the exporters write, in words."""
    return (
        f"{MIN_OPSET}–{max_opset()} ({MIN_OPSET}–{TORCHSCRIPT_MAX_OPSET} by the TorchScript "
        f"exporter, {DYNAMO_MIN_OPSET}–{max_opset()} by the dynamo exporter)"
    )


def written_opset(path: Path) -> int | None:
    """The default-domain opset in the ``opset_import`` of the ONNX file ``path``."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    versions = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    return versions[0] if versions else None


def check_onnx(path: Path, model: nn.Module, sizes=CHECK_HWS, atol: float = CHECK_ATOL) -> float:
    """Max |onnxruntime − torch| over random inputs of ``sizes``; ExportError if a size fails."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    worst = 0.0
    generator = torch.Generator().manual_seed(0)
    for h, w in sizes:
        x = torch.rand(1, 3, h, w, generator=generator)
        with torch.inference_mode():
            ref = model(x).numpy()
        try:
            got = session.run(None, {name: x.numpy()})[0]
        except Exception as err:  # onnxruntime raises its own exception types
            raise ExportError(f"the graph fails on a {h}×{w} input: {err}") from err
        if got.shape != ref.shape:
            raise ExportError(f"the graph gives {got.shape} for a {h}×{w} input, not {ref.shape}")
        diff = float(np.abs(got - ref).max())
        if not diff <= atol:
            raise ExportError(f"the graph differs from torch by {diff:.3g} on a {h}×{w} input")
        worst = max(worst, diff)
    return worst


def export_onnx(
    model_file: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    opset: int = DEFAULT_OPSET,
    check: bool = True,
) -> Path:
    """Export the litesr model in ``model_file`` to the ONNX file ``out`` (written atomically).

    Tries the dynamo exporter, then the TorchScript one (the other way round below opset
    18); each result must be in ``opset`` and is checked with onnxruntime at two other image
    sizes (``check``). Raises :class:`ExportError` (a ``ValueError``) naming the file and the
    architecture when neither gives such a graph, or the opset is one that no exporter
    writes; ``ValueError`` when ``out`` is the model file itself. Stale temporaries of
    ``out`` left by a killed export are removed first
    (:func:`litesr.atomic.remove_stale_temporaries`).
    """
    from litesr.models.store import load_model
    from litesr.tools.upscale import check_not_inputs

    started = time.time()
    out = Path(out)
    if (
        isinstance(opset, bool)
        or not isinstance(opset, int)
        or not (MIN_OPSET <= opset <= max_opset())
    ):
        raise ExportError(
            f"{model_file}: cannot export to ONNX opset {opset!r}: the supported opsets are "
            f"{supported_opsets()}"
        )
    check_not_inputs([out], [Path(model_file)])
    model, meta = load_model(model_file, device="cpu")
    arch = meta.get("arch", type(model).__name__)
    x = torch.rand(1, 3, *TRACE_HW, generator=torch.Generator().manual_seed(0))
    exporters = [("dynamo", _export_dynamo), ("torchscript", _export_torchscript)]
    if opset < DYNAMO_MIN_OPSET:
        exporters.reverse()
    if opset > TORCHSCRIPT_MAX_OPSET:
        exporters = exporters[:1]
    for stale in remove_stale_temporaries(out, before=started):
        log.info("%s: removed %s, left by an export that was killed", out, stale)
    failures: list[str] = []
    with _quiet(), exportable(model), atomic_path(out) as tmp:
        for label, exporter in exporters:
            try:
                exporter(model, x, tmp, opset)
                got = written_opset(tmp)
                if got != opset:
                    raise ExportError(f"it wrote opset {got}, not {opset}")
                diff = check_onnx(tmp, model) if check else float("nan")
            except Exception as err:  # the exporters raise many unrelated types
                failures.append(f"{label} exporter: {type(err).__name__}: {_first_line(err)}")
                log.warning("%s: %s", model_file, failures[-1])
                continue
            log.info(
                "%s: %s exported by the %s exporter (max |onnxruntime − torch| %.2g)",
                out,
                arch,
                label,
                diff,
            )
            break
        else:
            raise ExportError(
                f"{model_file}: cannot export {arch} to ONNX opset {opset} with a dynamic "
                f"image size: {'; '.join(failures)} (supported opsets: {supported_opsets()})"
            )
    return out


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:300] if text else ""


def _cmd(a: argparse.Namespace) -> None:
    export_onnx(a.model, a.onnx, opset=a.opset)


def add_parser(sub) -> None:
    """Add ``litesr export`` to the sub-command parsers ``sub``."""
    s = sub.add_parser(
        "export",
        help="export a trained model to ONNX with a dynamic image size",
        description=__doc__.splitlines()[0],
    )
    s.add_argument("model", type=Path, help="a litesr model (.safetensors)")
    s.add_argument("--onnx", type=Path, required=True, help="the ONNX file to write")
    s.add_argument(
        "--opset",
        type=int,
        default=DEFAULT_OPSET,
        help=f"ONNX opset of the graph (default {DEFAULT_OPSET}); refused when not writable",
    )
    s.set_defaults(func=_cmd)
