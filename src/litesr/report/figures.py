"""Report figures drawn with seaborn, each written atomically as a PNG."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.axis  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib import ticker  # noqa: E402

from litesr.atomic import atomic_path  # noqa: E402
from litesr.data.images import read_image  # noqa: E402
from litesr.evaluate.metrics import psnr_y  # noqa: E402
from litesr.evaluate.run import upscaler  # noqa: E402

PAGE_WIDTH_IN = 7.0
"""The report's text width (A4 less its margins) in inches: the widest a saved figure is (with
the 0.1 in :func:`save` pads each side), so that the PDF shows it at its own size."""

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


def compact(value: float, _position: object = None) -> str:
    """A tick label: ``0.05``, ``20``, ``500``, ``2k``, ``1.5M``."""
    for bound, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= bound:
            return f"{value / bound:g}{suffix}"
    return f"{value:g}"


def log_axis(axis: matplotlib.axis.Axis) -> None:
    """A log axis whose labels do not collide: ticks at 1, 2, 5 × 10^k over narrow spans,
    at powers of ten over wide ones, labelled compactly (``compact``); no minor labels."""
    low, high = sorted(axis.get_view_interval())
    decades = np.log10(high / low) if low > 0 else 0
    subs = (1.0,) if decades > 2.5 else (1.0, 2.0, 5.0)
    axis.set_major_locator(ticker.LogLocator(subs=subs))
    axis.set_major_formatter(ticker.FuncFormatter(compact))
    axis.set_minor_formatter(ticker.NullFormatter())


def psnr_vs_cost(summary: str, cost: str, out: str) -> Path:
    """PSNR (Y) against parameters, MACs, latency and memory, two panels a row at the page's
    width; one point per model, set and scale, each model one colour and marker, named once
    in the legend below the panels."""
    acc = pd.read_csv(summary, sep="\t")
    costs = pd.read_csv(cost, sep="\t")
    data = acc.merge(costs, on=["model", "scale"], how="inner")
    axes_cols = [c for c in COST_AXES if c in data and data[c].notna().any()]
    rows, legend_rows = max(1, -(-len(axes_cols) // 2)), -(-data.model.nunique() // 4)
    size = (PAGE_WIDTH_IN - 0.2, 2.6 * rows + 0.5 + 0.16 * legend_rows)
    fig, axes = plt.subplots(rows, 2, figsize=size, squeeze=False, layout="constrained")
    for ax, col in zip(axes.flat, axes_cols, strict=False):
        sns.scatterplot(
            data=data, x=col, y="psnr_y", hue="model", style="model", s=36, ax=ax, legend=True
        )
        ax.set_xscale("log")
        log_axis(ax.xaxis)
        ax.set_xlabel(COST_AXES[col], fontsize=8)
        ax.set_ylabel("PSNR-Y (dB)", fontsize=8)
        ax.tick_params(labelsize=7)
        handles, labels = ax.get_legend_handles_labels()
        ax.get_legend().remove()
    for ax in axes.flat[len(axes_cols) :]:
        ax.set_visible(False)
    if axes_cols:
        fig.legend(handles, labels, loc="outside lower center", ncol=4, fontsize=7, frameon=False)
    fig.suptitle("Accuracy against cost (one point per model, set and scale)", fontsize=10)
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
    fig, ax = plt.subplots(figsize=(4.8, 2.6), layout="constrained")
    sns.lineplot(data=data, x="step", y="loss (smoothed)", hue="model", ax=ax, linewidth=1)
    ax.set_yscale("log")
    log_axis(ax.yaxis)
    ax.tick_params(labelsize=7)
    ax.set_xlabel("step", fontsize=8)
    ax.set_ylabel("loss (smoothed)", fontsize=8)
    ax.legend(fontsize=7, title=None)
    ax.set_title("Training loss", fontsize=9)
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
    side = min(2.0, (PAGE_WIDTH_IN - 0.2) / len(panels))  # one row at most the page's width
    fig, axes = plt.subplots(
        1, len(panels), figsize=(side * len(panels), side * h / w + 0.6), layout="constrained"
    )
    for ax, (name, img) in zip(axes, panels, strict=True):
        ax.imshow(img[y : y + h, x : x + w], interpolation="nearest")
        title = name if name == "HR" else f"{name}\n{psnr_y(img, hr, scale):.2f} dB"
        ax.set_title(title, fontsize=7)
        ax.axis("off")
    fig.suptitle(f"{image} ×{scale} (PSNR-Y of the whole image)", fontsize=9)
    return save(fig, out)
