"""Paper-style tables built with pandas from the workflow's TSVs."""

from __future__ import annotations

import re

import pandas as pd

from litesr.data.sets import column_key


def psnr_ssim_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Rows: models; columns: (set, ×scale); cells: ``PSNR / SSIM`` as in SR papers."""
    cells = summary.assign(
        cell=summary.psnr_y.map("{:.2f}".format) + " / " + summary.ssim_y.map("{:.4f}".format),
        scale=summary.scale.map("×{}".format),
    )
    order = list(dict.fromkeys(summary.model))
    table = cells.pivot(index="model", columns=["set", "scale"], values="cell")
    columns = pd.MultiIndex.from_tuples(sorted(table.columns, key=column_key))
    return table.reindex(index=order, columns=columns)


def sets_in_order(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with its ``"<set> ×<scale>"`` columns in report order (:mod:`litesr.data.sets`)
    in the places they held; every other column keeps its place."""
    labels = [c for c in table.columns if re.fullmatch(r".+ ×\d+", str(c))]
    ordered = iter(sorted(labels, key=column_key))
    return table[[next(ordered) if c in labels else c for c in table.columns]]


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

COST_HEADERS = {
    "arch": "arch",
    "params": "params",
    "macs_256_G": "GMACs (256² LR)",
    "macs_720p_G": "GMACs (720p out)",
    "cpu_latency_ms": "CPU ms",
    "cpu_inference_MiB": "CPU MiB",
    "gpu_latency_ms": "GPU ms",
    "gpu_peak_MiB": "GPU MiB",
}

COLLAPSE_DB = 0.05


def collapsed(summary: pd.DataFrame, baseline: str = "bicubic") -> list[str]:
    """Trained models within ``COLLAPSE_DB`` of bicubic on every set and scale: they learned
    (next to) nothing, and every table marks them."""
    psnr = summary.pivot_table(index="model", columns=["set", "scale"], values="psnr_y")
    if baseline not in psnr.index:
        return []
    # A cell a model was not evaluated at (a release made at some scales only) does not count.
    close = ((psnr - psnr.loc[baseline]).abs() <= COLLAPSE_DB) | psnr.isna()
    return [m for m in psnr.index if m != baseline and bool(close.loc[m].all())]


def typeset(frame: pd.DataFrame, caption: str, best: pd.DataFrame | None = None) -> dict:
    """A table as the report template takes it: header, string cells, the best-cell mask."""
    flat = frame.reset_index()
    if frame.index.nlevels == 1 and frame.index.name is None:
        flat = flat.rename(columns={flat.columns[0]: ""})
    columns = [
        " ".join(map(str, c)).strip() if isinstance(c, tuple) else str(c) for c in flat.columns
    ]
    mask = [[False] * len(columns) for _ in range(len(flat))]
    if best is not None:
        offset = frame.index.nlevels
        for i in range(len(flat)):
            for j, value in enumerate(best.to_numpy()[i]):
                mask[i][offset + j] = bool(value)
    rows = [["" if pd.isna(v) else str(v) for v in row] for row in flat.itertuples(index=False)]
    return {"columns": columns, "rows": rows, "best": mask, "caption": caption}


ABSENT = "–"


def absent_note(absent: dict[str, dict]) -> str:
    """The caption's sentence on the empty cells: each model missing at some scales, why."""
    if not absent:
        return ""
    parts = [
        f"{model} at {', '.join(f'×{s}' for s in info['scales'])} ({info['why']})"
        for model, info in absent.items()
    ]
    return f" {ABSENT}: not evaluated: {'; '.join(parts)}."


def accuracy_for_print(summary: pd.DataFrame, absent: dict[str, dict] | None = None) -> dict:
    """The PSNR / SSIM table with the best PSNR per column in bold and collapsed models
    marked; a cell of a model not made at that scale reads ``–``, and ``absent`` (model →
    its missing ``scales`` and ``why``) puts the reasons in the caption."""
    table = psnr_ssim_table(summary).fillna(ABSENT)
    psnr = summary.assign(scale=summary.scale.map("×{}".format)).pivot(
        index="model", columns=["set", "scale"], values="psnr_y"
    )
    psnr = psnr.reindex(index=table.index, columns=table.columns)
    trained = psnr.drop(index="bicubic", errors="ignore")
    best = psnr.eq(trained.max()) & psnr.index.to_series().ne("bicubic").to_numpy()[:, None]
    down = set(collapsed(summary))
    table.index = [f"{m} (collapsed)" if m in down else m for m in table.index]
    table.index.name = "model"
    return typeset(
        table,
        "PSNR (dB) / SSIM on BT.601 Y, border = scale, SR rounded to uint8, averaged over "
        'images. Bold: the best model per column. "collapsed": within '
        f"{COLLAPSE_DB} dB of bicubic everywhere." + absent_note(absent or {}),
        best,
    )


def cost_for_print(cost: pd.DataFrame, note: str) -> dict:
    """The cost table with units in the headers and the lowest value per column in bold."""
    table = cost_table(cost)
    numeric = table.select_dtypes("number")
    best = numeric.eq(numeric.min()) & numeric.notna()
    shown = table.copy()
    for column in numeric:
        digits = 0 if column == "params" else 2
        shown[column] = numeric[column].map(lambda v, d=digits: "" if pd.isna(v) else f"{v:,.{d}f}")
    best = best.reindex(columns=shown.columns, fill_value=False)
    return typeset(shown.rename(columns=COST_HEADERS), note, best)
