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
from litesr.report.tables import sets_in_order  # noqa: E402

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
    return sets_in_order(pd.DataFrame.from_dict(out, orient="index").fillna(""))


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
    """Peak inference memory against output megapixels, a panel per scale, one line per
    network, each line's last point labelled with its ratio to the floor; dashed: the floor
    (two activation maps, ``floor_MiB``: the same for networks with the same tail). Rows whose
    ``protocol`` is ``authors`` (the authors' ×2, 960×540 LR protocol, possibly at another
    network size) are stars, coloured as the sweep's network of the same ``role``, their
    floor a black bar, each labelled with its ratio."""
    data = pd.read_csv(table, sep="\t")
    missing = sorted(set(MEMORY_COLUMNS) - set(data.columns))
    if missing:
        raise ValueError(f"{table}: memory table lacks columns {missing}")
    data = data.dropna(subset=["peak_MiB"])
    data["ratio"] = data.peak_MiB / data.floor_MiB
    authors = data.get("protocol", pd.Series("", index=data.index)).eq("authors")
    sweep, protocol = data[~authors], data[authors]
    networks = list(dict.fromkeys(sweep.network))
    palette = dict(zip(networks, sns.color_palette(n_colors=max(len(networks), 1)), strict=False))
    role_colour = {}
    if "role" in data:
        role_colour = {r: palette[n] for n, r in zip(sweep.network, sweep.role, strict=True)}
    scales = sorted(data.scale.unique())
    fig, axes = plt.subplots(1, len(scales), figsize=(5.5 * len(scales), 4.5), squeeze=False)
    for ax, scale in zip(axes[0], scales, strict=True):
        part = sweep[sweep.scale == scale]
        for name, line in part.groupby("network", sort=False):
            line = line.sort_values("out_mpix")
            ax.plot(line.out_mpix, line.peak_MiB, "o-", color=palette[name], label=name)
            end = line.iloc[-1]
            ax.annotate(f"{end.ratio:.2f}×", (end.out_mpix, end.peak_MiB), xytext=(4, 0),
                        textcoords="offset points", va="center", fontsize=7,
                        color=palette[name])  # fmt: skip
        floor = part.groupby("out_mpix").floor_MiB.min()
        ax.plot(floor.index, floor.values, "k--", label="floor: two activation maps")
        for _, row in protocol[protocol.scale == scale].iterrows():
            colour = role_colour.get(row.get("role"), "tab:red")
            ax.plot(row.out_mpix, row.peak_MiB, "*", color=colour, markersize=13,
                    markeredgecolor="k", label=f"{row.network}, authors' protocol")  # fmt: skip
            ax.annotate(f"{row.ratio:.2f}×", (row.out_mpix, row.peak_MiB), xytext=(-6, 0),
                        textcoords="offset points", ha="right", va="center", fontsize=7,
                        color=colour)  # fmt: skip
        for mpix, floor_mib in protocol[protocol.scale == scale].groupby("out_mpix").floor_MiB:
            ax.plot(mpix, floor_mib.min(), "k_", markersize=16, markeredgewidth=2,
                    label="floor, authors' protocol")  # fmt: skip
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("output megapixels")
        ax.set_ylabel("peak inference memory (MiB)")
        ax.set_title(f"×{scale}")
    # One legend for both panels, under them, so that no line is hidden behind it.
    entries = {}
    for ax in axes[0]:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            entries.setdefault(label, handle)
    rows = -(-len(entries) // 2)
    fig.legend(entries.values(), entries.keys(), loc="lower center", ncol=2, fontsize=7,
               frameon=False)  # fmt: skip
    fig.suptitle("MemSR: CPU inference memory against output size (ratio to the floor)")
    fig.tight_layout(rect=(0, 0.035 * rows + 0.02, 1, 1))
    return save(fig, out)
