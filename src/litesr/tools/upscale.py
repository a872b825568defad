"""``litesr upscale``: super-resolve your own images with any trained litesr model.

Images are read by :func:`litesr.data.images.read_image` (its rule: RGB kept, grayscale and
palette made RGB, 16-bit reduced, transparency refused) and written as ``<stem>_x<scale>.png``
in the output folder, atomically: a crash never leaves a half-written PNG. Before any work,
the output folder is checked to be writable, the model file is loaded (a file that is not a
litesr safetensors file is refused, named) and every input is decoded once (an unreadable
image is refused, named), so a mistake stops the run before hours of upscaling.

Without ``--tile`` or ``--max-memory`` each image runs whole, exactly as ``litesr evaluate``
runs it. With them, it runs in tiles with overlapping margins (``litesr.tools.tiling``): on
CPU the PNG of a convolutional network (EDSR) is the same, byte for byte; VDSR's may differ
by one level in a few values in 10^5 (see ``litesr.tools.tiling``, *Exactness*). Networks
that are not local (RLFN's ESA) are refused unless ``--approximate`` is given.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from litesr.atomic import atomic_path
from litesr.data.images import read_image
from litesr.device import DEVICES, resolve_device
from litesr.tools.tiling import NonLocalModelError, analyse, iter_tiles, tile_for_memory

log = logging.getLogger(__name__)


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
) -> list[Path]:
    """Super-resolve each image of ``inputs`` with the model in ``model_file``.

    ``tile`` (LR pixels) or ``max_memory_mb`` (working memory, see
    :func:`litesr.tools.tiling.tile_for_memory`) run each image in tiles; at most one may be
    given. Returns the PNGs written, in the order of ``inputs``. User mistakes raise
    ``ValueError`` or ``OSError`` naming the file.
    """
    if tile is not None and max_memory_mb is not None:
        raise ValueError("give a tile size or a memory limit, not both")
    if tile is not None and (isinstance(tile, bool) or not isinstance(tile, int) or tile < 1):
        raise ValueError(f"tile must be a positive number of LR pixels, got {tile!r}")
    if max_memory_mb is not None and not max_memory_mb > 0:
        raise ValueError(f"max memory must be a positive number of MB, got {max_memory_mb!r}")
    from tqdm.auto import tqdm

    from litesr.evaluate.run import super_resolve  # heavy: not at `litesr --help`
    from litesr.models.store import load_model

    inputs = [Path(p) for p in inputs]
    if not inputs:
        raise ValueError("no input images given")
    out_dir = Path(out_dir)
    check_output_dir(out_dir)
    try:
        dev = resolve_device(device)
    except RuntimeError as err:
        raise ValueError(str(err)) from err
    model, _ = load_model(model_file, device=dev)
    scale = int(model.scale)
    targets = [out_dir / output_name(p, scale) for p in inputs]
    clash = {t for t in targets if targets.count(t) > 1}
    if clash:
        names = [str(p) for p, t in zip(inputs, targets, strict=True) if t in clash]
        raise ValueError(f"inputs {names} would all be written to the same file; rename them")
    for path in inputs:  # decode every image before any work; ImageError names the file
        read_image(path)
    tiled = tile is not None or max_memory_mb is not None
    if tiled:
        info = analyse(model)
        if not info.exact and not allow_approximate:
            raise NonLocalModelError(
                f"{model_file}: {info.reason}. Run it without --tile/--max-memory, or allow "
                "approximate tiling with --approximate"
            )
    written = []
    for path, target in tqdm(
        list(zip(inputs, targets, strict=True)), desc="upscale", unit="image", disable=not progress
    ):
        lr = read_image(path)
        if tiled:
            size = tile
            if size is None:
                size = tile_for_memory(
                    model,
                    max_memory_mb,
                    image_hw=lr.shape[:2],
                    allow_approximate=allow_approximate,
                )
            sr = super_resolve_tiled(
                model,
                lr,
                dev,
                size,
                allow_approximate=allow_approximate,
                progress=progress,
                desc=path.name,
            )
        else:
            sr = super_resolve(model, lr, dev)
        with atomic_path(target) as tmp:
            Image.fromarray(sr).save(tmp, format="PNG")
        written.append(target)
        log.info("%s -> %s (%d×%d)", path, target, sr.shape[1], sr.shape[0])
    return written


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
) -> np.ndarray:
    """:func:`litesr.evaluate.run.super_resolve` in tiles: uint8 LR → uint8 SR.

    Each window is made float as it is cut out and each tile is rounded to uint8 as it
    comes, so only the uint8 images and one window's activations are held at a time.
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
    ):
        part = part[0].clamp(0, 1).mul(255).round().byte().cpu().numpy()
        sr[rows, cols] = part.transpose(1, 2, 0)
    return sr


def _cmd(a: argparse.Namespace) -> None:
    upscale(
        a.model,
        a.inputs,
        a.out,
        tile=a.tile,
        max_memory_mb=a.max_memory,
        device=a.device,
        allow_approximate=a.approximate,
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
        help="pick the tile size so one tile's forward pass needs about MB megabytes",
    )
    s.add_argument("--device", default="auto", choices=DEVICES)
    s.add_argument(
        "--approximate",
        action="store_true",
        help="tile networks that are not local (RLFN) anyway, with a wide overlap",
    )
    s.set_defaults(func=_cmd)
