"""AIL's report pieces: importance maps over rounds, per-round curves, PSNR against width, and
the paper-form table. Width and variant come from the models' own metadata (the catalog)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
import torch  # noqa: E402
from matplotlib import ticker  # noqa: E402

from litesr.data.color import luma  # noqa: E402
from litesr.data.images import read_image  # noqa: E402
from litesr.data.resize_torch import upsample_bicubic  # noqa: E402
from litesr.data.sets import column_key, in_set_order  # noqa: E402
from litesr.methods.ail.importance import AILTask, Importance  # noqa: E402
from litesr.methods.ail.rounds import round_files  # noqa: E402
from litesr.models.releases import model_name  # noqa: E402
from litesr.models.store import load_model  # noqa: E402
from litesr.report.figures import save  # noqa: E402
from litesr.report.tables import sets_in_order  # noqa: E402

COLORS = {"plain": "tab:blue", "ail": "tab:orange", "noteacher": "tab:green"}


def _tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img.transpose(2, 0, 1).copy()).float()[None] / 255


def shown_rounds(rounds: int, most: int = 6) -> list[int]:
    """At most ``most`` rounds, evenly spread, always the first and the last."""
    return sorted({int(r) for r in np.linspace(0, rounds - 1, min(rounds, most)).round()})


@torch.no_grad()
def importance_maps(
    teacher: str,
    student: str,
    stages: str,
    rounds: int,
    data: str,
    image: str,
    scale: int,
    importance: dict,
    out: str,
) -> Path:
    """The AIL weights of (at most six) rounds on one image: round 0 is the teacher term alone,
    round r adds the student snapshot taken at its start (the end of round r − 1)."""
    imp = Importance.from_dict(importance)
    hr = read_image(Path(data) / "HR" / f"{image}.png")
    lr = read_image(Path(data) / "LR" / f"{image}.png")
    y_bic = luma(upsample_bicubic(_tensor(lr), scale))
    y = luma(_tensor(hr))
    teacher_model, student_model = load_model(teacher)[0], load_model(student)[0]
    files = round_files(Path(stages), rounds)
    maps = []
    for r in shown_rounds(rounds):
        snapshot = load_model(files[r - 1])[0] if r > 0 else None
        w = AILTask(student_model, "ail", r, imp, teacher_model, snapshot).weights(y_bic, y)
        maps.append((r, w[0, 0].numpy()))
    fig, axes = plt.subplots(1, len(maps) + 1, figsize=(3.2 * (len(maps) + 1), 3.4))
    axes[0].imshow(hr)
    axes[0].set_title(f"{image} (HR)")
    for ax, (r, w) in zip(axes[1:], maps, strict=True):
        shown = ax.imshow(w, cmap="magma", vmin=0, vmax=1)
        ax.set_title(
            f"round {r}: λ_r = {imp.round_lambda(r):.2f}\nmean w = {w.mean():.3f}", fontsize=9
        )
    for ax in axes:
        ax.axis("off")
    fig.colorbar(shown, ax=axes[1:].tolist(), shrink=0.8, label="importance w")
    fig.suptitle("AIL importance over rounds: easy pixels (bright) first, hard ones later", y=1.08)
    return save(fig, out)


def round_curves(logs: list[str], labels: list[str], out: str) -> Path:
    """Loss and mean importance per step of each variant; dotted lines mark round starts."""
    data = pd.concat(
        [
            pd.read_csv(p, sep="\t").assign(variant=label)
            for p, label in zip(logs, labels, strict=True)
        ]
    )
    palette = {label: COLORS.get(label.split()[-1], "grey") for label in labels}
    fig, (ax_loss, ax_w) = plt.subplots(1, 2, figsize=(11, 3.8))
    sns.lineplot(data=data, x="global_step", y="loss", hue="variant", palette=palette, ax=ax_loss)
    sns.lineplot(
        data=data,
        x="global_step",
        y="mean_w",
        hue="variant",
        palette=palette,
        ax=ax_w,
        legend=False,
    )
    starts = data.groupby("round").global_step.min().iloc[1:]
    for ax in (ax_loss, ax_w):
        for step in starts:
            ax.axvline(step, color="grey", linestyle=":", linewidth=1)
        ax.set_xlabel("step (all rounds)")
    ax_loss.set_yscale("log")
    ax_loss.set_ylabel("Σ (w ŷ − w y)² per batch")
    ax_w.set_ylabel("mean importance w")
    fig.suptitle("AIL rounds (dotted: a new round restarts the learning-rate schedule)")
    return save(fig, out)


def ail_rows(
    summary: pd.DataFrame,
    cost: pd.DataFrame,
    catalog: pd.DataFrame,
    teacher: str,
    start: str | None = None,
) -> pd.DataFrame:
    """Accuracy and cost of the AIL teacher and students, with width and variant columns
    taken from each model file's metadata; ``start`` (a model the students started from
    instead of ``ail-w<W>-pretrain``) is their "pretrain" variant."""
    info = catalog[["model", "scale", "method", "variant", "size"]].copy()
    info.loc[info.model == teacher, ["method", "variant"]] = ["ail", "teacher"]
    if start is not None:
        info.loc[info.model == start, ["method", "variant"]] = ["ail", "pretrain"]
    info = info[info.method == "ail"].rename(columns={"size": "width"})
    rows = summary.merge(info.drop(columns="method"), on=["model", "scale"])
    return rows.merge(
        cost[["model", "scale", "params", "macs_720p_G"]], on=["model", "scale"], how="left"
    )


def width_figure(
    summary: str, cost: str, catalog: str, teacher: str, out: str, exclude: list[str] = ()
) -> Path:
    """PSNR against student parameters per variant; the teacher as a dashed line and the
    "25 % of the parameters" mark as a dotted one. The x ticks are the students' sizes.
    ``exclude``: models left out (the budget ladder's)."""
    rows = ail_rows(*(pd.read_csv(p, sep="\t") for p in (summary, cost, catalog)), teacher)
    rows = rows[~rows.model.isin(exclude)]
    students = rows[~rows.variant.isin(["teacher", "pretrain"])]
    order = [v for v in COLORS if v in set(students.variant)]
    grid = sns.relplot(
        data=students,
        x="params",
        y="psnr_y",
        hue="variant",
        style="variant",
        hue_order=order,
        style_order=order,
        palette=COLORS,
        col="set",
        row="scale",
        kind="line",
        markers=True,
        dashes=False,
        height=2.6,
        aspect=1.0,
        facet_kws={"sharey": False, "legend_out": False},
    )
    sizes = students.groupby("params").width.first()
    for (scale, set_name), ax in grid.axes_dict.items():
        ref = rows[(rows.variant == "teacher") & (rows.scale == scale) & (rows.set == set_name)]
        if len(ref):
            ax.axhline(ref.psnr_y.item(), color="black", linestyle="--", label="teacher")
            ax.axvline(0.25 * ref.params.item(), color="grey", linestyle=":", label="25 % params")
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(ticker.FixedLocator(sizes.index))
        ax.xaxis.set_major_formatter(
            ticker.FixedFormatter([f"w{w:g}\n{p:,.0f}" for p, w in sizes.items()])
        )
        ax.xaxis.set_minor_locator(ticker.NullLocator())
        ax.tick_params(labelsize=7)
    grid.set_axis_labels("student width, parameters", "PSNR-Y (dB)", fontsize=8)
    grid.set_titles("{col_name} ×{row_name}", size=8)
    sns.move_legend(
        grid,
        "upper center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=len(order),
        fontsize=7,
        title=None,
        frameon=False,
    )
    grid.figure.suptitle("AIL vs plain training at equal budget (dashed: teacher)", y=1.04, size=9)
    return save(grid.figure, out)


AUTHORS_PLAIN, AUTHORS_AIL = model_name("ail_vdsr13_plain"), model_name("ail_vdsr13_ail")


def ail_table(
    summary: pd.DataFrame,
    cost: pd.DataFrame,
    catalog: pd.DataFrame,
    teacher: str,
    start: str | None = None,
    exclude: list[str] = (),
) -> pd.DataFrame:
    """Rows: teacher, then each width's variants and two gains, AIL − pretrained (the
    authors' protocol) and AIL − plain (equal budget); then, when the authors' width-13
    students are in ``summary``, their AIL student and their own AIL − pretrained gain.
    Columns: params, MACs and PSNR / SSIM per set and scale. ``exclude``: models left out
    (the budget ladder's, which have their own table)."""
    rows = ail_rows(summary, cost, catalog, teacher, start)
    rows = rows[~rows.model.isin(exclude)]
    measured = summary.merge(
        cost[["model", "scale", "params", "macs_720p_G"]], on=["model", "scale"], how="left"
    )
    measured["column"] = measured.set + " ×" + measured.scale.astype(str)
    psnr = measured.pivot_table(index="model", columns="column", values="psnr_y")
    ssim = measured.pivot_table(index="model", columns="column", values="ssim_y")
    cost_of = measured.groupby("model")[["params", "macs_720p_G"]].first()
    info = rows.groupby("model")[["width", "variant"]].first()

    def row(models: list[str]) -> dict[str, str]:
        """The mean over ``models`` (seeds of one variant)."""
        p, q = psnr.loc[models].mean(), ssim.loc[models].mean()
        return {
            "params": f"{int(cost_of.params[models[0]]):,}",
            "MACs_720p_G": f"{cost_of.macs_720p_G[models[0]]:.2f}",
            **{c: f"{p[c]:.2f} / {q[c]:.4f}" for c in p.index if not np.isnan(p[c])},
        }

    def gain(better: list[str], base: list[str]) -> dict[str, str]:
        diff = (psnr.loc[better].mean() - psnr.loc[base].mean()).dropna()
        return diff.map("{:+.2f} dB".format).to_dict()

    def spread(models: list[str]) -> dict[str, str]:
        return (psnr.loc[models].max() - psnr.loc[models].min()).map("{:.2f} dB".format).to_dict()

    out: dict[str, dict] = {}
    if teacher in info.index:
        out[f"{teacher} (VDSR teacher)"] = row([teacher])
    students = info[info.variant != "teacher"]
    for width, group in students.groupby("width"):
        w = f"w{int(width)}"
        by_variant = {v: sorted(g.index) for v, g in group.groupby("variant")}
        for variant in ("pretrain", "plain", "ail", "noteacher"):
            models = by_variant.get(variant)
            if not models:
                continue
            if models == [start]:
                out[f"{w} pretrained: {start}"] = row(models)
            elif len(models) == 1:
                out[f"{w} {variant}"] = row(models)
            else:
                out[f"{w} {variant}, mean of {len(models)} seeds"] = row(models)
                out[f"{w} {variant}, seed spread (max − min)"] = spread(models)
        if {"pretrain", "ail"} <= set(by_variant):
            out[f"{w} gain ail−pretrained"] = gain(by_variant["ail"], by_variant["pretrain"])
        if {"plain", "ail"} <= set(by_variant):
            out[f"{w} gain ail−plain"] = gain(by_variant["ail"], by_variant["plain"])
    if {AUTHORS_PLAIN, AUTHORS_AIL} <= set(psnr.index):
        if start != AUTHORS_PLAIN:
            out[f"authors' pretrained: {AUTHORS_PLAIN}"] = row([AUTHORS_PLAIN])
        out[f"authors' ail: {AUTHORS_AIL}"] = row([AUTHORS_AIL])
        out["authors' gain ail−pretrained"] = gain([AUTHORS_AIL], [AUTHORS_PLAIN])
    return sets_in_order(pd.DataFrame.from_dict(out, orient="index").fillna(""))


def ladder_gains(summary: pd.DataFrame, rungs: list, start: str) -> pd.DataFrame:
    """Per rung (steps per round), seed, set and scale: AIL − start and AIL − plain (the plain
    student of the same seed) in dB. ``rungs``: ``[steps, {variant: [model per seed]}]``."""
    psnr = summary.pivot_table(index="model", columns=["set", "scale"], values="psnr_y")
    rows = []
    for steps, groups in rungs:
        for i, ail in enumerate(groups["ail"]):
            if ail not in psnr.index:
                continue
            gains = {"AIL − start": psnr.loc[ail] - psnr.loc[start]}
            if "plain" in groups and groups["plain"][i] in psnr.index:
                gains["AIL − plain"] = psnr.loc[ail] - psnr.loc[groups["plain"][i]]
            for gain, values in gains.items():
                for (set_name, scale), value in values.dropna().items():
                    rows.append((steps, i, set_name, scale, gain, value))
    return pd.DataFrame(rows, columns=["steps", "seed", "set", "scale", "gain", "dB"])


def authors_gain(summary: pd.DataFrame) -> pd.Series:
    """The authors' AIL − start per (set, scale), from their imported students (may be empty)."""
    psnr = summary.pivot_table(index="model", columns=["set", "scale"], values="psnr_y")
    if not {AUTHORS_AIL, AUTHORS_PLAIN} <= set(psnr.index):
        return pd.Series(dtype=float)
    return (psnr.loc[AUTHORS_AIL] - psnr.loc[AUTHORS_PLAIN]).dropna()


def ladder_table(
    summary: pd.DataFrame, cost: pd.DataFrame, catalog: pd.DataFrame, rungs: list, start: str
) -> pd.DataFrame:
    """One row per rung: its seeds, then per set and scale the mean AIL − start, the mean
    AIL − plain and the seed spread of AIL − plain; a last row with the authors' gain."""
    gains = ladder_gains(summary, rungs, start)
    table = gains.groupby(["steps", "set", "scale", "gain"])["dB"].mean().unstack(["set", "scale"])
    table = table[sorted(table.columns, key=column_key)]
    out: dict[str, dict[str, str]] = {}
    for steps, _groups in rungs:
        if steps not in table.index.get_level_values(0):
            continue
        seeds = gains[gains.steps == steps].seed.nunique()
        row: dict[str, str] = {}
        for (set_name, scale), by_gain in table.loc[steps].items():
            column = f"{set_name} ×{scale}"
            picked = gains[
                (gains.steps == steps) & (gains.set == set_name) & (gains.scale == scale)
            ]
            plain = picked[picked.gain == "AIL − plain"]["dB"]
            row[f"{column}: AIL − start"] = f"{by_gain.get('AIL − start', np.nan):+.2f}"
            if len(plain):
                spread = f" ({plain.max() - plain.min():.2f})" if len(plain) > 1 else ""
                row[f"{column}: AIL − plain (spread)"] = f"{plain.mean():+.2f}{spread}"
        out[f"{steps:,} steps/round, {seeds} seed{'s' if seeds > 1 else ''}"] = row
    theirs = authors_gain(summary)
    if len(theirs):
        out["authors' AIL − start (50 epochs/round)"] = {
            f"{s} ×{k}: AIL − start": f"{v:+.2f}" for (s, k), v in theirs.items()
        }
    return pd.DataFrame.from_dict(out, orient="index").fillna("")


def ladder_figure(summary: str, rungs: list, start: str, out: str) -> Path:
    """Both gains against steps per round (log axis), one panel per set and scale: seeds as
    dots, their mean as a line; the authors' AIL − start as a dashed line."""
    table = pd.read_csv(summary, sep="\t")
    gains = ladder_gains(table, rungs, start)
    theirs = authors_gain(table)
    grid = sns.relplot(
        data=gains,
        x="steps",
        y="dB",
        hue="gain",
        col="set",
        col_order=in_set_order(gains.set),  # Set5 before Set14
        row="scale",
        kind="line",
        marker="o",
        errorbar=None,
        height=2.6,
        aspect=1.2,
        facet_kws={"sharey": False, "legend_out": False},
    )
    for (scale, set_name), ax in grid.axes_dict.items():
        cell = gains[(gains.set == set_name) & (gains.scale == scale)]
        ax.scatter(cell.steps, cell.dB, color="grey", s=10, zorder=3, label="one seed")
        ax.axhline(0, color="black", linewidth=0.8)
        if (set_name, scale) in theirs.index:
            ax.axhline(
                theirs[(set_name, scale)],
                color="tab:red",
                linestyle="--",
                label="authors' AIL − start",
            )
        ax.set_xscale("log")
        steps = sorted(gains.steps.unique())
        ax.xaxis.set_major_locator(ticker.FixedLocator(steps))
        ax.xaxis.set_major_formatter(ticker.FixedFormatter([f"{s:,}" for s in steps]))
        ax.xaxis.set_minor_locator(ticker.NullLocator())
        ax.tick_params(labelsize=7)
    grid.set_axis_labels("steps per round", "gain (dB)", fontsize=8)
    grid.set_titles("{col_name} ×{row_name}", size=8)
    handles, labels = grid.axes.flat[0].get_legend_handles_labels()
    if grid.legend is not None:
        grid.legend.remove()
    grid.figure.legend(
        handles,
        labels,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=len(labels),
        fontsize=7,
        frameon=False,
    )
    grid.figure.suptitle("AIL's gains as the rounds get longer", y=1.04, size=9)
    return save(grid.figure, out)
