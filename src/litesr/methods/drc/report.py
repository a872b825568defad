"""DRC's report: the comparison table and the searched-widths figure. Variants and ratios come
from the models' own metadata (the catalog and the model files), never from their names."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402

from litesr.methods.drc import CRITERIA  # noqa: E402
from litesr.methods.drc.search import candidate_widths  # noqa: E402
from litesr.models.store import read_meta  # noqa: E402
from litesr.report.figures import save  # noqa: E402
from litesr.report.tables import sets_in_order  # noqa: E402

_ALPHA = re.compile(r"^p(\d+)_w(\d+)$")
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


CUT = {"params": "params_cut", "macs_720p_G": "MACs_cut"}


def _cells(group: pd.DataFrame, full: pd.DataFrame | None = None) -> dict[str, str]:
    """Mean PSNR / SSIM per ``set ×scale`` over the group's models, and their cost; with the
    unpruned ``full`` group, also the parameters and MACs removed, in % of ``full``'s."""
    out = {}
    for (set_name, scale), g in group.groupby(["set", "scale"]):
        out[f"{set_name} ×{scale}"] = f"{g.psnr_y.mean():.2f} / {g.ssim_y.mean():.4f}"
    for column, label in COST.items():
        if column in group and group[column].notna().any():
            value = group[column].mean()
            out[label] = f"{int(value):,}" if column == "params" else f"{value:.2f}"
            if full is not None and column in CUT and full[column].notna().any():
                out[CUT[column]] = f"−{100 * (1 - value / full[column].mean()):.0f} %"
    return out


def _psnr(group: pd.DataFrame) -> pd.Series:
    """PSNR per (set, scale, model)."""
    return group.set_index(["set", "scale", "model"]).psnr_y


def drc_table(
    summary: pd.DataFrame, cost: pd.DataFrame, catalog: pd.DataFrame, primal: str, seeds: int
) -> pd.DataFrame:
    """Rows: both primals and dual − no dual; per ratio DRC, the L1 mean over seeds, its
    spread (max − min PSNR over seeds) and DRC − L1 with a verdict against the spread.

    A ratio r removes the fraction r of every residual block's inner channels (the output
    channels of its first conv); the residual stream, head and upsampler keep theirs, so the
    parameters and MACs removed (``params_cut``, ``MACs_cut``, against the dual-trained
    primal) are less than r."""
    rows = drc_rows(summary, cost, catalog, primal)
    out: dict[str, dict[str, str]] = {}
    by_variant = {v: g for v, g in rows.groupby("variant")}
    for variant, label in (("nodual", "primal, L1 only"), ("dual", "primal, L1 + λ·dual")):
        if variant in by_variant:
            out[label] = _cells(by_variant[variant])
    if {"nodual", "dual"} <= set(by_variant):
        dual, plain = (by_variant[v].groupby(["set", "scale"]).psnr_y for v in ("dual", "nodual"))
        gain = dual.mean() - plain.mean()
        n = min(by_variant[v].model.nunique() for v in ("dual", "nodual"))
        if n < 2:
            out["dual − no dual"] = {f"{s} ×{k}": f"{v:+.2f} dB" for (s, k), v in gain.items()}
        else:
            spread = pd.concat([dual.max() - dual.min(), plain.max() - plain.min()], axis=1)
            spread = spread.max(axis=1)
            out[f"dual − no dual ({n} seeds each)"] = {
                f"{s} ×{k}": f"{v:+.2f} dB ({_verdict(v, spread[(s, k)], n, 'dual')})"
                for (s, k), v in gain.items()
            }
    pruned = rows[rows.variant.isin(["drc", "l1"])]
    for ratio, group in pruned.groupby("ratio"):
        drc, l1 = group[group.variant == "drc"], group[group.variant == "l1"]
        full = by_variant.get("dual")
        if len(drc):
            out[f"DRC r={ratio:g}"] = _cells(drc, full)
        if len(l1):
            n = l1.model.nunique()
            out[f"L1 r={ratio:g} (mean of {n}/{seeds} seeds)"] = _cells(l1, full)
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
    return sets_in_order(pd.DataFrame.from_dict(out, orient="index").fillna(""))


def diagnostic_table(
    summary: pd.DataFrame, cost: pd.DataFrame, catalog: pd.DataFrame, ratio: float
) -> pd.DataFrame:
    """Rows: each selection of the diagnostic at ``ratio``, after pruning and after
    fine-tuning (mean PSNR / SSIM over its models, the PSNR spread max − min in brackets where
    there are several), then each selection's gap to L1 after fine-tuning with a verdict
    against the larger of the two spreads. Arms come from the models' variants
    (``pruned-<criterion>``, ``tuned-<criterion>``; the tuned L1 models are the ``l1``
    baseline at that ratio)."""
    info = catalog[["model", "scale", "method", "variant", "size"]]
    info = info[(info.method == "drc") & ((info["size"] - ratio).abs() < 1e-9)]
    rows = summary.merge(info, on=["model", "scale"])
    rows["variant"] = rows.variant.replace({"l1": "tuned-l1"})
    rows = rows[rows.variant.str.match(r"^(pruned|tuned)-")]
    out: dict[str, dict[str, str]] = {}
    tuned: dict[str, pd.DataFrame] = {}
    for stage, label in (("pruned", "after pruning"), ("tuned", "after fine-tuning")):
        for criterion in CRITERIA:
            group = rows[rows.variant == f"{stage}-{criterion}"]
            if not len(group):
                continue
            cells = {}
            for (set_name, scale), g in group.groupby(["set", "scale"]):
                text = f"{g.psnr_y.mean():.2f} / {g.ssim_y.mean():.4f}"
                if g.model.nunique() > 1:
                    text += f" ({g.psnr_y.max() - g.psnr_y.min():.2f})"
                cells[f"{set_name} ×{scale}"] = text
            out[f"{criterion}, {label} ({group.model.nunique()} models)"] = cells
            if stage == "tuned":
                tuned[criterion] = group
    if "l1" in tuned:
        base = tuned["l1"].groupby(["set", "scale"]).psnr_y
        for criterion, group in tuned.items():
            if criterion == "l1":
                continue
            psnr = group.groupby(["set", "scale"]).psnr_y
            spread = pd.concat([base.max() - base.min(), psnr.max() - psnr.min()], axis=1).max(
                axis=1
            )
            diff = psnr.mean() - base.mean()
            n = max(tuned["l1"].model.nunique(), group.model.nunique())
            out[f"{criterion} − l1, fine-tuned"] = {
                f"{s} ×{k}": f"{v:+.2f} dB ({_verdict(v, spread[(s, k)], n, criterion)})"
                for (s, k), v in diff.items()
            }
    return sets_in_order(pd.DataFrame.from_dict(out, orient="index").fillna(""))


def _verdict(diff: float, spread: float, n: int, name: str = "DRC") -> str:
    if n < 2:
        return "one seed: no spread"
    if abs(diff) <= spread:
        return "within seed spread"
    return f"{name} better" if diff > 0 else f"{name} worse"


def _flat(widths: list) -> list[int]:
    """Per pruned layer, in order: EDSR's one width per block, RLFN's pair per block."""
    return [w for item in widths for w in (item if isinstance(item, list) else [item])]


def _authors_widths() -> dict:
    return yaml.safe_load(Path(__file__).with_name("authors_widths.yaml").read_text())


def widths_figure(models: list[str], primal: str, out: str) -> Path:
    """Inner width per residual block, as a fraction of the full width: ours per ratio
    (solid, from the model files' metadata) against the uniform width (dashed), and beside
    them the authors' searched DRN-S ×4 widths with their uniform widths."""
    args = read_meta(primal)["args"]
    full = args.get("n_feats") or args.get("mid_channels", 64)  # EDSR, or RLFN's inner width
    authors = _authors_widths()
    fig, (ours_ax, theirs_ax) = plt.subplots(
        1, 2, figsize=(11, 3.8), sharey=True, gridspec_kw={"width_ratios": [1, 2]}
    )
    for i, path in enumerate(models):
        meta = read_meta(path)
        ratio, widths = meta["ratio"], _flat(meta["widths"])
        uniform = list(meta["uniform_width"].values())
        blocks = range(len(widths))
        mean = sum(widths) / sum(uniform)
        label = f"r={ratio:g} (mean {mean:.0%} of uniform)"
        ours_ax.plot(blocks, [w / full for w in widths], marker="o", color=f"C{i}", label=label)
        ours_ax.plot(blocks, [w / full for w in uniform], linestyle="--", color=f"C{i}")
    for i, (ratio, widths) in enumerate(sorted(authors["ratios"].items())):
        top = max(candidate_widths(authors["full"], ratio))
        mean = sum(widths) / (top * len(widths))
        blocks = range(len(widths))
        theirs_ax.plot(
            blocks,
            [w / authors["full"] for w in widths],
            marker=".",
            color=f"C{i}",
            label=f"r={ratio:g} (mean {mean:.0%} of uniform)",
        )
        theirs_ax.axhline(top / authors["full"], linestyle="--", color=f"C{i}", linewidth=1)
    theirs_ax.axvline(len(widths) / 2 - 0.5, color="grey", linewidth=1)
    for ax, title in (
        (ours_ax, f"ours: EDSR, {full} channels"),
        (theirs_ax, f"authors: DRN-S ×4, {authors['full']} channels (two levels)"),
    ):
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_xlabel("pruned layer (input side → output side)")
        ax.set_title(title, fontsize=9)
        ax.axhline(1.0, color="black", linewidth=1)
        ax.legend(fontsize=7)
    ours_ax.set_ylabel("inner width / full width")
    ours_ax.set_ylim(0, 1.08)
    fig.suptitle("DRC: searched widths per block (solid) vs the uniform width (dashed)")
    return save(fig, out)


def alpha_figure(logs: list[str], out: str) -> Path:
    """softmax(α) of every searched layer over the search steps: one row per DRC model (its
    ratio from the log's model file), one panel per layer, one line per candidate width."""
    runs = []
    for path in logs:
        table = pd.read_csv(path, sep="\t")
        runs.append(table[table.stage == "search"] if "stage" in table else table)
    layers = max(len({c.split("_")[0] for c in r.columns if _ALPHA.match(c)}) for r in runs)
    fig, axes = plt.subplots(
        len(runs), layers, figsize=(2.2 * layers, 2.0 * len(runs) + 0.4), sharex=True,
        sharey=True, squeeze=False, layout="constrained",
    )  # fmt: skip
    for row, (path, run) in zip(axes, zip(logs, runs, strict=True), strict=True):
        columns = [c for c in run.columns if _ALPHA.match(c)]
        for c in columns:
            layer, width = (int(v) for v in _ALPHA.match(c).groups())
            row[layer].plot(run.step, run[c], linewidth=1, label=f"{width}")
        for layer, ax in enumerate(row):
            ax.set_title(f"block {layer}", fontsize=8)
            ax.legend(fontsize=6, title="width", title_fontsize=6)
        row[0].set_ylabel(f"{Path(path).parent.parent.name}\nsoftmax(α)", fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("search step")
    fig.suptitle("DRC: softmax(α) per layer during the channel-number search")
    return save(fig, out)
