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

ORDER = ("teacher", "plain-teacher", "memsr-init", "random-init", "memsr", "random", "residual")
LABELS = {
    "teacher": "EDSR teacher",
    "plain-teacher": "plain teacher (converted)",
    "memsr-init": "plain, MemSR init, at initialisation",
    "random-init": "plain, He random init, at initialisation",
    "memsr": "plain, MemSR init + distillation",
    "random": "plain, random init, L1",
    "residual": "residual (EDSR-style)",
}
GAINS = {
    "at initialisation: MemSR − random": ("memsr-init", "random-init"),
    "trained: MemSR − random": ("memsr", "random"),
    "trained: plain − residual": ("memsr", "residual"),
}
MEMORY_COLUMNS = ["network", "scale", "out_mpix", "peak_MiB", "floor_MiB"]


def memsr_rows(
    summary: pd.DataFrame, cost: pd.DataFrame, catalog: pd.DataFrame, teacher: str
) -> pd.DataFrame:
    """Accuracy and cost of the teacher and of every model whose metadata says memsr, with
    its student ``shape`` (authors / width) and its ``role`` (the variant without the
    shape's prefix)."""
    info = catalog[["model", "scale", "method", "variant", "size"]].copy()
    info.loc[info.model == teacher, ["method", "variant"]] = ["memsr", "teacher"]
    info = info[info.method == "memsr"].drop(columns="method")
    width = info.variant.str.startswith("width-")
    info["shape"] = width.map({True: "width", False: "authors"})
    info["role"] = info.variant.str.removeprefix("width-")
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
    """Rows: teacher, plain teacher, then per student shape and width its students at
    initialisation and trained, the residual baseline and the gains; columns: params, CPU
    memory and latency, PSNR / SSIM per set and scale. Seeds of a variant are averaged, their
    spread (max − min PSNR) in brackets."""
    rows = memsr_rows(summary, cost, catalog, teacher)
    rows["column"] = rows.set + " ×" + rows.scale.astype(str)
    out: dict[str, dict] = {}
    for role in ORDER[:2]:
        for model, part in rows[rows.role == role].groupby("model"):
            out[f"{model}: {LABELS[role]}"] = _row(part)
    students = rows[~rows.role.isin(ORDER[:2])]
    for (shape, width), group in students.groupby(["shape", "size"]):
        name = f"authors' student w{int(width)}" if shape == "authors" else f"w{int(width)}"
        psnr = {}
        for role in ORDER[2:]:
            part = group[group.role == role]
            if len(part):
                out[f"{name} {LABELS[role]}"] = _row(part)
                psnr[role] = part.groupby("column").psnr_y.mean()
        for label, (a, b) in GAINS.items():
            if a in psnr and b in psnr:
                gain = psnr[a] - psnr[b]
                out[f"{name} gain {label}"] = gain.map("{:+.2f} dB".format).to_dict()
    return pd.DataFrame.from_dict(out, orient="index").fillna("")


def _row(part: pd.DataFrame) -> dict:
    """Cost of the first model, accuracy averaged over the models (seeds) of ``part``."""
    first = part.sort_values("model").iloc[0]

    def fmt(key: str, pattern: str) -> str:
        value = first.get(key)
        return pattern.format(value) if value is not None and pd.notna(value) else ""

    cells = {}
    for column, cell in part.groupby("column"):
        text = f"{cell.psnr_y.mean():.2f} / {cell.ssim_y.mean():.4f}"
        if cell.model.nunique() > 1:
            text += f" ({cell.psnr_y.max() - cell.psnr_y.min():.2f})"
        cells[column] = text
    return {
        "params": fmt("params", "{:,.0f}"),
        "CPU_MiB": fmt("cpu_inference_MiB", "{:.1f}"),
        "CPU_ms": fmt("cpu_latency_ms", "{:.1f}"),
        **cells,
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
