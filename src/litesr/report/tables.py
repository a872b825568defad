"""Paper-style tables built with pandas from the workflow's TSVs."""

from __future__ import annotations

import pandas as pd


def psnr_ssim_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Rows: models; columns: (set, ×scale); cells: ``PSNR / SSIM`` as in SR papers."""
    cells = summary.assign(
        cell=summary.psnr_y.map("{:.2f}".format) + " / " + summary.ssim_y.map("{:.4f}".format),
        scale=summary.scale.map("×{}".format),
    )
    order = list(dict.fromkeys(summary.model))
    table = cells.pivot(index="model", columns=["set", "scale"], values="cell")
    return table.reindex(order).sort_index(axis=1)


def cost_table(cost: pd.DataFrame) -> pd.DataFrame:
    """The cost TSV with readable precision, one row per model and scale."""
    columns = [c for c in COST_COLUMNS if c in cost and cost[c].notna().any()]
    return cost.set_index(["model", "scale"])[columns].round(3)


COST_COLUMNS = [
    "arch",
    "params",
    "macs_256_G",
    "macs_720p_G",
    "cpu_latency_ms",
    "cpu_inference_MiB",
    "gpu_latency_ms",
    "gpu_peak_MiB",
]
