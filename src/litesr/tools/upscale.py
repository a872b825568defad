"""``litesr upscale``: super-resolve your own images with any trained litesr model.

Images are read by :func:`litesr.data.images.read_image` (its rule: RGB kept, grayscale and
palette made RGB, 16-bit reduced, transparency refused) and written as ``<stem>_x<scale>.png``
in the output folder, atomically: a crash never leaves a half-written PNG. Before any work,
the output folder is checked to be writable, the model file is loaded (a file that is not a
litesr safetensors file is refused, named) and every input is decoded once (an unreadable
image is refused, named), so a mistake stops the run before hours of upscaling.

Without ``--tile`` or ``--max-memory`` each image runs whole when its estimated need fits
in half the memory available now (host memory, or the GPU's free memory on CUDA; a
container's cgroup limit counts); an image that does not runs in tiles sized for that
budget, and the log says so. With them, it runs in tiles with overlapping margins
(``litesr.tools.tiles``): on torch on CPU the PNG of a convolutional network (EDSR) is the
same, byte for byte; VDSR's may differ by one level in a few values in 10^5 (see
``litesr.tools.tiles``, *Exactness*). Networks that are not local (RLFN's ESA) are refused
unless ``--approximate`` is given.

**Backends** (``--backend``, :mod:`litesr.tools.backends`). On torch a whole image is run
exactly as ``litesr evaluate`` runs it there. On CPU, images that fit whole at
onnxruntime's memory use onnxruntime when it was measured faster for the model, measured
by a large run or an earlier one (the default, ``auto``): its PNG may differ from torch's
by one level in a few values in 10^5.
The log names the backend of every image. ``--bf16`` (channels-last bfloat16 on torch) is
lower precision and never chosen by itself.

**Threads and PNGs.** ``--threads N`` runs torch and onnxruntime on N intra-op threads
(default: torch's, which follows ``OMP_NUM_THREADS``). Each PNG is compressed at
``--png-level`` (zlib level; default :data:`DEFAULT_PNG_LEVEL`, fast: about 10 % larger
files than level 6) in a background thread while the next image is computed.

Also refused before anything is written, each in one line naming the file: an output that
is one of the inputs (the model or an image, compared as resolved paths), an image smaller
than the model accepts (:func:`litesr.models.limits.min_input_size`; tiles are never cut
smaller either), and an image with more than one frame. A model whose output is not
finite (an overflow) is refused at the first such image, whose PNG is not written; one
with a NaN or infinite weight is refused before any image is run.
Temporaries of an output left by a killed run are removed first
(:func:`litesr.atomic.remove_stale_temporaries` states the rule).
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from litesr.atomic import atomic_path, remove_stale_temporaries
from litesr.data.images import read_image
from litesr.device import DEVICES, resolve_device
from litesr.tools.backends import (
    BACKENDS,
    ORT_MEMORY_RATIO,
    Backends,
    Forward,
    add_backend_options,
)
from litesr.tools.budget import tile_for_memory
from litesr.tools.locality import NonLocalModelError, analyse, arch_name, cache_by_file
from litesr.tools.tiles import iter_tiles

log = logging.getLogger(__name__)

AUTO_MEMORY_FRACTION = 0.5  # of the memory available, without --tile or --max-memory
DEFAULT_PNG_LEVEL = 1  # zlib level: level 6 took 4.6× as long for files about 11 % smaller


class NonFiniteError(ValueError):
    """NaN or infinite values in a model's weights or output (a corrupt file, a diverged
    training run, an overflow)."""


def check_finite_weights(model: nn.Module, model_file: str | os.PathLike[str]) -> None:
    """Refuse (:class:`NonFiniteError`, naming the file) a model with a NaN or infinite
    weight or buffer: its output would be NaN, which becomes black in a PNG."""
    tensors = [t for t in model.state_dict().values() if t.is_floating_point()]
    bad = sum(int((~torch.isfinite(t)).sum()) for t in tensors)
    if bad:
        total = sum(t.numel() for t in tensors)
        raise NonFiniteError(
            f"{model_file}: {bad} of the model's {total} weights are NaN or infinite (a "
            "corrupt file or a diverged training run); nothing upscaled"
        )


def available_memory_mb(device: torch.device) -> float | None:
    """Memory available now for the work, in MB: the GPU's free memory on CUDA; on CPU the
    host's ``MemAvailable``, or less where a cgroup limit leaves less. None when unknown."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0] / 2**20
    found = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) / 1024)
    except (OSError, ValueError, IndexError):
        pass
    for limit, usage in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ):
        try:
            left = int(Path(limit).read_text()) - int(Path(usage).read_text())
        except (OSError, ValueError):  # no such cgroup, or "max": no limit
            continue
        found.append(max(0, left) / 2**20)
    return min(found) if found else None


def output_name(image: Path, scale: int) -> str:
    """``<stem>_x<scale>.png``."""
    return f"{Path(image).stem}_x{scale}.png"


def check_output_dir(out_dir: Path) -> None:
    """Create ``out_dir`` if needed and make sure a file can be written there (OSError if not,
    naming the folder). A real write is tried, since ``os.access`` says yes to root."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OSError(f"cannot create the output folder {out_dir}: {err.strerror or err}") from err
    try:
        fd, name = tempfile.mkstemp(prefix=".litesr-write-check.", dir=out_dir)
        os.close(fd)
        os.unlink(name)
    except OSError as err:
        reason = err.strerror or err
        raise OSError(f"cannot write to the output folder {out_dir}: {reason}") from err


def upscale(
    model_file: str | os.PathLike[str],
    inputs: list[Path],
    out_dir: Path,
    *,
    tile: int | None = None,
    max_memory_mb: float | None = None,
    device: str = "cpu",
    allow_approximate: bool = False,
    progress: bool = True,
    backend: str = "auto",
    threads: int | None = None,
    png_level: int = DEFAULT_PNG_LEVEL,
    bf16: bool = False,
) -> list[Path]:
    """Super-resolve each image of ``inputs`` with the model in ``model_file``.

    ``tile`` (LR pixels) or ``max_memory_mb`` (working memory, see
    :func:`litesr.tools.budget.tile_for_memory`) run each image in tiles; at most one may be
    given. Without either, an image runs whole when it fits in a budget taken from the
    memory available (:data:`AUTO_MEMORY_FRACTION` of :func:`available_memory_mb`), else
    in tiles for that budget. ``backend`` and ``bf16``: see *Backends*; ``threads`` (torch's
    setting is restored on return) and ``png_level``: see *Threads and PNGs*. Returns the
    PNGs written, in the order of ``inputs``. User mistakes raise ``ValueError`` or
    ``OSError`` naming the file.
    """
    started = time.time()
    if tile is not None and max_memory_mb is not None:
        raise ValueError("give a tile size or a memory limit, not both")
    if tile is not None and not _positive_int(tile):
        raise ValueError(f"tile must be a positive number of LR pixels, got {tile!r}")
    if max_memory_mb is not None and not max_memory_mb > 0:
        raise ValueError(f"max memory must be a positive number of MB, got {max_memory_mb!r}")
    if threads is not None and not _positive_int(threads):
        raise ValueError(f"threads must be a positive number, got {threads!r}")
    if not (_positive_int(png_level + 1) and png_level <= 9):
        raise ValueError(f"the PNG level must be 0 (none) to 9 (smallest), got {png_level!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r}: use one of {BACKENDS}")
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _upscale(
            model_file,
            [Path(p) for p in inputs],
            Path(out_dir),
            started=started,
            tile=tile,
            max_memory_mb=max_memory_mb,
            device=device,
            allow_approximate=allow_approximate,
            progress=progress,
            backend=backend,
            png_level=png_level,
            bf16=bf16,
        )
    finally:
        torch.set_num_threads(previous_threads)


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _upscale(
    model_file: str | os.PathLike[str],
    inputs: list[Path],
    out_dir: Path,
    *,
    started: float,
    tile: int | None,
    max_memory_mb: float | None,
    device: str,
    allow_approximate: bool,
    progress: bool,
    backend: str,
    png_level: int,
    bf16: bool,
) -> list[Path]:
    """:func:`upscale` once its arguments are checked and its threads set."""
    from tqdm.auto import tqdm

    from litesr.models.limits import min_input_size
    from litesr.models.store import load_model

    if not inputs:
        raise ValueError("no input images given")
    try:
        dev = resolve_device(device)
    except RuntimeError as err:
        raise ValueError(str(err)) from err
    model, meta = load_model(model_file, device=dev)
    check_finite_weights(model, model_file)
    key = cache_by_file(model, model_file)
    min_side = min_input_size(meta["arch"], meta["args"])
    scale = int(model.scale)
    targets = [out_dir / output_name(p, scale) for p in inputs]
    clash = {t for t in targets if targets.count(t) > 1}
    if clash:
        names = [str(p) for p, t in zip(inputs, targets, strict=True) if t in clash]
        raise ValueError(f"inputs {names} would all be written to the same file; rename them")
    check_not_inputs(targets, [Path(model_file), *inputs])
    check_output_dir(out_dir)
    work = 0
    for path in inputs:  # decode every image before any work; ImageError names the file
        h, w = read_image(path).shape[:2]
        work += h * w
        if min(h, w) < min_side:
            raise ValueError(
                f"{path}: a {w}×{h} image is too small for {meta['arch']}, which needs at "
                f"least {min_side}×{min_side} LR pixels"
            )
    if tile is not None or max_memory_mb is not None:
        info = analyse(model)
        if not info.exact and not allow_approximate:
            raise NonLocalModelError(
                f"{model_file}: {info.reason}. Run it without --tile/--max-memory, or allow "
                "approximate tiling with --approximate"
            )
    for target in targets:
        for stale in remove_stale_temporaries(target, before=started):
            log.info("%s: removed %s, left by a run that was killed", target, stale)
    budget = max_memory_mb
    if tile is None and max_memory_mb is None:
        available = available_memory_mb(dev)
        budget = None if available is None else AUTO_MEMORY_FRACTION * available
    backends = Backends(
        model,
        model_file,
        key,
        choice=backend,
        threads=torch.get_num_threads(),
        bf16=bf16,
        work_pixels=work,
    )
    written = []
    pending: Future | None = None
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="litesr-png") as saver:
            for path, target in tqdm(
                list(zip(inputs, targets, strict=True)),
                desc="upscale",
                unit="image",
                disable=not progress,
            ):
                lr = read_image(path)
                size, forward, label = _plan(
                    backends,
                    path,
                    lr.shape[:2],
                    tile,
                    budget,
                    max_memory_mb is None,
                    allow_approximate,
                )
                whole = size is None or size >= max(lr.shape[:2])
                label += ("" if whole else f", tiles of {size}") + (
                    f", {torch.get_num_threads()} thread(s), PNG level {png_level}"
                )
                try:
                    if whole:
                        sr = super_resolve_whole(model, lr, dev, forward=forward)
                    else:
                        sr = super_resolve_tiled(
                            model,
                            lr,
                            dev,
                            size,
                            allow_approximate=allow_approximate,
                            progress=progress,
                            desc=path.name,
                            min_window=min_side,
                            forward=forward,
                        )
                except NonFiniteError as err:
                    raise NonFiniteError(f"{model_file}: on {path}: {err}") from None
                if pending is not None:
                    pending.result()  # one image waits to be written at a time
                pending = saver.submit(save_png, sr, target, png_level, f"{path} ({label})")
                written.append(target)
            if pending is not None:
                pending.result()
    finally:
        backends.close()
    return written


def save_png(sr: np.ndarray, target: Path, level: int, what: str = "") -> Path:
    """Write ``sr`` as the PNG ``target`` atomically, at zlib ``level``."""
    with atomic_path(target) as tmp:
        Image.fromarray(sr).save(tmp, format="PNG", compress_level=level)
    log.info("%s -> %s (%d×%d)", what, target, sr.shape[1], sr.shape[0])
    return target


def _plan(
    backends: Backends,
    path: Path,
    hw: tuple[int, int],
    tile: int | None,
    budget_mb: float | None,
    auto_budget: bool,
    allow_approximate: bool,
) -> tuple[int | None, Forward, str]:
    """The tile (None: whole), the forward and its name for one image (see *Backends*)."""
    model = backends.model
    ort_asked = backends.choice == "onnxruntime"
    ratio = ORT_MEMORY_RATIO if ort_asked else 1.0
    size = tile
    if tile is None and budget_mb is not None:
        if auto_budget:
            size = _auto_tile(model, path, hw, budget_mb, allow_approximate, ratio)
        else:
            size = tile_for_memory(
                model,
                budget_mb,
                image_hw=hw,
                allow_approximate=allow_approximate,
                memory_ratio=ratio,
            )
    whole = size is None or size >= max(hw)
    if ort_asked or (tile is None and whole):
        return size, *backends.pick(hw, budget_mb)
    return size, backends.torch, backends.torch_label


def check_not_inputs(targets: list[Path], sources: list[Path]) -> None:
    """Refuse (``ValueError``, naming both) an output that is one of the inputs: the same
    resolved path, or the same file reached through another name (a hard link)."""
    for target in targets:
        for source in sources:
            same = target.resolve() == source.resolve()
            if not same and target.exists() and source.exists():
                same = os.path.samefile(target, source)
            if same:
                raise ValueError(
                    f"{target}: the output would overwrite the input {source}; choose "
                    "another --out folder or rename the input"
                )


def _auto_tile(
    model: nn.Module,
    path: Path,
    hw: tuple[int, int],
    budget: float,
    allow_approximate: bool,
    memory_ratio: float = 1.0,
) -> int | None:
    """The tile for an image run without --tile or --max-memory, for a ``budget`` of
    :data:`AUTO_MEMORY_FRACTION` of the memory available: None (whole) when the image fits
    in it, else the tile for it (the log says so). ``ValueError`` in one line, suggesting
    ``--max-memory``, when the image cannot be tiled in it."""
    where = (
        f"{path}: a {hw[1]}×{hw[0]} image does not fit whole in {budget:.0f} MB "
        f"({AUTO_MEMORY_FRACTION:.0%} of the {budget / AUTO_MEMORY_FRACTION:.0f} MB of memory "
        "available; no --tile or --max-memory given)"
    )
    try:
        size = tile_for_memory(
            model,
            budget,
            image_hw=hw,
            allow_approximate=allow_approximate,
            memory_ratio=memory_ratio,
        )
    except NonLocalModelError:
        raise NonLocalModelError(
            f"{where}, and {arch_name(model)} cannot be tiled exactly; set a budget with "
            "--max-memory MB and allow approximate tiling with --approximate"
        ) from None
    except ValueError as err:
        raise ValueError(
            f"{where}, and {err}; free memory, or set a budget with --max-memory MB"
        ) from None
    if size >= max(hw):
        return None
    log.info("%s: running it in tiles of %d LR pixels", where, size)
    return size


@torch.no_grad()
def super_resolve_tiled(
    model: nn.Module,
    lr: np.ndarray,
    device: torch.device,
    tile: int,
    *,
    allow_approximate: bool = False,
    progress: bool = False,
    desc: str = "tiles",
    min_window: int = 1,
    forward: Forward | None = None,
) -> np.ndarray:
    """:func:`litesr.evaluate.run.super_resolve` in tiles: uint8 LR → uint8 SR.

    Each window is made float as it is cut out and each tile is rounded to uint8 as it
    comes, so only the uint8 images and one window's activations are held at a time. A tile
    that is not finite raises :class:`NonFiniteError`. No window side is below
    ``min_window`` (the smallest input the model accepts), unless the image's is.
    ``forward`` (another backend) replaces ``model`` for the windows' outputs.
    """
    scale = int(model.scale)
    lr = np.require(lr, np.uint8, ["C_CONTIGUOUS", "WRITEABLE"])  # torch wants writable
    x = torch.from_numpy(lr).permute(2, 0, 1)[None]  # a uint8 view
    sr = np.empty((lr.shape[0] * scale, lr.shape[1] * scale, 3), dtype=np.uint8)
    for (rows, cols), part in iter_tiles(
        model,
        x,
        tile,
        allow_approximate=allow_approximate,
        progress=progress,
        desc=desc,
        prepare=lambda window: window.float().div(255),
        min_window=min_window,
        forward=forward,
    ):
        sr[rows, cols] = to_uint8(part[0])
    return sr


@torch.inference_mode()
def super_resolve_whole(
    model: nn.Module, lr: np.ndarray, device: torch.device, forward: Forward | None = None
) -> np.ndarray:
    """:func:`litesr.evaluate.run.super_resolve` (the same operations, so the same PNG), with
    the output refused by :class:`NonFiniteError` when it is not finite; ``forward`` (another
    backend) replaces ``model``."""
    x = torch.from_numpy(np.ascontiguousarray(lr.transpose(2, 0, 1))).float().div(255)
    return to_uint8((forward or model)(x[None].to(device))[0])


def to_uint8(sr: Tensor) -> np.ndarray:
    """A 3×H×W float output as an H×W×3 uint8 image (clamped to [0, 1], rounded), or
    :class:`NonFiniteError` when a value is NaN or infinite (it would become black)."""
    bad = int((~torch.isfinite(sr)).sum())
    if bad:
        raise NonFiniteError(
            f"the model's output is not finite: {bad} of its {sr.numel()} values are NaN "
            "or infinite (an overflow, or corrupt weights); nothing written for this image"
        )
    return sr.clamp(0, 1).mul(255).round().byte().cpu().numpy().transpose(1, 2, 0)


def _cmd(a: argparse.Namespace) -> None:
    upscale(
        a.model,
        a.inputs,
        a.out,
        tile=a.tile,
        max_memory_mb=a.max_memory,
        device=a.device,
        allow_approximate=a.approximate,
        progress=not a.quiet,
        backend=a.backend,
        threads=a.threads,
        png_level=a.png_level,
        bf16=a.bf16,
    )


def add_parser(sub) -> None:
    """Add ``litesr upscale`` to the sub-command parsers ``sub``."""
    s = sub.add_parser(
        "upscale",
        help="super-resolve your own images with a trained model (tiled for large images)",
        description=__doc__.splitlines()[0],
    )
    s.add_argument("model", type=Path, help="a litesr model (.safetensors)")
    s.add_argument("inputs", nargs="+", type=Path, help="images (PNG, JPEG, BMP, TIFF)")
    s.add_argument("--out", type=Path, required=True, help="folder for <stem>_x<scale>.png")
    size = s.add_mutually_exclusive_group()
    size.add_argument("--tile", type=int, metavar="N", help="run in N×N-pixel LR tiles")
    size.add_argument(
        "--max-memory",
        type=float,
        metavar="MB",
        help="pick the tile size so one tile's forward pass needs about MB megabytes "
        "(default: images that fit in half the memory available run whole, others in tiles "
        "for that budget)",
    )
    s.add_argument("--device", default="auto", choices=DEVICES)
    s.add_argument(
        "--approximate",
        action="store_true",
        help="tile networks that are not local (RLFN) anyway, with a wide overlap",
    )
    add_backend_options(
        s,
        "auto (default): onnxruntime where it was measured faster for the model and the image "
        "fits whole at its memory, else torch; both float32",
    )
    s.add_argument(
        "--png-level",
        type=int,
        default=DEFAULT_PNG_LEVEL,
        choices=range(10),
        metavar="0-9",
        help=f"PNG (zlib) compression level, default {DEFAULT_PNG_LEVEL} (fast); 9: smallest",
    )
    s.add_argument(
        "--bf16",
        action="store_true",
        help="run torch in channels-last bfloat16: lower precision (the PNG changes)",
    )
    s.set_defaults(func=_cmd)
