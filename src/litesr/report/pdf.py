"""Assemble ``reports/all.pdf``: provenance page, paper-style tables, then the figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402
from matplotlib.backends.backend_pdf import PdfPages  # noqa: E402

from litesr.atomic import atomic_path  # noqa: E402
from litesr.methods.registry import entry  # noqa: E402
from litesr.report.provenance import provenance  # noqa: E402
from litesr.report.tables import cost_table, psnr_ssim_table  # noqa: E402

A4 = (8.27, 11.69)


def text_page(pdf: PdfPages, title: str, body: str, fontsize: float = 8) -> None:
    """One page of monospaced text."""
    fig = plt.figure(figsize=A4)
    fig.text(0.06, 0.96, title, fontsize=14, weight="bold", va="top")
    fig.text(0.06, 0.92, body, fontsize=fontsize, family="monospace", va="top")
    pdf.savefig(fig)
    plt.close(fig)


def figure_page(pdf: PdfPages, title: str, png: Path, caption: str = "") -> None:
    """One page holding a figure PNG scaled to the page width, with its caption."""
    img = mpimg.imread(png)
    fig = plt.figure(figsize=A4)
    fig.text(0.06, 0.96, title, fontsize=14, weight="bold", va="top")
    if caption:
        fig.text(0.06, 0.935, caption, fontsize=9, va="top", wrap=True)
    h, w = img.shape[:2]
    width = 0.88
    height = min(0.84, width * h / w * A4[0] / A4[1])
    ax = fig.add_axes((0.06, 0.91 - height, width, height))
    ax.imshow(img)
    ax.axis("off")
    pdf.savefig(fig)
    plt.close(fig)


def provenance_text(config: dict[str, Any]) -> str:
    info = provenance(config)
    packages = info.pop("packages")
    lines = [f"{k:>14}: {v}" for k, v in info.items()]
    lines += ["", "packages:"] + [f"{k:>14}: {v}" for k, v in packages.items()]
    lines += [
        "",
        "configuration:",
        yaml.safe_dump(config, sort_keys=False, width=100, default_flow_style=None),
    ]
    return "\n".join(lines)


def build_report(out: Path, spec: dict[str, Any]) -> Path:
    """Write the PDF described by ``spec``.

    ``spec`` keys: ``config`` (the workflow configuration), ``summary`` (per-set PSNR/SSIM
    TSV), ``cost`` (cost TSV), ``catalog`` (each model's method, variant and size),
    ``tables`` (methods' tables: ``[title, "<method>.<kind>", params, caption]``) and
    ``figures`` (``[title, png, caption]``).
    """
    summary, cost, catalog = (pd.read_csv(spec[k], sep="\t") for k in ("summary", "cost", "catalog"))
    with atomic_path(out) as tmp, PdfPages(tmp) as pdf:
        text_page(pdf, "litesr report — provenance", provenance_text(spec["config"]), 7)
        text_page(
            pdf,
            "Accuracy: PSNR / SSIM on Y (border = scale)",
            psnr_ssim_table(summary).to_string() + "\n\nAveraged over images; SR "
            "rounded to uint8; BT.601 Y; SSIM Gaussian 11×11, σ = 1.5.",
            8,
        )
        text_page(pdf, "Cost", cost_table(cost).to_string() + "\n\n" + COST_NOTE, 7)
        for title, kind, params, caption in spec.get("tables", []):
            table = entry("tables", kind)(summary, cost, catalog, **params)
            text_page(pdf, title, f"{caption}\n\n{table.to_string()}", 7)
        for title, png, caption in spec.get("figures", []):
            figure_page(pdf, title, Path(png), caption)
    return Path(out)


COST_NOTE = (
    "MACs: one multiply-accumulate counted once (torch FlopCounterMode FLOPs / 2; conv and\n"
    "matmul only), at a 256×256 LR input (NTIRE) and at the LR size of a 1280×720 output.\n"
    "CPU latency: median of repeated whole-image forwards, threads fixed. CPU memory: peak\n"
    "RSS of a separate inference process minus its RSS before the forward. GPU columns\n"
    "(NTIRE protocol: CUDA events, warm-up, median; max_memory_allocated) when CUDA is present."
)
