"""Data reliability: a folder set's images are real inputs of `prepare`, prepared sets carry a
content manifest and fingerprint, outputs honour the umask, and folder paths with stray
braces are refused with the path named."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO

from litesr.data.images import read_image, write_png
from litesr.data.sources import data_fingerprint, folder_path, hr_images, prepare_set


def _images(folder: Path, n: int = 2, seed: int = 0, size: tuple[int, int] = (20, 18)) -> Path:
    rng = np.random.default_rng(seed)
    for i in range(n):
        write_png(folder / f"im{i}.png", rng.integers(0, 256, (*size, 3), dtype=np.uint8))
    return folder


# ---------------------------------------------------------------- folder paths and braces


@pytest.mark.parametrize(
    "where",
    ["data/{Scale}/HR", "data/{0}/HR", "data/{}/HR", "data/{scale/HR", "data/x}/HR", "d/{a.b}"],
)
def test_stray_braces_in_a_folder_path_are_named(where):
    with pytest.raises(ValueError, match=re.escape(f"data folder {where!r}")) as err:
        folder_path(where, 2)
    assert "only {scale} is replaced" in str(err.value)
    with pytest.raises(ValueError, match=re.escape(repr(where))):
        hr_images("folder", where, 2, Path("resources"))


def test_scale_and_literal_braces_in_a_folder_path():
    assert folder_path("b/x{scale}/HR", 3) == Path("b/x3/HR")
    assert folder_path("b/{{odd}}/x{scale}", 4) == Path("b/{odd}/x4")


# ------------------------------------------------------------- manifest and fingerprint


def test_manifest_and_fingerprint_follow_the_pixels(tmp_path):
    src = _images(tmp_path / "a")
    out = prepare_set(sorted(src.iterdir()), 2, tmp_path / "p1", progress=False)
    manifest = pd.read_csv(out / "manifest.tsv", sep="\t")
    assert list(manifest.columns[:2]) == ["name", "source"]
    assert {"hr_sha256", "lr_sha256"} <= set(manifest.columns)
    import hashlib

    assert manifest.hr_sha256[0] == hashlib.sha256((out / "HR/im0.png").read_bytes()).hexdigest()
    fp = data_fingerprint(out)
    assert re.fullmatch(r"[0-9a-f]{64}", fp)

    # the same images from another folder: the same data
    shutil.copytree(src, tmp_path / "b")
    again = prepare_set(sorted((tmp_path / "b").iterdir()), 2, tmp_path / "p2", progress=False)
    assert data_fingerprint(again) == fp

    # one pixel changed in one source image: other data
    img = read_image(tmp_path / "b" / "im1.png").copy()
    img[3, 4, 0] ^= 1
    write_png(tmp_path / "b" / "im1.png", img)
    changed = prepare_set(sorted((tmp_path / "b").iterdir()), 2, tmp_path / "p3", progress=False)
    assert data_fingerprint(changed) != fp

    # a prepared image edited after `prepare` is caught, not fingerprinted as if intact
    write_png(out / "LR" / "im0.png", read_image(changed / "LR" / "im1.png"))
    with pytest.raises(ValueError, match=r"LR/im0\.png changed after it was prepared"):
        data_fingerprint(out)
    assert data_fingerprint(out, verify=False) == fp
    (out / "manifest.tsv").unlink()
    with pytest.raises(FileNotFoundError, match="manifest.tsv not found"):
        data_fingerprint(out)


# ------------------------------------------------------------------------ permissions


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_outputs_honour_the_umask(tmp_path, umask_022):
    from litesr.models import build
    from litesr.models.store import save_model
    from litesr.report.figures import save
    from litesr.tsv import write_tsv

    src = _images(tmp_path / "src")
    out = prepare_set(sorted(src.iterdir()), 2, tmp_path / "prepared", progress=False)
    assert _mode(out) == 0o755
    for sub in ("HR", "LR"):
        assert _mode(out / sub) == 0o755
        assert {_mode(p) for p in (out / sub).iterdir()} == {0o644}
    assert _mode(out / "manifest.tsv") == 0o644

    args = {"scale": 2, "n_resblocks": 1, "n_feats": 4}
    save_model(build("edsr", **args), tmp_path / "m.safetensors", arch="edsr", args=args)
    assert _mode(tmp_path / "m.safetensors") == 0o644
    assert _mode(write_tsv(pd.DataFrame({"a": [1.0]}), tmp_path / "t.tsv")) == 0o644

    import matplotlib.pyplot as plt

    assert _mode(save(plt.figure(figsize=(1, 1)), tmp_path / "f.png")) == 0o644
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_extracted_download_honours_the_umask(tmp_path, umask_022):
    import zipfile

    from litesr.data.download import extract

    with zipfile.ZipFile(tmp_path / "a.zip", "w") as zf:
        zf.writestr("set/HR/x.png", b"not really a png")
    dest = extract(tmp_path / "a.zip", tmp_path / "set", subdir="set")
    assert _mode(dest) == 0o755 and _mode(dest / "HR") == 0o755
    assert _mode(dest / "HR" / "x.png") == 0o644


# --------------------------------------------------------------- the workflow's inputs


def _snakemake(wd: Path, target: str, *args: str) -> subprocess.CompletedProcess:
    """Make ``target`` (``args``: e.g. ``-n``) with the small config of :func:`_workdir`, in
    ``wd`` with the checkout's own workflow (nothing is written to the checkout)."""
    env = os.environ | {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        [
            *(sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(wd)),
            *(target, *args, "--configfile", "small.yaml"),
        ],
        cwd=wd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=180,
        check=False,
    )


def _workdir(tmp_path: Path, test_folder: str) -> Path:
    wd = tmp_path / "wd"
    wd.mkdir()
    config = {
        "seed": 0,
        "scales": [2],
        "data": {"source": "folder", "train": {"tr": "imgs/train"}, "test": {"te": test_folder}},
        "models": {
            "m": {
                "arch": "edsr",
                "args": {"n_resblocks": 1, "n_feats": 4},
                "train": {"steps": 2, "batch_size": 2, "lr_patch": 8, "lr": 1e-3},
            }
        },
    }
    (wd / "small.yaml").write_text(yaml.safe_dump(config))
    _images(wd / "imgs" / "train", n=2, seed=1, size=(40, 40))
    _images(wd / "imgs" / "x2", n=2, seed=2, size=(40, 40))
    return wd


def test_a_replaced_or_added_image_makes_prepare_run_again(tmp_path):
    """Dry runs only: the set is prepared in-process (older than nothing), then its folder is
    changed; Snakemake must want `prepare` again, naming the changed input."""
    wd = _workdir(tmp_path, "imgs/x{scale}")
    folder = wd / "imgs" / "x2"
    past = time.time() - 3600
    for image in folder.iterdir():
        os.utime(image, (past, past))
    out = prepare_set(sorted(folder.iterdir()), 2, wd / "results/data/te/x2", progress=False)
    for path in [out, *out.rglob("*")]:  # clearly older than the edits below (coarse clocks)
        os.utime(path, (past + 60, past + 60))
    target = "results/data/te/x2"

    # replace one image (as `cp new.png im1.png` would) and add another
    write_png(folder / "im1.png", np.zeros((40, 40, 3), np.uint8))
    _images(wd / "imgs" / "new", n=1, seed=3)
    shutil.move(wd / "imgs" / "new" / "im0.png", folder / "im9.png")
    dry = _snakemake(wd, target, "-n")
    assert dry.returncode == 0 and "rule prepare" in dry.stdout, dry.stdout[-2000:]
    reason = re.search(r"reason: Updated input files: (.*)", dry.stdout).group(1)
    assert sorted(reason.split(", ")) == ["imgs/x2/im1.png", "imgs/x2/im9.png"]

    # a broken symbolic link is a missing input, named
    (folder / "im5.png").symlink_to(wd / "imgs" / "gone.png")
    dry = _snakemake(wd, target, "-n")
    assert dry.returncode != 0 and "imgs/x2/im5.png" in dry.stdout, dry.stdout[-2000:]


def test_stray_braces_in_a_config_folder_are_named_by_the_workflow(tmp_path):
    wd = _workdir(tmp_path, "imgs/x{Scale}")
    dry = _snakemake(wd, "results/data/te/x2", "-n")
    assert dry.returncode != 0
    assert "data folder 'imgs/x{Scale}' has brace field(s) {Scale}" in dry.stdout, dry.stdout
