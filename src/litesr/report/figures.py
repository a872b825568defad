"""Report figures drawn with seaborn, each written atomically as a PNG."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from litesr.atomic import atomic_path  # noqa: E402
from litesr.data.images import read_image  # noqa: E402
from litesr.evaluate.metrics import psnr_y  # noqa: E402
from litesr.evaluate.run import upscaler  # noqa: E402

COST_AXES = {
    "params": "parameters",
    "macs_720p_G": "MACs (G, LR of a 1280×720 output)",
    "cpu_latency_ms": "CPU latency (ms)",
    "cpu_inference_MiB": "CPU inference memory (MiB)",
}


def save(fig: plt.Figure, out: Path) -> Path:
    """Write a figure to a unique temporary PNG beside ``out``, then rename it into place."""
    out = Path(out)
    try:
        with atomic_path(out) as tmp:
            fig.savefig(tmp, dpi=150, bbox_inches="tight", format="png")
    finally:
        plt.close(fig)
    return out


def psnr_vs_cost(summary: str, cost: str, out: str) -> Path:
    """PSNR (Y) against parameters, MACs, latency and memory: one point per model and set."""
    acc = pd.read_csv(summary, sep="\t")
    costs = pd.read_csv(cost, sep="\t")
    data = acc.merge(costs, on=["model", "scale"], how="inner")
    axes_cols = [c for c in COST_AXES if c in data and data[c].notna().any()]
    fig, axes = plt.subplots(1, len(axes_cols), figsize=(4.2 * len(axes_cols), 3.8), squeeze=False)
    for ax, col in zip(axes[0], axes_cols, strict=True):
        sns.scatterplot(
            data=data,
            x=col,
            y="psnr_y",
            hue="model",
            style="set",
            s=80,
            ax=ax,
            legend=ax is axes[0][-1],
        )
        ax.set_xscale("log")
        # Over less than a decade the log axis labels its minor ticks too: turn them so
        # that they do not overlap.
        ax.tick_params(axis="x", which="both", labelrotation=40, labelsize=7)
        ax.set_xlabel(COST_AXES[col])
        ax.set_ylabel("PSNR-Y (dB)")
    if len(axes_cols):
        sns.move_legend(axes[0][-1], "upper left", bbox_to_anchor=(1.02, 1))
    fig.suptitle("Accuracy against cost (one point per model, set and scale)")
    return save(fig, out)


def training_curves(logs: list[str], labels: list[str], out: str) -> Path:
    """Training loss per step of every model, smoothed over a window of 1 % of the run."""
    frames = []
    for path, label in zip(logs, labels, strict=True):
        frame = pd.read_csv(path, sep="\t")
        window = max(1, len(frame) // 100)
        frame["loss (smoothed)"] = frame["loss"].rolling(window, min_periods=1).mean()
        frames.append(frame.assign(model=label))
    data = pd.concat(frames)
    fig, ax = plt.subplots(figsize=(7, 4))
    sns.lineplot(data=data, x="step", y="loss (smoothed)", hue="model", ax=ax)
    ax.set_yscale("log")
    ax.set_title("Training loss")
    return save(fig, out)


def crops(
    models: dict[str, str], data: str, image: str, box: list[int], scale: int, out: str
) -> Path:
    """Side-by-side HR crops of bicubic, each model and the ground truth on one test image."""
    hr = read_image(Path(data) / "HR" / f"{image}.png")
    lr = read_image(Path(data) / "LR" / f"{image}.png")
    y, x, h, w = box
    if y + h > hr.shape[0] or x + w > hr.shape[1]:
        raise ValueError(f"crop box {box} lies outside {image} ({hr.shape[0]}×{hr.shape[1]})")
    panels = [(name, upscaler(ref)(lr, scale)) for name, ref in models.items()]
    panels.append(("HR", hr))
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 3.0))
    for ax, (name, img) in zip(axes, panels, strict=True):
        ax.imshow(img[y : y + h, x : x + w], interpolation="nearest")
        title = name if name == "HR" else f"{name}\n{psnr_y(img, hr, scale):.2f} dB"
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.suptitle(f"{image} ×{scale} (PSNR-Y of the whole image)", fontsize=10)
    return save(fig, out)
