"""Evaluate a model (or bicubic upsampling) on a prepared test set: per-image and per-set TSVs.

With ``save_dir`` the SR images measured are kept as PNGs (``<save_dir>/<image>.png``), so the
audit can recompute every per-image number from them and the prepared HR images.

**Speed.** A model runs on the backends of ``litesr upscale`` (:mod:`litesr.tools.backends`):
on CPU, onnxruntime where the measured rule picks it (``backend="auto"``), else torch, both
float32 (bfloat16 is never used here). onnxruntime's output differs from torch's by float
rounding only; its per-set PSNR stays within :data:`EXACT_DB` of torch's (tested). Threads
are torch's (``OMP_NUM_THREADS``, which Snakemake sets to a rule's ``threads``) unless given.
Progress is shown per image, with the time left estimated from the pixels still to run (a
bar, off under ``litesr -q``, and a log line per image).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch import nn
from tqdm.auto import tqdm

from litesr.atomic import atomic_dir
from litesr.data.images import list_images, read_image, stored_grey, write_png
from litesr.data.resize import bicubic_upsample
from litesr.data.sets import in_set_order
from litesr.device import resolve_device
from litesr.evaluate.metrics import psnr_rgb, psnr_y, ssim_min_side, ssim_y
from litesr.models.store import load_model
from litesr.tools.backends import Backends, Forward
from litesr.tsv import write_tsv

log = logging.getLogger(__name__)

BICUBIC = "bicubic"
PER_IMAGE_COLUMNS = ["model", "set", "scale", "image", "psnr_y", "ssim_y", "psnr_rgb"]
EXACT_DB = 0.001  # the most a backend may move a set's mean PSNR from torch's float32 result
BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}{postfix}"

Runner = Callable[[np.ndarray, int], tuple[np.ndarray, str]]


@torch.no_grad()
def super_resolve(
    model: nn.Module, lr: np.ndarray, device: torch.device, forward: Forward | None = None
) -> np.ndarray:
    """Run ``model`` (or ``forward``, another backend of it) on one uint8 LR image and round
    its output to uint8, as a saved PNG."""
    x = torch.from_numpy(np.ascontiguousarray(lr.transpose(2, 0, 1))).float().div(255)
    sr = (forward or model)(x[None].to(device))[0]
    return sr.clamp(0, 1).mul(255).round().byte().cpu().numpy().transpose(1, 2, 0)


def measured_planes(sr: np.ndarray, hr: np.ndarray, *, grey: bool) -> tuple[np.ndarray, np.ndarray]:
    """The images the Y metrics see.

    A test image stored with one channel (``grey``, e.g. Set14's ``img_003``) is measured on
    its grey level, as the field's MATLAB scripts do; the SR output is reduced to grey with
    the BT.601 luma weights (exactly its grey level when it is grey itself). An image stored
    as RGB is passed through and measured on Y, even when its three channels are equal (Set14's
    ``img_010``), again as those scripts do: they branch on the stored channel count.
    """
    if grey:
        # Elementwise, in a fixed order: a matrix product would sum in an order that depends
        # on the array's memory layout, and a different last bit flips rint at .5.
        rgb = sr.astype(np.float64)
        grey_sr = np.rint(0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2])
        return grey_sr.clip(0, 255).astype(np.uint8), hr[..., 0]
    return sr, hr


def upscaler(model_ref: str, device: str = "cpu"):
    """A function uint8 LR → uint8 SR for a safetensors file, or for ``bicubic``."""
    if model_ref == BICUBIC:
        return lambda lr, scale: bicubic_upsample(lr, scale)
    dev = resolve_device(device)
    model, _ = load_model(model_ref, device=dev)
    model.eval()
    return lambda lr, scale: super_resolve(model, lr, dev)


@contextlib.contextmanager
def model_runner(
    model_ref: str, device: str, backend: str, lr_sizes: list[tuple[int, int]]
) -> Iterator[Runner]:
    """A function (uint8 LR, scale) → (uint8 SR, the backend's name) for a safetensors file,
    each image run whole on the backend :meth:`litesr.tools.backends.Backends.pick` picks
    for a run of images of ``lr_sizes`` (height, width), or for ``bicubic``. What the pick
    needs first (an ONNX export, the speed probe) is made before the function is given."""
    if model_ref == BICUBIC:
        yield lambda lr, scale: (bicubic_upsample(lr, scale), BICUBIC)
        return
    from litesr.tools.locality import cache_by_file
    from litesr.tools.upscale import AUTO_MEMORY_FRACTION, available_memory_mb

    dev = resolve_device(device)
    model, _ = load_model(model_ref, device=dev)
    model.eval()
    backends = Backends(
        model,
        model_ref,
        cache_by_file(model, model_ref),
        choice=backend,
        threads=torch.get_num_threads(),
        bf16=False,
        work_pixels=sum(h * w for h, w in lr_sizes),
    )
    available = available_memory_mb(dev)
    budget = None if available is None else AUTO_MEMORY_FRACTION * available

    def run(lr: np.ndarray, scale: int) -> tuple[np.ndarray, str]:
        forward, label = backends.pick(lr.shape[:2], budget)
        return super_resolve(model, lr, dev, forward), label

    try:
        if lr_sizes:
            backends.pick(lr_sizes[0], budget)
        yield run
    finally:
        backends.close()


def evaluate_set(
    model_ref: str,
    data_dir: Path,
    scale: int,
    out_tsv: Path,
    *,
    model_name: str,
    set_name: str,
    device: str = "cpu",
    save_dir: Path | None = None,
    progress: bool = True,
    backend: str = "auto",
    threads: int | None = None,
) -> pd.DataFrame:
    """PSNR/SSIM on Y (border = scale) and RGB PSNR (border 4) for each image of the set.

    Every HR image must be large enough for SSIM after the border crop; this is checked from
    the image headers before any model runs, and an error names the file and its size. With
    ``save_dir``, that folder is replaced (atomically) by the SR PNGs that were measured.
    ``backend`` and ``threads`` (torch's setting is restored on return): see *Speed*.
    """
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be a positive number, got {threads!r}")
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        table = _evaluate_set(
            model_ref,
            Path(data_dir),
            scale,
            model_name=model_name,
            set_name=set_name,
            device=device,
            save_dir=save_dir,
            progress=progress,
            backend=backend,
        )
    finally:
        torch.set_num_threads(previous_threads)
    write_tsv(table, out_tsv)
    return table


def _evaluate_set(
    model_ref: str,
    data_dir: Path,
    scale: int,
    *,
    model_name: str,
    set_name: str,
    device: str,
    save_dir: Path | None,
    progress: bool,
    backend: str,
) -> pd.DataFrame:
    """:func:`evaluate_set` once its threads are set: the per-image table."""
    hr_paths = list_images(data_dir / "HR")
    sizes = check_sizes(hr_paths, scale)
    total = sum(w * h for w, h in sizes)
    what = f"{model_name} {set_name} ×{scale}"
    rows = []
    with contextlib.ExitStack() as stack:
        sr_dir = stack.enter_context(atomic_dir(save_dir)) if save_dir is not None else None
        lr_sizes = [(h // scale, w // scale) for w, h in sizes]
        run = stack.enter_context(model_runner(model_ref, device, backend, lr_sizes))
        bar = stack.enter_context(
            tqdm(
                total=total,
                desc=f"eval {model_name} {set_name}",
                bar_format=BAR_FORMAT,
                postfix=f"0/{len(hr_paths)} images",
                disable=not progress,
            )
        )
        started, done = time.perf_counter(), 0
        for i, (hr_path, (w, h)) in enumerate(zip(hr_paths, sizes, strict=True), 1):
            hr, lr = read_image(hr_path), read_image(data_dir / "LR" / hr_path.name)
            sr, label = run(lr, scale)
            if sr.shape != hr.shape:
                raise ValueError(
                    f"{model_ref}: output {sr.shape} for {hr_path} of shape {hr.shape}"
                )
            if sr_dir is not None:
                write_png(Path(sr_dir) / f"{hr_path.stem}.png", sr)
            rows.append(
                {
                    "model": model_name,
                    "set": set_name,
                    "scale": scale,
                    "image": hr_path.stem,
                    **measure(sr, hr, scale, grey=stored_grey(hr_path), name=hr_path),
                }
            )
            done += w * h
            elapsed = time.perf_counter() - started
            bar.set_postfix_str(f"{i}/{len(hr_paths)} images", refresh=False)
            bar.update(w * h)
            log.info(
                "%s: %s (%d/%d) on %s; %.0f s so far, about %.0f s left",
                what,
                hr_path.stem,
                i,
                len(hr_paths),
                label,
                elapsed,
                elapsed / done * (total - done),
            )
    return pd.DataFrame(rows, columns=PER_IMAGE_COLUMNS)


def measure(
    sr: np.ndarray, hr: np.ndarray, scale: int, *, grey: bool, name: object = "image"
) -> dict:
    """The per-image numbers of the accuracy table (as ``evaluate_set`` and the audit compute
    them); ``grey``: the HR image is stored with one channel. A ValueError names ``name``."""
    try:
        sr_y, hr_y = measured_planes(sr, hr, grey=grey)
        return {
            "psnr_y": psnr_y(sr_y, hr_y, scale),
            "ssim_y": ssim_y(sr_y, hr_y, scale),
            "psnr_rgb": psnr_rgb(sr, hr, 4),
        }
    except ValueError as err:
        raise ValueError(f"{name}: {err}") from err


def measure_files(sr_path: str | Path, hr_path: str | Path, scale: int) -> dict:
    """:func:`measure` of a saved SR PNG against its prepared HR image (used by the audit)."""
    return measure(
        read_image(sr_path), read_image(hr_path), scale, grey=stored_grey(hr_path), name=sr_path
    )


def check_sizes(hr_paths: list[Path], scale: int) -> list[tuple[int, int]]:
    """Refuse, before any work, test images too small for SSIM once ``scale`` pixels per side
    (the PSNR/SSIM border) are cropped, naming every such file and its size. Returns each
    image's (width, height), read from its header."""
    need = ssim_min_side(scale)
    small, sizes = [], []
    for path in hr_paths:
        with Image.open(path) as img:
            w, h = img.size
        sizes.append((w, h))
        if min(w, h) < need:
            small.append(f"{path} ({w}x{h})")
    if small:
        raise ValueError(
            f"test image(s) too small for SSIM at x{scale}: {', '.join(small)}; both sides must "
            f"be at least {need} pixels (the 11x11 window plus a {scale}-pixel border per side)"
        )
    return sizes


def summarize(per_image: pd.DataFrame) -> pd.DataFrame:
    """Average over images (not pixels), one row per model, set and scale; by model, then
    sets in report order (:mod:`litesr.data.sets`), then scale."""
    means = (
        per_image.groupby(["model", "set", "scale"], sort=True)[["psnr_y", "ssim_y", "psnr_rgb"]]
        .mean()
        .reset_index()
    )
    rank = {name: i for i, name in enumerate(in_set_order(means.set))}
    means = means.sort_values(
        ["model", "set", "scale"], key=lambda c: c.map(rank) if c.name == "set" else c
    )
    return means.reset_index(drop=True)
