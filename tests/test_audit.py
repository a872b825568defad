"""The audit notebook on a tiny real evaluation: it recomputes every per-image number from the
saved SR images, so an edited per-image value fails it even when the summary is made to
agree, and an untouched evaluation passes."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import REPO

from litesr.data.images import read_image, write_png
from litesr.data.sources import prepare_set
from litesr.evaluate.run import evaluate_set, summarize
from litesr.models import build
from litesr.models.store import save_model
from litesr.tsv import write_tsv

SCALE = 2
SR = "sr/{model}/x{scale}/{set}"
HR = "data/{set}/x{scale}/HR"


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory) -> Path:
    """Two models evaluated on a prepared set of three images, laid out as the workflow does."""
    root = tmp_path_factory.mktemp("audit")
    rng = np.random.default_rng(0)
    sources = []
    for i, (h, w) in enumerate([(40, 36), (34, 42), (38, 38)]):
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        img = (img // 2 + np.linspace(0, 120, w, dtype=np.uint8)[None, :, None]).astype(np.uint8)
        sources.append(root / "src" / f"im{i}.png")
        write_png(sources[-1], img)
    data = prepare_set(sources, SCALE, root / "data" / "S" / f"x{SCALE}", progress=False)
    torch.manual_seed(0)
    args = {"scale": SCALE, "n_resblocks": 1, "n_feats": 4}
    save_model(build("edsr", **args), root / "m.safetensors", arch="edsr", args=args)
    tables = []
    for name, ref in (("bicubic", "bicubic"), ("tiny", str(root / "m.safetensors"))):
        where = {"model": name, "scale": SCALE, "set": "S"}
        evaluate_set(
            ref,
            data,
            SCALE,
            root / "eval" / name / f"x{SCALE}" / "S.tsv",
            model_name=name,
            set_name="S",
            save_dir=root / SR.format(**where),
            progress=False,
        )
        tables.append(root / "eval" / name / f"x{SCALE}" / "S.tsv")
    write_tsv(summarize(pd.concat(pd.read_csv(t, sep="\t") for t in tables)), root / "summary.tsv")
    return root


def parameters(root: Path) -> dict:
    return {
        "per_image_json": json.dumps(sorted(str(p) for p in (root / "eval").rglob("*.tsv"))),
        "summary_tsv": str(root / "summary.tsv"),
        "sr_dir_pattern": str(root / SR),
        "hr_dir_pattern": str(root / HR),
        "model_files_json": json.dumps([str(root / "m.safetensors")]),
    }


def papermill(root: Path, out: Path, workers: int = 1) -> subprocess.CompletedProcess:
    """The audit as the workflow runs it: papermill, the parameters injected."""
    params = [x for k, v in parameters(root).items() for x in ("-p", k, v)]
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "papermill",
            "--kernel",
            "python3",
            str(REPO / "notebooks" / "audit.ipynb"),
            str(out),
            *params,
            "-p",
            "workers",
            str(workers),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def run_cells(root: Path) -> dict:
    """The notebook's code cells executed in this process with the parameters replaced, as
    papermill would (a kernel start per case would make these tests slow)."""
    notebook = json.loads((REPO / "notebooks" / "audit.ipynb").read_text())
    namespace: dict = {}
    for cell in notebook["cells"]:
        if cell["cell_type"] != "code":
            continue
        if "parameters" in cell["metadata"].get("tags", []):
            exec(compile("".join(cell["source"]), "audit.ipynb", "exec"), namespace)
            namespace.update(parameters(root), workers=1)  # papermill's injected values
            continue
        exec(compile("".join(cell["source"]), "audit.ipynb", "exec"), namespace)
    return namespace


def edited_copy(evaluation: Path, dest: Path, edit) -> Path:
    """A copy of the evaluation with ``edit`` applied to the tiny model's per-image table and
    the summary recomputed from the edited table, so that only the images can tell."""
    shutil.copytree(evaluation, dest)
    path = dest / "eval" / "tiny" / f"x{SCALE}" / "S.tsv"
    table = pd.read_csv(path, sep="\t")
    table = edit(table)
    write_tsv(table, path)
    tables = sorted((dest / "eval").rglob("*.tsv"))
    write_tsv(summarize(pd.concat(pd.read_csv(t, sep="\t") for t in tables)), dest / "summary.tsv")
    return dest


def test_untouched_evaluation_passes(evaluation, tmp_path):
    result = papermill(evaluation, tmp_path / "ok.ipynb", workers=2)
    assert result.returncode == 0, result.stderr[-3000:]
    text = (tmp_path / "ok.ipynb").read_text()
    assert "AUDIT PASSED" in text and "recomputed from 6 SR images" in text


def test_one_edited_digit_fails_under_papermill(evaluation, tmp_path):
    """The last printed digit of one image's PSNR, with the summary made to agree."""
    edited = edited_copy(evaluation, tmp_path / "digit", _bump("psnr_y", 1e-6))
    result = papermill(edited, tmp_path / "digit.ipynb")
    assert result.returncode != 0
    assert "tiny x2 S im1: psnr_y" in result.stdout + result.stderr


def _bump(column: str, delta: float, row: int = 1):
    def edit(table: pd.DataFrame) -> pd.DataFrame:
        table.loc[row, column] += delta
        return table

    return edit


def test_untouched_evaluation_passes_in_process(evaluation):
    assert len(run_cells(evaluation)["jobs"]) == 6


@pytest.mark.parametrize(
    ("label", "edit", "needle"),
    [
        ("psnr_y", _bump("psnr_y", 0.05, row=0), "tiny x2 S im0: psnr_y"),
        ("ssim_y", _bump("ssim_y", -0.002), "tiny x2 S im1: ssim_y"),
        ("ssim_y_digit", _bump("ssim_y", 1e-6, row=2), "tiny x2 S im2: ssim_y"),
        ("psnr_rgb", _bump("psnr_rgb", 0.1), "tiny x2 S im1: psnr_rgb"),
        # an image (say, a bad one) dropped from the table
        ("dropped", lambda t: t.drop(index=0).reset_index(drop=True), "without a row: ['im0']"),
    ],
)
def test_an_edited_per_image_table_fails(evaluation, tmp_path, label, edit, needle):
    edited = edited_copy(evaluation, tmp_path / label, edit)
    with pytest.raises(AssertionError, match=re.escape(needle)):
        run_cells(edited)


def test_an_edited_sr_image_fails(evaluation, tmp_path):
    dest = tmp_path / "png"
    shutil.copytree(evaluation, dest)
    sr = dest / SR.format(model="bicubic", scale=SCALE, set="S") / "im2.png"
    img = read_image(sr).copy()
    img[10, 10] = 255 - img[10, 10]
    write_png(sr, img)
    with pytest.raises(AssertionError, match="bicubic x2 S im2"):
        run_cells(dest)


def test_an_edited_summary_fails(evaluation, tmp_path):
    dest = tmp_path / "summary"
    shutil.copytree(evaluation, dest)
    summary = pd.read_csv(dest / "summary.tsv", sep="\t")
    summary.loc[0, "ssim_y"] += 1e-5
    write_tsv(summary, dest / "summary.tsv")
    with pytest.raises(AssertionError, match="ssim_y"):
        run_cells(dest)


def test_a_model_file_with_one_flipped_byte_fails(evaluation, tmp_path):
    """The byte's file keeps its modification time: only the digests it carries can tell."""
    dest = tmp_path / "flip"
    shutil.copytree(evaluation, dest)
    model = dest / "m.safetensors"
    stat = model.stat()
    data = bytearray(model.read_bytes())
    data[-3] ^= 0x01
    model.write_bytes(bytes(data))
    os.utime(model, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with pytest.raises(ValueError, match=re.escape(str(model))):
        run_cells(dest)
