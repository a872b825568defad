"""Cost of an SR model: parameters, MACs, CPU/GPU latency and peak memory.

Conventions (docs/conventions.md, "Cost measurement"):

- MACs count one multiply-accumulate once, like fvcore and the NTIRE scripts:
  ``torch.utils.flop_counter.FlopCounterMode`` counts 2 FLOPs per MAC, so its total is
  halved. Only convolutions and matrix products are counted (biases, activations,
  PixelShuffle and other elementwise ops are not).
- GPU latency follows the NTIRE efficient-SR protocol: batch 1, whole image, fp32, CUDA
  events around the forward, ``torch.cuda.synchronize()``, warm-up, median. GPU peak
  memory is ``torch.cuda.max_memory_allocated()`` after ``reset_peak_memory_stats()``;
  it includes the weights and the input already resident on the device.
- CPU peak memory is the peak RSS of a fresh subprocess (see ``litesr.measure.memprobe``).

Columns of the TSV written by :func:`measure_models` (one row per model file):

``model``               the model's name (default: file name without extension)
``arch``                architecture name from the file's metadata
``scale``               upscaling factor
``params``              number of parameters
``macs_256_G``          GMACs (1e9 MACs, FlopCounterMode FLOPs / 2) for a 256×256 LR input
``macs_720p_G``         GMACs for the LR size of a 1280×720 output (ceil(720/s)×ceil(1280/s))
``latency_lr_hw``       LR input size ``HxW`` used for latency and peak memory
``cpu_latency_ms``      median CPU forward time, milliseconds
``cpu_threads``         torch intra-op threads used for the CPU measurements
``cpu_peak_rss_MiB``    peak RSS of the probe subprocess (MiB = 2**20 bytes)
``cpu_inference_MiB``   peak RSS minus the RSS baseline after loading and warm-up
``gpu_latency_ms``      median CUDA forward time (NaN without a GPU)
``gpu_peak_MiB``        peak CUDA memory allocated during the forward (NaN without a GPU)
``cpu_name``            CPU model name
``gpu_name``            CUDA device name (empty without a GPU)
"""

from __future__ import annotations

import copy
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from tqdm import tqdm

import litesr
from litesr.device import resolve_device
from litesr.models.store import load_model
from litesr.tsv import write_tsv

MIB = 2**20
COLUMNS = [
    "model",
    "arch",
    "scale",
    "params",
    "macs_256_G",
    "macs_720p_G",
    "latency_lr_hw",
    "cpu_latency_ms",
    "cpu_threads",
    "cpu_peak_rss_MiB",
    "cpu_inference_MiB",
    "gpu_latency_ms",
    "gpu_peak_MiB",
    "cpu_name",
    "gpu_name",
]


def _device_of(model: nn.Module) -> torch.device:
    """Device of the model's first parameter (CPU for a parameter-free model)."""
    return next(model.parameters(), torch.empty(0)).device


def count_params(model: nn.Module) -> int:
    """Number of parameters (all of them, trainable or not)."""
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, lr_hw: tuple[int, int]) -> int:
    """MACs of one forward on a 1×3×H×W input: FlopCounterMode FLOPs // 2 (conv/matmul only)."""
    x = torch.rand(1, 3, *lr_hw, device=_device_of(model))
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() // 2


def lr_size_for_output(out_hw: tuple[int, int] = (720, 1280), *, scale: int) -> tuple[int, int]:
    """LR size whose ×scale output covers ``out_hw`` (ceil division; classic 720p convention)."""
    return -(-out_hw[0] // scale), -(-out_hw[1] // scale)


def cpu_latency_ms(
    model: nn.Module,
    lr_hw: tuple[int, int],
    *,
    threads: int = 1,
    warmup: int = 3,
    repeats: int = 10,
) -> float:
    """Median wall-clock time (ms) of a batch-1 fp32 forward on CPU with ``threads`` threads."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        x = torch.rand(1, 3, *lr_hw)
        times = []
        with torch.inference_mode():
            for i in range(warmup + repeats):
                start = time.perf_counter()
                model(x)
                if i >= warmup:
                    times.append((time.perf_counter() - start) * 1e3)
    finally:
        torch.set_num_threads(previous)
    return statistics.median(times)


def gpu_latency_ms(
    model: nn.Module, lr_hw: tuple[int, int], *, warmup: int = 10, repeats: int = 50
) -> tuple[float, int]:
    """NTIRE-protocol CUDA latency: (median ms, peak bytes allocated) of a batch-1 fp32 forward.

    A copy of the model is moved to the GPU; the peak counts weights, input and activations.
    """
    if not torch.cuda.is_available():
        raise RuntimeError(
            "gpu_latency_ms needs CUDA, but torch.cuda.is_available() is False "
            f"(torch {torch.__version__}, built with CUDA {torch.version.cuda})"
        )
    gpu_model = copy.deepcopy(model).to("cuda", torch.float32)
    x = torch.rand(1, 3, *lr_hw, device="cuda")
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    with torch.inference_mode():
        for _ in range(warmup):
            gpu_model(x)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        for _ in range(repeats):
            start.record()
            gpu_model(x)
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
    peak = torch.cuda.max_memory_allocated()
    del gpu_model, x
    torch.cuda.empty_cache()
    return statistics.median(times), peak


def cpu_peak_memory_bytes(
    model_path: str | os.PathLike, lr_hw: tuple[int, int], *, threads: int = 1
) -> dict[str, int]:
    """Peak RSS of one CPU forward, measured in a fresh ``litesr.measure.memprobe`` subprocess.

    Returns ``rss_peak_bytes``, ``rss_baseline_bytes`` (RSS after loading, a 32×32
    warm-up and making the input) and ``inference_bytes`` = peak − baseline.
    """
    cmd = [sys.executable, "-m", "litesr.measure.memprobe", str(model_path), *map(str, lr_hw)]
    # The probe imports the same litesr as this process, installed or not.
    paths = [str(Path(litesr.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, paths))}
    proc = subprocess.run(
        [*cmd, "--threads", str(threads)], capture_output=True, text=True, env=env, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"memory probe failed for model file {model_path} (exit {proc.returncode}):\n"
            f"{proc.stderr.strip()}"
        )
    rss = json.loads(proc.stdout.strip().splitlines()[-1])
    rss["inference_bytes"] = rss["rss_peak_bytes"] - rss["rss_baseline_bytes"]
    return rss


def cpu_name() -> str:
    """CPU model name from /proc/cpuinfo, else what ``platform`` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def use_cuda(device: str) -> bool:
    """Whether to measure on the GPU for ``device`` in {'cpu', 'cuda', 'auto'}.

    'cuda' without CUDA raises RuntimeError up front, before any slow CPU measurement.
    """
    return resolve_device(device).type == "cuda"


def measure_model(
    model_path: str | os.PathLike,
    *,
    lr_hw_ntire: tuple[int, int] = (256, 256),
    out_hw: tuple[int, int] = (720, 1280),
    latency_hw: tuple[int, int] | None = None,
    cpu_threads: int = 1,
    cpu_repeats: int = 10,
    device: str = "auto",
    name: str | None = None,
) -> dict:
    """One row of cost measurements (see the module docstring for the columns).

    CPU latency and memory are always measured; GPU ones when ``device`` is 'cuda' (an
    error without CUDA) or 'auto' with CUDA present. ``latency_hw`` defaults to the LR size
    of an ``out_hw`` output.
    """
    gpu = use_cuda(device)
    model, meta = load_model(model_path, device="cpu")  # in eval mode
    scale = int(model.scale)
    latency_hw = latency_hw or lr_size_for_output(out_hw, scale=scale)
    rss = cpu_peak_memory_bytes(model_path, latency_hw, threads=cpu_threads)
    gpu_ms, gpu_peak, gpu_name = math.nan, math.nan, ""
    if gpu:
        gpu_ms, gpu_peak_bytes = gpu_latency_ms(model, latency_hw)
        gpu_peak, gpu_name = gpu_peak_bytes / MIB, torch.cuda.get_device_name()
    return {
        "model": name or Path(model_path).stem,
        "arch": meta.get("arch", ""),
        "scale": scale,
        "params": count_params(model),
        "macs_256_G": count_macs(model, lr_hw_ntire) / 1e9,
        "macs_720p_G": count_macs(model, lr_size_for_output(out_hw, scale=scale)) / 1e9,
        "latency_lr_hw": f"{latency_hw[0]}x{latency_hw[1]}",
        "cpu_latency_ms": cpu_latency_ms(
            model, latency_hw, threads=cpu_threads, repeats=cpu_repeats
        ),
        "cpu_threads": cpu_threads,
        "cpu_peak_rss_MiB": rss["rss_peak_bytes"] / MIB,
        "cpu_inference_MiB": rss["inference_bytes"] / MIB,
        "gpu_latency_ms": gpu_ms,
        "gpu_peak_MiB": gpu_peak,
        "cpu_name": cpu_name(),
        "gpu_name": gpu_name,
    }


def measure_models(
    paths: Iterable[str | os.PathLike],
    out_tsv: str | os.PathLike,
    *,
    names: Iterable[str] | None = None,
    **kw,
) -> pd.DataFrame:
    """Measure each model file (``measure_model`` keywords) and write one TSV atomically."""
    paths = list(paths)
    names = list(names) if names is not None else [None] * len(paths)
    if len(names) != len(paths):
        raise ValueError(f"{len(names)} names given for {len(paths)} model files")
    rows = [
        measure_model(p, name=n, **kw)
        for p, n in tqdm(list(zip(paths, names, strict=True)), desc="cost", unit="model")
    ]
    table = pd.DataFrame(rows, columns=COLUMNS)
    write_tsv(table, Path(out_tsv))
    return table
