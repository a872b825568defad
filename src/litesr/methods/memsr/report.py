"""MemSR's report pieces: the paper-form table and memory against output size. Roles come
from the models' metadata (the catalog), never from their names."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from litesr.report.figures import save  # noqa: E402

ORDER = ("teacher", "plain-teacher", "memsr", "random", "residual")
LABELS = {
    "teacher": "EDSR teacher",
    "plain-teacher": "plain teacher (converted)",
    "memsr": "plain, MemSR init + distillation",
    "random": "plain, random init",
    "residual": "residual (EDSR-style)",
}
MEMORY_COLUMNS = ["network", "scale", "out_mpix", "peak_MiB", "floor_MiB"]


def memsr_rows(
    summary: pd.DataFrame, cost: pd.DataFrame, catalog: pd.DataFrame, teacher: str
) -> pd.DataFrame:
    """Accuracy and cost of the teacher and of every model whose metadata says memsr."""
    info = catalog[["model", "scale", "method", "variant", "size"]].copy()
    info.loc[info.model == teacher, ["method", "variant"]] = ["memsr", "teacher"]
    info = info[info.method == "memsr"].drop(columns="method")
    rows = summary.merge(info, on=["model", "scale"])
    columns = ["model", "scale", "params", "cpu_inference_MiB", "cpu_latency_ms"]
    return rows.merge(cost[[c for c in columns if c in cost]], on=["model", "scale"], how="left")


def memsr_table(
    summary: pd.DataFrame,
    cost: pd.DataFrame,
    catalog: pd.DataFrame,
    teacher: str,
    plain_teacher: str,
) -> pd.DataFrame:
    """Rows: teacher, plain teacher, each width's students and the MemSR − random gain;
    columns: params, CPU memory and latency, PSNR / SSIM per set and scale."""
    rows = memsr_rows(summary, cost, catalog, teacher)
    rows["column"] = rows.set + " ×" + rows.scale.astype(str)
    rows["cell"] = rows.psnr_y.map("{:.2f}".format) + " / " + rows.ssim_y.map("{:.4f}".format)
    cells = rows.pivot_table(index="model", columns="column", values="cell", aggfunc="first")
    psnr = rows.pivot_table(index="model", columns="column", values="psnr_y")
    info = rows.groupby("model").first()
    out: dict[str, dict] = {}
    for variant in ORDER[:2]:
        for model in info.index[info.variant == variant]:
            out[f"{model}: {LABELS[variant]}"] = _row(info.loc[model], cells.loc[model])
    students = info[~info.variant.isin(ORDER[:2])]
    for width, group in students.groupby("size"):
        by_variant = dict(zip(group.variant, group.index, strict=True))
        for variant in ORDER[2:]:
            if variant in by_variant:
                model = by_variant[variant]
                out[f"w{int(width)} {LABELS[variant]}"] = _row(info.loc[model], cells.loc[model])
        if {"memsr", "random"} <= set(by_variant):
            gain = psnr.loc[by_variant["memsr"]] - psnr.loc[by_variant["random"]]
            out[f"w{int(width)} gain: MemSR − random init"] = gain.map(
                "{:+.2f} dB".format
            ).to_dict()
    return pd.DataFrame.from_dict(out, orient="index").fillna("")


def _row(info: pd.Series, cells: pd.Series) -> dict:
    def fmt(key: str, pattern: str) -> str:
        value = info.get(key)
        return pattern.format(value) if value is not None and pd.notna(value) else ""

    return {
        "params": fmt("params", "{:,.0f}"),
        "CPU_MiB": fmt("cpu_inference_MiB", "{:.1f}"),
        "CPU_ms": fmt("cpu_latency_ms", "{:.1f}"),
        **cells.to_dict(),
    }


def memory_figure(table: str, out: str) -> Path:
    """Peak inference memory against output megapixels, one line per network and a panel per
    scale; the dashed line is the plain student's floor (two activation maps)."""
    data = pd.read_csv(table, sep="\t")
    missing = sorted(set(MEMORY_COLUMNS) - set(data.columns))
    if missing:
        raise ValueError(f"{table}: memory table lacks columns {missing}")
    scales = sorted(data.scale.unique())
    fig, axes = plt.subplots(1, len(scales), figsize=(5 * len(scales), 4), squeeze=False)
    for ax, scale in zip(axes[0], scales, strict=True):
        part = data[data.scale == scale]
        sns.lineplot(data=part, x="out_mpix", y="peak_MiB", hue="network", marker="o", ax=ax)
        floor = part[part.network.str.startswith("plain student")]
        ax.plot(floor.out_mpix, floor.floor_MiB, "k--", label="floor: 2 activation maps")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("output megapixels")
        ax.set_ylabel("peak inference memory (MiB)")
        ax.set_title(f"×{scale}")
        ax.legend(fontsize=8)
    fig.suptitle("MemSR: CPU inference memory against output size")
    return save(fig, out)
