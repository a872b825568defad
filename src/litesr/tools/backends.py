"""Inference backends of ``litesr upscale`` and ``litesr evaluate``: torch, or onnxruntime.

Both take the same N×3×H×W float32 input in [0, 1] and give the float32 output that
``litesr.tools.upscale.to_uint8`` rounds. onnxruntime runs the ONNX graph of
:func:`litesr.tools.export.export_onnx`, made once per model file content and kept in the
cache folder (:mod:`litesr.tools.cache`, kind ``onnx``); its output differs from torch's
by float rounding: after rounding to uint8, by one level in a few values in 10^5 (the
export itself is refused when it differs by more than 1e-4 anywhere).

**The measured rule** (``--backend auto``, the default, on CPU): onnxruntime is used for an
image when

- the run is large enough to pay for a first export and probe (:data:`AUTO_MIN_PIXELS`
  LR pixels in all), or an earlier run already timed both backends on this model file at
  this thread count (a small run never exports nor probes, it only reuses that timing),
- onnxruntime was faster than torch on this model, at this thread count, on this CPU: both
  run a :data:`PROBE_HW` input, interleaved, once per model file (the timings are cached,
  kind ``speed``), and onnxruntime's median time must be below torch's,
- and the image runs whole within the memory budget at onnxruntime's memory,
  :data:`ORT_MEMORY_RATIO` times torch's estimate (:mod:`litesr.tools.budget`).

:meth:`Backends.pick` applies the rule to one image run whole (``litesr upscale`` and
``litesr evaluate`` both call it). Anything else runs on torch, tiled runs too. A failed
export or a missing onnxruntime falls back to torch, logged. ``--backend onnxruntime`` asks
for it outright (tiles are then sized for its memory; EDSR's tiles equal its whole-image
output byte for byte there too, tested); ``--backend torch`` never uses it.
Precision never changes by the backend's choice: both are float32. ``--bf16`` (torch only,
channels-last bfloat16) is the one lower-precision path, and only when asked for.
"""

from __future__ import annotations

import argparse
import copy
import logging
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from litesr.tools.budget import tile_for_memory

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "onnxruntime")


def add_backend_options(parser: argparse.ArgumentParser, auto: str) -> None:
    """``--backend`` (``auto`` described by ``auto``) and ``--threads``, as ``litesr upscale``
    and ``litesr evaluate`` take them."""
    parser.add_argument("--backend", default="auto", choices=BACKENDS, help=auto)
    parser.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="intra-op threads of torch and onnxruntime (default: torch's, which follows "
        "OMP_NUM_THREADS)",
    )


# onnxruntime's peak working memory over torch's, whole images, 1 thread (peak RSS above
# the baseline, fresh processes): DIPNet ×4 1.16 / 1.34 / 1.36 at 0.08 / 0.33 / 0.75 LR
# megapixels; EDSR 8×32, VDSR 13×20 and SPAN ×4 0.85-0.90 at 0.08. The largest, rounded up.
ORT_MEMORY_RATIO = 1.5
AUTO_MIN_PIXELS = 1 << 20  # LR pixels of a run, in all, before auto considers onnxruntime
PROBE_HW = (128, 128)  # the input both backends are timed on
PROBE_ROUNDS = 3
SPEED_VERSION = 1  # raise when the probe changes: cached timings go stale

Forward = Callable[[Tensor], Tensor]


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else the machine type."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def onnxruntime_available() -> bool:
    """Whether onnxruntime can be imported."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def cached_onnx(model_file: str | Path, key: str, tmp: Path) -> Path:
    """The ONNX export of ``model_file`` (content SHA-256 ``key``): from the cache folder, or
    exported now and kept there; exported into ``tmp`` when the cache cannot be written.
    :class:`litesr.tools.export.ExportError` when the model does not export."""
    from litesr.tools import cache
    from litesr.tools.export import DEFAULT_OPSET, export_onnx

    name = f"{key}-torch{torch.__version__}-opset{DEFAULT_OPSET}.onnx"
    path = cache.entry_path("onnx", name)
    if path.is_file():
        return path
    started = time.perf_counter()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        export_onnx(model_file, path, opset=DEFAULT_OPSET)
    except PermissionError as err:
        cache.warn_unwritable(path.parent, err)
        path = export_onnx(model_file, tmp / name, opset=DEFAULT_OPSET)
    log.info(
        "%s: exported to ONNX in %.1f s (kept in %s)",
        model_file,
        time.perf_counter() - started,
        path.parent,
    )
    return path


class OrtForward:
    """An onnxruntime session on an exported litesr graph, called like the model."""

    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def __call__(self, x: Tensor) -> Tensor:
        out = self.session.run(None, {self.input: x.detach().cpu().contiguous().numpy()})[0]
        return torch.from_numpy(out)


def bf16_forward(model: nn.Module) -> Forward:
    """A copy of ``model`` in channels-last bfloat16, taking and giving float32: lower
    precision, only ever asked for explicitly (``model`` itself is left as it is, for the
    locality analysis)."""
    low = copy.deepcopy(model).to(dtype=torch.bfloat16, memory_format=torch.channels_last)

    def forward(x: Tensor) -> Tensor:
        return low(x.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)).float()

    return forward


def measure_speed(model: nn.Module, ort: OrtForward, hw: tuple[int, int] = PROBE_HW) -> dict:
    """Median seconds of torch's and onnxruntime's forward on a random ``hw`` input, each
    warmed up once, then timed :data:`PROBE_ROUNDS` times, interleaved."""
    x = torch.rand(1, 3, *hw, generator=torch.Generator().manual_seed(0))
    times: dict[str, list[float]] = {"torch": [], "onnxruntime": []}
    runs = {"torch": model, "onnxruntime": ort}
    with torch.inference_mode():
        for rounds in (1, PROBE_ROUNDS):
            for _ in range(rounds):
                for name, run in runs.items():
                    start = time.perf_counter()
                    run(x)
                    times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t[1:]) for name, t in times.items()}


def _speed_stamp() -> dict[str, Any]:
    """What a cached speed probe depends on (onnxruntime must be importable)."""
    import onnxruntime

    return {
        "version": SPEED_VERSION,
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "cpu": cpu_name(),
        "probe": list(PROBE_HW),
    }


def measured_speed(key: str, threads: int) -> dict[str, Any] | None:
    """The cached speed probe of the model file with content SHA-256 ``key`` at ``threads``
    threads, or None when no run measured it (onnxruntime must be importable)."""
    from litesr.tools import cache

    return cache.read_json("speed", f"{key}-{threads}t.json", _speed_stamp())


def ort_is_faster(model: nn.Module, ort: OrtForward, key: str, threads: int) -> dict[str, Any]:
    """The speed probe of ``model`` (content SHA-256 ``key``) at ``threads`` threads, from
    the cache or measured now: ``{"torch": s, "onnxruntime": s, "faster": bool}``."""
    from litesr.tools import cache

    found = measured_speed(key, threads)
    if found is None:
        found = measure_speed(model, ort)
        found["faster"] = found["onnxruntime"] < found["torch"]
        cache.write_json("speed", f"{key}-{threads}t.json", _speed_stamp(), found)
        log.info(
            "speed probe (%d×%d LR, %d thread(s)): onnxruntime %.3f s, torch %.3f s",
            *PROBE_HW,
            threads,
            found["onnxruntime"],
            found["torch"],
        )
    return found


class Backends:
    """The forwards one ``litesr upscale`` run chooses between, made when first needed."""

    def __init__(
        self,
        model: nn.Module,
        model_file: str | Path,
        key: str,
        *,
        choice: str,
        threads: int,
        bf16: bool,
        work_pixels: int,
    ) -> None:
        if choice not in BACKENDS:
            raise ValueError(f"backend {choice!r}: use one of {BACKENDS}")
        if bf16 and choice == "onnxruntime":
            raise ValueError("--bf16 runs on torch only; drop --backend onnxruntime")
        if choice == "onnxruntime" and not onnxruntime_available():
            raise ValueError("--backend onnxruntime: onnxruntime is not installed")
        on_cpu = next(model.parameters()).device.type == "cpu"
        if choice == "onnxruntime" and not on_cpu:
            raise ValueError("--backend onnxruntime runs on the CPU; add --device cpu")
        self.model, self.model_file, self.key = model, model_file, key
        self.choice, self.threads = choice, threads
        self.torch: Forward = bf16_forward(model) if bf16 else model
        self.considered = choice == "onnxruntime" or (
            choice == "auto"
            and not bf16
            and on_cpu
            and onnxruntime_available()
            and (work_pixels >= AUTO_MIN_PIXELS or measured_speed(key, threads) is not None)
        )
        self._ort: OrtForward | None = None
        self._faster: bool | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="litesr-onnx-")

    def close(self) -> None:
        """Remove the temporary folder of an export the cache could not keep."""
        self._tmp.cleanup()

    def onnxruntime(self) -> OrtForward | None:
        """The onnxruntime forward; None when auto cannot have it (export failed: logged)."""
        if self._ort is None and self.considered:
            from litesr.tools.export import ExportError

            try:
                path = cached_onnx(self.model_file, self.key, Path(self._tmp.name))
            except ExportError as err:
                if self.choice == "onnxruntime":
                    raise
                log.info("%s; running on torch", err)
                self.considered = False
                return None
            self._ort = OrtForward(path, self.threads)
        return self._ort

    def ort_faster(self) -> bool:
        """Whether onnxruntime beat torch on the speed probe (measured once, cached)."""
        if self._faster is None:
            ort = self.onnxruntime()
            if ort is None:
                self._faster = False
            else:
                found = ort_is_faster(self.model, ort, self.key, self.threads)
                self._faster = bool(found["faster"])
        return self._faster

    @property
    def torch_label(self) -> str:
        """The name of the torch forward, as the log gives it."""
        return "torch" if self.torch is self.model else "torch, bfloat16"

    def pick(self, hw: tuple[int, int], budget_mb: float | None) -> tuple[Forward, str]:
        """The forward for an image of ``hw`` LR pixels run whole, and its name: onnxruntime
        when asked for, or by the measured rule when it fits whole in ``budget_mb`` (None:
        no limit) at :data:`ORT_MEMORY_RATIO` times torch's memory; torch otherwise."""
        if self.choice == "onnxruntime":
            return self.onnxruntime(), "onnxruntime"
        if self.considered:
            fits = budget_mb is None or fits_whole(self.model, budget_mb, hw, ORT_MEMORY_RATIO)
            if fits and self.ort_faster():
                ort = self.onnxruntime()
                if ort is not None:
                    return ort, "onnxruntime"
        return self.torch, self.torch_label


def fits_whole(model: nn.Module, budget_mb: float, hw: tuple[int, int], ratio: float) -> bool:
    """Whether an image of ``hw`` runs whole in ``budget_mb`` at ``ratio`` times torch's
    memory estimate."""
    try:
        return tile_for_memory(model, budget_mb, image_hw=hw, memory_ratio=ratio) >= max(hw)
    except ValueError:  # not even a tile fits, or (non-local models) no tiling at all
        return False
