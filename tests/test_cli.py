"""The `litesr` command: user errors are one clear line naming the file, outputs stay whole."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from litesr.cli import main
from litesr.data.images import write_png
from litesr.data.sources import embedded_images, prepare_set


def litesr(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "litesr", "--quiet", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def prepare_folder(folder: Path, scale: int, out: Path) -> list[str]:
    """Arguments of `litesr prepare` for a folder of HR images."""
    return [
        "prepare",
        "--source",
        "folder",
        "--where",
        json.dumps(str(folder)),
        "--scale",
        str(scale),
        "--out",
        str(out),
    ]


@pytest.fixture
def folder(tmp_path) -> Path:
    rng = np.random.default_rng(1)
    for i in range(2):
        write_png(tmp_path / "hr" / f"ok{i}.png", rng.integers(0, 256, (30, 26, 3), np.uint8))
    return tmp_path / "hr"


def test_prepare_folder_writes_modcropped_hr_and_lr(folder, tmp_path):
    out = tmp_path / "prepared"
    assert main(["-q", *prepare_folder(folder, 4, out)]) == 0
    from litesr.data.images import read_image

    hr, lr = read_image(out / "HR" / "ok0.png"), read_image(out / "LR" / "ok0.png")
    assert hr.shape == (28, 24, 3) and lr.shape == (7, 6, 3)
    assert (out / "manifest.tsv").read_text().startswith("name\tsource")


def test_corrupt_image_is_named_and_no_half_output_is_left(folder, tmp_path):
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    out = tmp_path / "prepared"
    result = litesr(*prepare_folder(folder, 2, out))
    assert result.returncode == 1
    assert "broken.png" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists() and not list(tmp_path.glob(".prepared*"))


def test_missing_folder_and_unknown_embedded_name_are_clear(tmp_path):
    result = litesr(
        "prepare",
        "--source",
        "folder",
        "--where",
        json.dumps(str(tmp_path / "no")),
        "--scale",
        "2",
        "--out",
        str(tmp_path / "o"),
    )
    assert result.returncode == 1 and str(tmp_path / "no") in result.stderr
    result = litesr(
        "prepare",
        "--source",
        "embedded",
        "--where",
        '["astronot"]',
        "--scale",
        "2",
        "--out",
        str(tmp_path / "o"),
    )
    assert result.returncode == 1 and "astronot" in result.stderr and "astronaut" in result.stderr


def test_bad_json_argument_is_a_usage_error(tmp_path):
    result = litesr(
        "prepare",
        "--source",
        "folder",
        "--where",
        "{nope",
        "--scale",
        "2",
        "--out",
        str(tmp_path / "o"),
    )
    assert result.returncode == 2 and "not valid JSON" in result.stderr


def train_spec(tmp_path, **change) -> str:
    spec = {
        "arch": "edsr",
        "args": {},
        "recipe": {"steps": 1},
        "data": str(tmp_path),
        "scale": 2,
        "out": str(tmp_path / "m.safetensors"),
        "log": str(tmp_path / "l.tsv"),
    }
    return json.dumps({**spec, **change})


def test_unknown_architecture_in_train(tmp_path):
    result = litesr("train", "--spec", train_spec(tmp_path, arch="srcnn9000"))
    assert result.returncode == 1 and "srcnn9000" in result.stderr


def test_a_wrong_spec_key_is_named_not_a_traceback(tmp_path):
    result = litesr("train", "--spec", train_spec(tmp_path, epochs=3))
    assert result.returncode == 1 and "epochs" in result.stderr
    assert "Traceback" not in result.stderr
    result = litesr("run", "ail", "rounds", "--spec", '{"variant": "ail"}')
    assert (
        result.returncode == 1 and "missing" in result.stderr and "Traceback" not in result.stderr
    )
    result = litesr("run", "nosuchmethod", "x", "--spec", "{}")
    assert result.returncode == 1 and "nosuchmethod" in result.stderr and "ail" in result.stderr


def test_a_bug_keeps_its_traceback(tmp_path, monkeypatch):
    from litesr import cli

    def buggy(_args):
        raise KeyError("internal")

    monkeypatch.setattr(cli, "cmd_summarize", buggy)
    with pytest.raises(KeyError):
        cli.main(["summarize", "--out", str(tmp_path / "x.tsv"), str(tmp_path / "y.tsv")])


def test_embedded_default_sets_ship_with_scikit_image_and_are_disjoint():
    import yaml
    from conftest import REPO

    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    train = next(iter(cfg["data"]["train"].values()))
    test = [n for names in cfg["data"]["test"].values() for n in names]
    assert not set(train) & set(test)
    assert all(p.is_file() for p in embedded_images(train + test))


def test_images_smaller_than_the_scale_are_refused(tmp_path):
    write_png(tmp_path / "tiny.png", np.zeros((3, 3, 3), np.uint8))
    with pytest.raises(ValueError, match="tiny.png"):
        prepare_set([tmp_path / "tiny.png"], 4, tmp_path / "out", progress=False)


def test_with_a_log_file_the_error_line_reaches_the_console_too(tmp_path):
    log = tmp_path / "job.log"
    result = litesr(
        "--log-file", str(log), "train", "--spec", train_spec(tmp_path, arch="srcnn9000")
    )
    assert result.returncode == 1
    assert "srcnn9000" in result.stderr and "srcnn9000" in log.read_text()
