"""DIPNet's report pieces: the per-stage ablation table and the latency-vs-PSNR scatter.

Stages come from each model file's metadata (the catalog's ``method`` and ``variant``); the
teacher and the authors' release are named by the plan. Every other imported model (``method``
"authors": the field's peers, e.g. NTIRE 2024's RLFN baseline and SPAN winner) joins both as a
peer, named by its release's paper.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from litesr.models.releases import releases  # noqa: E402
from litesr.report.figures import save  # noqa: E402
from litesr.report.tables import sets_in_order  # noqa: E402

STAGES = {
    "alone": "student alone (L1 on HR)",
    "ehr": "+ enhanced HR",
    "anchors": "+ anchors",
    "reparam": "+ re-parameterisation",
    "pruned": "+ pruning",
    "progressive": "+ progressive",
}
COST = {
    "params": "params",
    "macs_256_G": "GMACs (256² LR)",
    "cpu_latency_ms": "CPU ms",
    "cpu_inference_MiB": "CPU MiB",
    "gpu_latency_ms": "GPU ms",
    "gpu_peak_MiB": "GPU MiB",
}


PEER = "peer: "
"""The stage of a peer starts with this, then names it (:func:`peer_stage`)."""


def peer_stage(model: str, variant: str) -> str:
    """The stage of an imported model other than the official DIPNet: its release's paper
    and the model's name (the name alone for a variant that is no declared release)."""
    rel = releases().get(variant)
    return f"{PEER}{rel.paper} ({model})" if rel else f"{PEER}{model}"


def family(
    summary: pd.DataFrame,
    cost: pd.DataFrame,
    catalog: pd.DataFrame,
    teacher: str,
    official: str | None,
) -> pd.DataFrame:
    """Accuracy and cost rows of the teacher, every DIPNet stage, the authors' release and the
    peers, with a ``stage`` column (the variant; ``teacher`` and ``official`` for the named
    ones, :func:`peer_stage` for the peers)."""
    info = catalog[["model", "scale", "method", "variant"]].copy()
    info.loc[info.model == teacher, ["method", "variant"]] = ["dipnet", "teacher"]
    if official:
        info.loc[info.model == official, ["method", "variant"]] = ["dipnet", "official"]
    peers = info.method == "authors"
    info.loc[peers, "variant"] = [
        peer_stage(m, v) for m, v in zip(info.model[peers], info.variant[peers], strict=True)
    ]
    info.loc[peers, "method"] = "dipnet"
    info = info[info.method == "dipnet"].rename(columns={"variant": "stage"})
    rows = summary.merge(info.drop(columns="method"), on=["model", "scale"])
    keep = ["model", "scale", *[c for c in COST if c in cost]]
    return rows.merge(cost[keep], on=["model", "scale"], how="left")


def _cost_cells(models: pd.DataFrame, columns: list[str]) -> dict[str, str]:
    """The cost cells of one stage's models (a row each): the mean; the parameters as a range
    where they differ (pruned widths of several seeds)."""
    cells = {}
    for col in columns:
        values = models[col]
        if col == "params":
            low, high = int(values.min()), int(values.max())
            cells[COST[col]] = f"{low:,}" if low == high else f"{low:,}–{high:,}"
        else:
            cells[COST[col]] = f"{values.mean():.2f}"
    return cells


def _by_chain(rows: pd.DataFrame, stage: str) -> pd.DataFrame:
    """PSNR-Y of one stage's models by chain (rows; the plan's ``-s<k>`` suffix, none for chain
    0) and ``set ×scale`` column."""
    part = rows[rows.stage == stage]
    chain = part.model.str.extract(r"-s(\d+)$")[0].fillna("0").astype(int)
    return part.assign(chain=chain).pivot_table(index="chain", columns="column", values="psnr_y")


def ablation_table(
    summary: pd.DataFrame,
    cost: pd.DataFrame,
    catalog: pd.DataFrame,
    teacher: str,
    official: str | None = None,
) -> pd.DataFrame:
    """One row per stage (a stage with several seeds as mean ± std over them), PSNR / SSIM per
    set and scale, the cost columns (GPU ones when measured), the PSNR change against the
    previous stage and whether it exceeds the seed spread in every set and scale; then the
    official DIPNet and the peers.

    The spread is the max − min of the student-alone seeds for a stage with one seed. For a
    stage with as many seeds as the previous one, chain k against chain k (the student
    alone's seed k is chain k): the change is the mean of the per-chain differences and the
    spread their max − min, as the scorecard judges a ``paired`` claim. Otherwise the larger
    of the two stages' max − min."""
    rows = family(summary, cost, catalog, teacher, official)
    rows["column"] = rows.set + " ×" + rows.scale.astype(str)
    cost_cols = [c for c in COST if c in rows and rows[c].notna().any()]
    psnr = rows.groupby(["stage", "column"]).psnr_y
    mean, spread = psnr.mean().unstack(), (psnr.max() - psnr.min()).unstack()
    # Set5 before Set14 in the cells and in the "a / b" texts below, which pair mean and spread
    mean, spread = sets_in_order(mean), sets_in_order(spread)
    std, ssim = psnr.std().unstack(), rows.groupby(["stage", "column"]).ssim_y.mean().unstack()
    models = rows.drop_duplicates("model")  # each model's cost row (its first scale)
    seeds = rows.groupby("stage").model.nunique()

    def costs(stage: str) -> dict[str, str]:
        return _cost_cells(models[models.stage == stage], cost_cols)

    out: dict[str, dict] = {}
    if "teacher" in mean.index:
        out[f"teacher ({teacher})"] = {
            **{c: f"{mean.at['teacher', c]:.2f} / {ssim.at['teacher', c]:.4f}" for c in mean},
            **costs("teacher"),
        }
    previous = None
    for stage, label in STAGES.items():
        if stage not in mean.index:
            continue
        several = seeds[stage] > 1
        cells = {}
        for c in mean:
            if several:
                cells[c] = (
                    f"{mean.at[stage, c]:.2f} ± {std.at[stage, c]:.2f} / {ssim.at[stage, c]:.4f}"
                )
            else:
                cells[c] = f"{mean.at[stage, c]:.2f} / {ssim.at[stage, c]:.4f}"
        name = f"{label} ({seeds[stage]} seeds)" if several else label
        out[name] = {**cells, **costs(stage)}
        if several and previous is not None and seeds[previous] == seeds[stage]:
            diffs = _by_chain(rows, stage) - _by_chain(rows, previous)
            against, whose = (diffs.max() - diffs.min())[mean.columns], " per chain"
        elif several and previous is not None:
            against, whose = spread.loc[[stage, previous]].max(), ", the larger of the two stages"
        elif previous is not None and seeds.get("alone", 0) > 1:
            against, whose = spread.loc["alone"], ""
        else:
            against = None
        if against is not None:
            delta = mean.loc[stage] - mean.loc[previous]  # the mean of the per-chain ones too
            beyond = (delta.abs() > against).tolist()
            verdict = "yes" if all(beyond) else ("no" if not any(beyond) else "mixed")
            out[name]["Δ PSNR vs previous"] = " / ".join(f"{round(d, 2) + 0.0:+.2f}" for d in delta)
            out[name]["effect beyond seed spread?"] = (
                f"{verdict} (spread {' / '.join(f'{s:.2f}' for s in against)} dB{whose})"
            )
        previous = stage
    named = {f"official DIPNet ({official})": "official"} if "official" in mean.index else {}
    named |= {stage: stage for stage in sorted(mean.index) if stage.startswith(PEER)}
    for label, stage in named.items():
        out[label] = {
            **{c: f"{mean.at[stage, c]:.2f} / {ssim.at[stage, c]:.4f}" for c in mean},
            **costs(stage),
        }
    return pd.DataFrame.from_dict(out, orient="index").fillna("")


def pareto_front(latency: np.ndarray, psnr: np.ndarray) -> np.ndarray:
    """Indices of the points no other point beats (faster and at least as accurate, or as
    fast and more accurate), ordered by latency."""
    order = np.lexsort((-psnr, latency))
    front, best = [], -np.inf
    for i in order:
        if psnr[i] > best:
            front.append(i)
            best = psnr[i]
    return np.array(front, dtype=int)


def scatter(
    summary: str,
    cost: str,
    catalog: str,
    teacher: str,
    test_set: str,
    scale: int,
    out: str,
    official: str | None = None,
) -> Path:
    """CPU latency against PSNR-Y on one set and scale for the teacher, each stage, the
    authors' release and the peers (diamonds); a stage with several seeds as their mean (a
    large point) and each seed (small points). The Pareto front (of the large points) drawn as
    a line."""
    rows = family(*(pd.read_csv(p, sep="\t") for p in (summary, cost, catalog)), teacher, official)
    rows = rows[(rows.set == test_set) & (rows.scale == scale)].reset_index(drop=True)
    if rows.empty:
        raise ValueError(f"no DIPNet model was evaluated on {test_set} ×{scale}")
    fig, ax = plt.subplots(figsize=(7, 4.6))
    labels = {"teacher": f"teacher ({teacher})", "official": "official DIPNet", **STAGES}
    peers = sorted(s for s in set(rows.stage) if s.startswith(PEER))
    labels |= {s: s.removeprefix(PEER) for s in peers}
    order = [s for s in ["teacher", *STAGES, "official"] if s in set(rows.stage)] + peers
    points = rows.groupby("stage")[["cpu_latency_ms", "psnr_y"]].mean().loc[order]
    for i, stage in enumerate(order):
        group = rows[rows.stage == stage]
        marker = "D" if stage in peers else "o"
        if len(group) > 1:
            ax.scatter(group.cpu_latency_ms, group.psnr_y, s=14, color=f"C{i % 10}", alpha=0.5)
        ax.scatter(
            points.at[stage, "cpu_latency_ms"],
            points.at[stage, "psnr_y"],
            s=60,
            marker=marker,
            color=f"C{i % 10}",
            label=labels[stage] + (f" (mean of {len(group)})" if len(group) > 1 else ""),
        )
    front = points.iloc[pareto_front(points.cpu_latency_ms.to_numpy(), points.psnr_y.to_numpy())]
    ax.plot(front.cpu_latency_ms, front.psnr_y, "k--", linewidth=1, label="Pareto front")
    ax.set_xscale("log")
    ax.set_xlabel("CPU latency (ms, batch 1)")
    ax.set_ylabel(f"PSNR-Y on {test_set} ×{scale} (dB)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8)
    ax.set_title("DIPNet family and peers: latency against accuracy")
    return save(fig, out)
