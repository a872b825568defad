"""Report pieces: paper-style tables, figures, provenance, the PDF and the audit notebook."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import REPO
from PIL import Image

from litesr.claims import resolve
from litesr.data.images import write_png
from litesr.data.sets import column_key, in_set_order
from litesr.evaluate.run import summarize
from litesr.report.draw import make_figure
from litesr.report.figures import PAGE_WIDTH_IN, compact, log_axis
from litesr.report.pdf import build_report
from litesr.report.provenance import config_hash, provenance
from litesr.report.scorecard import write_scorecard
from litesr.report.tables import psnr_ssim_table, sets_in_order
from litesr.tsv import write_tsv


@pytest.fixture
def results(tmp_path):
    """Per-image TSVs, their summary, a cost table and training logs, as the workflow writes."""
    rng = np.random.default_rng(0)
    paths = []
    for model in ("bicubic", "teacher", "student"):
        rows = pd.DataFrame(
            {
                "model": model,
                "set": "S",
                "scale": 4,
                "image": list("abc"),
                "psnr_y": rng.uniform(25, 30, 3),
                "ssim_y": rng.uniform(0.7, 0.9, 3),
                "psnr_rgb": rng.uniform(24, 29, 3),
            }
        )
        paths.append(write_tsv(rows, tmp_path / f"{model}.tsv"))
    summary = write_tsv(
        summarize(pd.concat(pd.read_csv(p, sep="\t") for p in paths)), tmp_path / "summary.tsv"
    )
    cost = write_tsv(
        pd.DataFrame(
            {
                "model": ["teacher", "student"],
                "scale": [4, 4],
                "params": [1e5, 1e4],
                "macs_720p_G": [10.0, 1.0],
                "cpu_latency_ms": [100.0, 10.0],
                "cpu_inference_MiB": [300.0, 50.0],
            }
        ),
        tmp_path / "cost.tsv",
    )
    catalog = write_tsv(
        pd.DataFrame(
            {
                "model": ["teacher", "student"],
                "scale": [4, 4],
                "arch": ["edsr", "rlfn"],
                "method": "",
                "variant": "",
                "size": None,
            }
        ),
        tmp_path / "models.tsv",
    )
    logs = []
    for model in ("teacher", "student"):
        steps = np.arange(1, 101)
        logs.append(
            write_tsv(
                pd.DataFrame({"step": steps, "loss": 1 / steps, "lr": 1e-3}),
                tmp_path / f"{model}_log.tsv",
            )
        )
    claims = resolve(
        {
            "paper": "Toy paper",
            "claims": [
                {
                    "id": "gain",
                    "claim": "the teacher beats the student",
                    "metric": "psnr_y",
                    "set": "S",
                    "scale": 4,
                    "paper": 0.5,
                    "ours": ["big", "small"],
                },
                {
                    "id": "time",
                    "claim": "the student is faster",
                    "metric": "cpu_latency_ms",
                    "scale": 4,
                    "expect": -1,
                    "ours": ["small", "big"],
                    "why": "reproduced: this reason is never printed",
                },
                {
                    "id": "slower",
                    "claim": "the teacher is faster",
                    "metric": "cpu_latency_ms",
                    "scale": 4,
                    "expect": -1,
                    "ours": ["big", "small"],
                    "why": "a toy budget",
                    "deviations": ["toy-teacher"],
                },
            ],
        },  # fmt: skip
        {"big": ["teacher"], "small": ["student"]},
        ["teacher", "student"],
        ["S"],
    )
    scorecard = tmp_path / "scorecard.tsv"
    write_scorecard(claims=claims, summary=summary, cost=cost, out=scorecard, config="toy.yaml")
    return {
        "per_image": paths,
        "claims": claims,
        "scorecard": scorecard,
        "summary": summary,
        "cost": cost,
        "catalog": catalog,
        "logs": logs,
        "dir": tmp_path,
    }


def test_table_has_paper_cells():
    summary = pd.DataFrame(
        {
            "model": ["bicubic", "bicubic"],
            "set": ["Set5", "Set5"],
            "scale": [2, 4],
            "psnr_y": [33.664, 28.4213],
            "ssim_y": [0.92991, 0.81041],
            "psnr_rgb": [0, 0],
        }
    )
    table = psnr_ssim_table(summary)
    assert table.loc["bicubic", ("Set5", "×4")] == "28.42 / 0.8104"
    assert table.loc["bicubic", ("Set5", "×2")] == "33.66 / 0.9299"


def test_sets_read_in_the_field_order_then_by_name_with_numbers():
    names = ["Set14", "Urban100", "Set5", "B100", "291", "img10", "img9"]
    assert in_set_order(names) == ["Set5", "Set14", "B100", "Urban100", "291", "img9", "img10"]
    labels = ["Set14 ×4", "Set5 ×4", "Set5 ×2", "Urban100 ×2"]  # the method tables' columns
    assert sorted(labels, key=column_key) == ["Set5 ×2", "Set5 ×4", "Set14 ×4", "Urban100 ×2"]
    assert sorted([("Set14", 2), ("Set5", 4)], key=column_key) == [("Set5", 4), ("Set14", 2)]
    table = pd.DataFrame(columns=["params", "Set14 ×4", "Set5 ×4", "MACs", "Set5 ×2"])
    assert list(sets_in_order(table).columns) == [
        "params",
        "Set5 ×2",
        "Set5 ×4",
        "MACs",
        "Set14 ×4",
    ]


def test_table_columns_follow_the_set_order_then_the_scale():
    summary = pd.DataFrame(
        {
            "model": "m",
            "set": ["Set14", "Set14", "Set5", "Set5", "B100"],
            "scale": [4, 2, 4, 2, 2],
            "psnr_y": 30.0,
            "ssim_y": 0.9,
        }
    )
    columns = list(psnr_ssim_table(summary).columns)
    assert columns == [
        ("Set5", "×2"),
        ("Set5", "×4"),
        ("Set14", "×2"),
        ("Set14", "×4"),
        ("B100", "×2"),
    ]


def toy_table(summary, cost, catalog, n):
    """A method's table, as the report calls one."""
    return pd.DataFrame({"row": [f"row {i}" for i in range(n)], "models": len(catalog)})


def test_figures_and_pdf(results):
    d = results["dir"]
    figs = [
        (
            "cost",
            make_figure(
                "psnr_vs_cost",
                d / "cost.png",
                {"summary": str(results["summary"]), "cost": str(results["cost"])},
            ),
        ),
        (
            "curves",
            make_figure(
                "training_curves",
                d / "curves.png",
                {"logs": [str(p) for p in results["logs"]], "labels": ["teacher", "student"]},
            ),
        ),
    ]
    assert all(p.stat().st_size > 10_000 for _, p in figs)
    for _, png in figs:  # drawn for the page: the PDF shows them at their own size
        with Image.open(png) as image:
            assert image.width / image.info["dpi"][0] <= PAGE_WIDTH_IN, png.name
    config = {"scales": [4], "seed": 0}
    pdf = build_report(
        d / "all.pdf",
        {
            "config": config,
            "summary": str(results["summary"]),
            "cost": str(results["cost"]),
            "catalog": str(results["catalog"]),
            "scorecard": str(results["scorecard"]),
            "figures": [[t, str(p), f"what {t} shows"] for t, p in figs],
            "tables": [["A method's table", "toy.rows", {"n": 2}, "toy rows"]],
        },
        method_table={"toy.rows": toy_table}.__getitem__,
    )
    assert pdf.read_bytes().startswith(b"%PDF-")
    from pypdf import PdfReader

    text = "\n".join(page.extract_text() for page in PdfReader(pdf).pages)
    assert config_hash(config) in text and "git commit" in text and "torch" in text
    assert "How this was made" in text and "MATLAB" in text
    first = PdfReader(pdf).pages[0].extract_text()
    assert "Scorecard" in first and "Toy paper" in first and "the student is faster" in first
    assert "toy.yaml" in first and "−90.00 %" in first
    flat = " ".join(first.split())
    assert "why: a toy budget (deviation toy-teacher)" in flat, "the reason of an unsettled claim"
    assert "never printed" not in flat, "no reason under a reproduced claim"
    for words in ("Accuracy", "teacher", "student", "S ×4", "CPU ms", "what curves shows"):
        assert words in text, words
    for words in ("A method's table", "toy rows", "row 1"):
        assert words in text, words
    assert not list(d.glob(".*tmp*")), "no temporary file is left behind"


def test_every_method_gets_its_deviations_after_the_scorecard(results, tmp_path):
    """An audited method's rows (grouped by class) follow the scorecard; a method without a
    deviations file reads "not yet audited"."""
    from pypdf import PdfReader

    from litesr.methods.deviations import load_deviations

    doc = {
        "source": {"repository": "someone/toy", "commit": "ab" * 20, "folder": "src"},
        "deviations": [
            {"id": "patch-size", "what": "training patch", "authors": "train.py:main 192",
             "ours": "96 on CPU", "class": "budget", "effect": "measured -0.1 dB"},
            {"id": "off-by-one", "what": "the border crop", "authors": "eval.py:crop s+1",
             "ours": "s pixels", "class": "bug fixed", "effect": "+0.02 dB"},
        ],
    }  # fmt: skip
    (tmp_path / "toy.yaml").write_text(json.dumps(doc))
    audited = load_deviations(tmp_path / "toy.yaml")
    config = {"scales": [4], "seed": 0, "methods": {"toy": {}, "fresh": {}}}
    pdf = build_report(
        tmp_path / "all.pdf",
        {k: str(results[k]) for k in ("summary", "cost", "catalog", "scorecard")}
        | {"config": config},
        deviations={"toy": audited, "fresh": None}.__getitem__,
    )
    pages = [page.extract_text() for page in PdfReader(pdf).pages]
    where = next(i for i, t in enumerate(pages) if "Deviations from the authors" in t)
    text = " ".join(" ".join(pages[where:]).split())
    assert "Scorecard" in pages[0] and where >= 1
    assert "someone/toy @ abababab" in text and "1 bug fixed, 0 simplification, 1 budget" in text
    assert text.index("the border crop") < text.index("training patch"), "grouped by class"
    assert "fresh" in text and "not yet audited" in text


def test_a_method_figure_is_drawn_through_the_lookup_the_caller_gives(tmp_path):
    drawn = {}

    def bar(*, out, colour):
        drawn[colour] = out
        return out

    assert make_figure("toy.bar", tmp_path / "b.png", {"colour": "red"}, {"toy.bar": bar}.get)
    assert drawn == {"red": tmp_path / "b.png"}
    with pytest.raises(ValueError, match="toy.bar.*no method lookup"):
        make_figure("toy.bar", tmp_path / "b.png", {"colour": "red"})
    with pytest.raises(ValueError, match="unknown figure 'bars'"):
        make_figure("bars", tmp_path / "b.png", {})


def test_the_report_imports_no_method():
    """The command resolves methods' figures and tables and passes them in."""
    from test_methods import imported

    for path in (REPO / "src" / "litesr" / "report").glob("*.py"):
        assert not {m for m in imported(path) if m.startswith("litesr.methods")}, path.name


@pytest.mark.parametrize(("low", "high"), [(21.0, 39.0), (0.05, 9.0), (900.0, 2.1e6)])
def test_log_axis_labels_do_not_overlap(low, high):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3.4, 2.6))
    ax.scatter([low, high], [0, 1])
    ax.set_xscale("log")
    log_axis(ax.xaxis)
    fig.canvas.draw()
    shown = [t for t in ax.get_xticklabels() if t.get_text() and low <= t.get_position()[0] <= high]
    boxes = sorted((t.get_window_extent() for t in shown), key=lambda box: box.x0)
    plt.close(fig)
    assert len(shown) >= 2
    assert all(a.x1 < b.x0 for a, b in zip(boxes, boxes[1:], strict=False))


def test_compact_tick_labels():
    assert [compact(v) for v in (0.05, 20, 500, 2000, 1.5e6)] == ["0.05", "20", "500", "2k", "1.5M"]


def test_crops_of_many_models_fit_the_page(tmp_path):
    img = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    write_png(tmp_path / "HR" / "a.png", img)
    write_png(tmp_path / "LR" / "a.png", img[::4, ::4])
    inputs = {"data": str(tmp_path), "image": "a", "box": [0, 0, 16, 16], "scale": 4}
    png = make_figure(
        "crops", tmp_path / "c.png", {**inputs, "models": {f"m{i}": "bicubic" for i in range(9)}}
    )
    with Image.open(png) as image:
        assert image.width / image.info["dpi"][0] <= PAGE_WIDTH_IN


def test_crops_figure_rejects_a_box_outside_the_image(tmp_path):
    img = np.zeros((16, 16, 3), np.uint8)
    write_png(tmp_path / "HR" / "a.png", img)
    write_png(tmp_path / "LR" / "a.png", img[::4, ::4])
    with pytest.raises(ValueError, match="outside"):
        make_figure(
            "crops",
            tmp_path / "c.png",
            {
                "models": {"bicubic": "bicubic"},
                "data": str(tmp_path),
                "image": "a",
                "box": [8, 8, 16, 16],
                "scale": 4,
            },
        )


def test_provenance_names_commit_config_and_packages():
    info = provenance({"a": 1})
    assert info["config sha256"] == config_hash({"a": 1}) != config_hash({"a": 2})
    assert {"torch", "numpy", "litesr"} <= set(info["packages"])


def run_audit(results, summary_path, out, scorecard=None):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "papermill",
            "--kernel",
            "python3",
            str(REPO / "notebooks" / "audit.ipynb"),
            str(out),
            "-p",
            "per_image_json",
            json.dumps([str(p) for p in results["per_image"]]),
            "-p",
            "summary_tsv",
            str(summary_path),
            "-p",
            "cost_tsv",
            str(results["cost"]),
            "-p",
            "scorecard_tsv",
            str(scorecard or results["scorecard"]),
            "-p",
            "claims_json",
            json.dumps(results["claims"]),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def test_audit_notebook_passes_on_true_table_and_fails_on_a_tampered_one(results, tmp_path):
    ok = run_audit(results, results["summary"], tmp_path / "ok.ipynb")
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "AUDIT PASSED" in (tmp_path / "ok.ipynb").read_text()
    tampered = pd.read_csv(results["summary"], sep="\t")
    tampered.loc[1, "psnr_y"] += 0.01
    bad = write_tsv(tampered, tmp_path / "tampered.tsv")
    failed = run_audit(results, bad, tmp_path / "bad.ipynb")
    assert failed.returncode != 0 and "psnr_y" in failed.stderr + failed.stdout


def test_the_audit_recomputes_the_scorecard_and_fails_on_an_edited_row(results, tmp_path):
    tampered = pd.read_csv(results["scorecard"], sep="\t")
    tampered.loc[0, "verdict"] = "not reproduced"
    assert (pd.read_csv(results["scorecard"], sep="\t").verdict != tampered.verdict).any()
    bad = write_tsv(tampered, tmp_path / "scorecard.tsv")
    failed = run_audit(results, results["summary"], tmp_path / "bad.ipynb", scorecard=bad)
    assert failed.returncode != 0 and "verdict" in failed.stderr + failed.stdout


def test_collapsed_models_are_marked_and_the_best_is_bold():
    from litesr.report.tables import accuracy_for_print, collapsed

    summary = pd.DataFrame(
        {
            "model": ["bicubic", "good", "flat", "bicubic", "good", "flat"],
            "set": ["A", "A", "A", "B", "B", "B"],
            "scale": 4,
            "psnr_y": [28.40, 29.10, 28.44, 26.00, 26.90, 26.03],
            "ssim_y": 0.8,
            "psnr_rgb": 0.0,
        }
    )
    assert collapsed(summary) == ["flat"]
    assert collapsed(summary.assign(psnr_y=summary.psnr_y.where(summary.model != "flat", 30))) == []
    table = accuracy_for_print(summary)
    rows = {row[0]: i for i, row in enumerate(table["rows"])}
    assert "flat (collapsed)" in rows and "good" in rows
    assert table["best"][rows["good"]][1:] == [True, True]
    assert not any(table["best"][rows["bicubic"]]) and not any(
        table["best"][rows["flat (collapsed)"]]
    )
