"""DRC's report: the comparison table and the searched-widths figure. Variants and ratios come
from the models' own metadata (the catalog and the model files), never from their names."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from litesr.models.store import read_meta  # noqa: E402
from litesr.report.figures import save  # noqa: E402

COST = {"params": "params", "macs_720p_G": "MACs_720p_G", "cpu_latency_ms": "CPU_ms"}


def drc_rows(
    summary: pd.DataFrame, cost: pd.DataFrame, catalog: pd.DataFrame, primal: str
) -> pd.DataFrame:
    """Accuracy and cost of every DRC model and of the plainly trained ``primal`` (variant
    ``nodual``), with its variant and ratio (``size``)."""
    info = catalog[["model", "scale", "method", "variant", "size"]].copy()
    info.loc[info.model == primal, ["method", "variant", "size"]] = ["drc", "nodual", 0.0]
    info = info.loc[info.method == "drc"].drop(columns="method")
    rows = summary.merge(info.rename(columns={"size": "ratio"}), on=["model", "scale"])
    present = [c for c in COST if c in cost]
    return rows.merge(cost[["model", "scale", *present]], on=["model", "scale"], how="left")


def _cells(group: pd.DataFrame) -> dict[str, str]:
    """Mean PSNR / SSIM per ``set ×scale`` over the group's models, and their cost."""
    out = {}
    for (set_name, scale), g in group.groupby(["set", "scale"]):
        out[f"{set_name} ×{scale}"] = f"{g.psnr_y.mean():.2f} / {g.ssim_y.mean():.4f}"
    for column, label in COST.items():
        if column in group and group[column].notna().any():
            value = group[column].mean()
            out[label] = f"{int(value):,}" if column == "params" else f"{value:.2f}"
    return out


def _psnr(group: pd.DataFrame) -> pd.Series:
    """PSNR per (set, scale, model)."""
    return group.set_index(["set", "scale", "model"]).psnr_y


def drc_table(
    summary: pd.DataFrame, cost: pd.DataFrame, catalog: pd.DataFrame, primal: str, seeds: int
) -> pd.DataFrame:
    """Rows: both primals and dual − no dual; per ratio DRC, the L1 mean over seeds, its
    spread (max − min PSNR over seeds) and DRC − L1 with a verdict against the spread."""
    rows = drc_rows(summary, cost, catalog, primal)
    out: dict[str, dict[str, str]] = {}
    by_variant = {v: g for v, g in rows.groupby("variant")}
    for variant, label in (("nodual", "primal, L1 only"), ("dual", "primal, L1 + λ·dual")):
        if variant in by_variant:
            out[label] = _cells(by_variant[variant])
    if {"nodual", "dual"} <= set(by_variant):
        gain = (
            by_variant["dual"].groupby(["set", "scale"]).psnr_y.mean()
            - by_variant["nodual"].groupby(["set", "scale"]).psnr_y.mean()
        )
        out["dual − no dual"] = {f"{s} ×{k}": f"{v:+.2f} dB" for (s, k), v in gain.items()}
    pruned = rows[rows.variant.isin(["drc", "l1"])]
    for ratio, group in pruned.groupby("ratio"):
        drc, l1 = group[group.variant == "drc"], group[group.variant == "l1"]
        if len(drc):
            out[f"DRC r={ratio:g}"] = _cells(drc)
        if len(l1):
            n = l1.model.nunique()
            out[f"L1 r={ratio:g} (mean of {n}/{seeds} seeds)"] = _cells(l1)
            per_set = l1.groupby(["set", "scale"]).psnr_y
            spread = per_set.max() - per_set.min()
            out[f"L1 r={ratio:g} seed spread"] = {
                f"{s} ×{k}": f"{v:.2f} dB" for (s, k), v in spread.items()
            }
            if len(drc):
                diff = drc.groupby(["set", "scale"]).psnr_y.mean() - per_set.mean()
                out[f"DRC − L1 r={ratio:g}"] = {
                    f"{s} ×{k}": f"{v:+.2f} dB ({_verdict(v, spread[(s, k)], n)})"
                    for (s, k), v in diff.items()
                }
    return pd.DataFrame.from_dict(out, orient="index").fillna("")


def _verdict(diff: float, spread: float, n: int) -> str:
    if n < 2:
        return "one seed: no spread"
    if abs(diff) <= spread:
        return "within seed spread"
    return "DRC better" if diff > 0 else "DRC worse"


def widths_figure(models: list[str], primal: str, out: str) -> Path:
    """Inner width per residual block of each DRC model (solid) against its ratio's uniform
    width (dashed), read from the model files' metadata."""
    full = read_meta(primal)["args"].get("n_feats", 64)
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for i, path in enumerate(models):
        meta = read_meta(path)
        widths, uniform = meta["widths"], list(meta["uniform_width"].values())
        color = f"C{i}"
        blocks = range(len(widths))
        ax.plot(blocks, widths, marker="o", color=color, label=f"DRC r={meta['ratio']:g}")
        ax.plot(blocks, uniform, linestyle="--", color=color, label=f"uniform r={meta['ratio']:g}")
    ax.axhline(full, color="black", linewidth=1, label="unpruned")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("residual block")
    ax.set_ylabel("inner channels")
    ax.set_ylim(0, full * 1.08)
    ax.legend(fontsize=8, ncol=2)
    ax.set_title("DRC: searched widths per block vs the uniform ratio")
    return save(fig, out)
