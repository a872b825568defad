"""Evaluate a model (or bicubic upsampling) on a prepared test set: per-image and per-set TSVs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from litesr.data.images import list_images, read_image, write_png
from litesr.data.resize import bicubic_upsample
from litesr.device import resolve_device
from litesr.evaluate.metrics import psnr_rgb, psnr_y, ssim_y
from litesr.models.store import load_model
from litesr.tsv import write_tsv

BICUBIC = "bicubic"
PER_IMAGE_COLUMNS = ["model", "set", "scale", "image", "psnr_y", "ssim_y", "psnr_rgb"]


@torch.no_grad()
def super_resolve(model: nn.Module, lr: np.ndarray, device: torch.device) -> np.ndarray:
    """Run ``model`` on one uint8 LR image and round its output to uint8, as a saved PNG."""
    x = torch.from_numpy(np.ascontiguousarray(lr.transpose(2, 0, 1))).float().div(255)
    sr = model(x[None].to(device))[0].clamp(0, 1).mul(255).round().byte().cpu().numpy()
    return sr.transpose(1, 2, 0)


def measured_planes(sr: np.ndarray, hr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The images the Y metrics see.

    Grey test images (all three channels equal, e.g. Set14's ``img_003``) are
    measured on their grey level, as the field's MATLAB scripts do; the SR output is reduced
    to grey with the BT.601 luma weights (exactly its grey level when it is grey itself).
    Colour images are passed through, and the metrics take their BT.601 Y.
    """
    if np.array_equal(hr[..., 0], hr[..., 1]) and np.array_equal(hr[..., 0], hr[..., 2]):
        grey = np.rint(sr.astype(np.float64) @ np.array([0.299, 0.587, 0.114]))
        return grey.clip(0, 255).astype(np.uint8), hr[..., 0]
    return sr, hr


def upscaler(model_ref: str, device: str = "cpu"):
    """A function uint8 LR → uint8 SR for a safetensors file, or for ``bicubic``."""
    if model_ref == BICUBIC:
        return lambda lr, scale: bicubic_upsample(lr, scale)
    dev = resolve_device(device)
    model, _ = load_model(model_ref, device=dev)
    model.eval()
    return lambda lr, scale: super_resolve(model, lr, dev)


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
) -> pd.DataFrame:
    """PSNR/SSIM on Y (border = scale) and RGB PSNR (border 4) for each image of the set."""
    data_dir = Path(data_dir)
    run = upscaler(model_ref, device)
    rows = []
    for hr_path in tqdm(
        list_images(data_dir / "HR"), desc=f"eval {model_name} {set_name}", disable=not progress
    ):
        hr, lr = read_image(hr_path), read_image(data_dir / "LR" / hr_path.name)
        sr = run(lr, scale)
        if sr.shape != hr.shape:
            raise ValueError(f"{model_ref}: output {sr.shape} for {hr_path} of shape {hr.shape}")
        if save_dir is not None:
            write_png(Path(save_dir) / hr_path.name, sr)
        sr_y, hr_y = measured_planes(sr, hr)
        rows.append(
            {
                "model": model_name,
                "set": set_name,
                "scale": scale,
                "image": hr_path.stem,
                "psnr_y": psnr_y(sr_y, hr_y, scale),
                "ssim_y": ssim_y(sr_y, hr_y, scale),
                "psnr_rgb": psnr_rgb(sr, hr, 4),
            }
        )
    table = pd.DataFrame(rows, columns=PER_IMAGE_COLUMNS)
    write_tsv(table, out_tsv)
    return table


def summarize(per_image: pd.DataFrame) -> pd.DataFrame:
    """Average over images (not pixels), one row per model, set and scale."""
    return (
        per_image.groupby(["model", "set", "scale"], sort=True)[["psnr_y", "ssim_y", "psnr_rgb"]]
        .mean()
        .reset_index()
    )
