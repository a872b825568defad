"""Reliability of `litesr upscale` and `litesr export`: no output overwrites an input, no
non-finite output becomes a black PNG, a huge image is tiled in the memory available, stale
temporaries of a killed run are cleaned, the ONNX opset asked for is the one written, and
multi-frame images are refused; each refusal is one line naming the file."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import litesr.tools.upscale as upscale_module
from litesr.atomic import atomic_path, remove_stale_temporaries
from litesr.cli import main
from litesr.data.images import ImageError, read_image, write_png
from litesr.data.sources import prepare_set
from litesr.evaluate.run import super_resolve
from litesr.models import build
from litesr.models.store import load_model, save_model
from litesr.tools.tiles import plan_tiles
from litesr.tools.upscale import super_resolve_tiled

EDSR = {"scale": 2, "n_resblocks": 1, "n_feats": 16}
RLFN = {"scale": 2, "feature_channels": 16, "mid_channels": 16, "n_blocks": 1}


@pytest.fixture(autouse=True)
def _no_progress_bars_nor_user_cache(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))  # not ~/.cache


def _save(
    folder: Path, name: str, arch: str, args: dict, nan: bool = False, gain: float = 1.0
) -> str:
    """A small model; ``nan`` puts a NaN in its first weight, ``gain`` scales every weight."""
    torch.manual_seed(0)
    model = build(arch, **args)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p)).mul_(gain)
        if nan:
            next(model.parameters()).view(-1)[0] = float("nan")
    path = folder / f"{name}.safetensors"
    save_model(model, path, arch=arch, args=args)
    return str(path)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("models")
    return {
        "edsr": _save(folder, "edsr", "edsr", EDSR),
        "rlfn": _save(folder, "rlfn", "rlfn", RLFN),
        "nan": _save(folder, "nan", "edsr", EDSR, nan=True),
        "overflow": _save(folder, "overflow", "edsr", EDSR, gain=1e12),  # finite, overflows
    }


def _png(path: Path, h: int, w: int, seed: int = 0) -> Path:
    write_png(path, np.random.default_rng(seed).integers(0, 256, (h, w, 3), np.uint8))
    return path


def _one_line(capsys) -> str:
    """The error printed, checked to be one line (progress bars, drawn with a leading
    carriage return by tqdm once it is imported, aside)."""
    lines = [line for line in capsys.readouterr().err.split("\n") if line and "\r" not in line]
    assert len(lines) == 1, lines
    return lines[0]


# ------------------------------------------------------- item 5: an output that is an input


def test_upscale_refuses_to_overwrite_an_input(models, tmp_path, capsys):
    t = tmp_path / "t"
    a, a_x2 = _png(t / "a.png", 9, 11), _png(t / "a_x2.png", 10, 12, seed=1)
    before = a_x2.read_bytes()
    argv = ["-q", "upscale", models["edsr"], str(a), str(a_x2), "--out", str(t)]
    assert main(argv) == 1
    err = _one_line(capsys)
    assert str(a_x2) in err and "overwrite" in err
    assert a_x2.read_bytes() == before
    assert sorted(p.name for p in t.iterdir()) == ["a.png", "a_x2.png"]


def test_upscale_refuses_an_input_reached_by_a_link(models, tmp_path, capsys):
    t = tmp_path / "t"
    a, b, a_x2 = _png(t / "a.png", 9, 11), _png(t / "b.png", 10, 12, 1), _png(t / "a_x2.png", 8, 8)
    before = {p: p.read_bytes() for p in (a, b, a_x2)}
    linked = tmp_path / "linked"  # a symbolic link to the input folder
    linked.symlink_to(t)
    assert main(["-q", "upscale", models["edsr"], str(a), str(a_x2), "--out", str(linked)]) == 1
    assert str(a_x2) in _one_line(capsys)
    hard = tmp_path / "hard"  # an output folder where a_x2.png is a hard link to input b.png
    hard.mkdir()
    os.link(b, hard / "a_x2.png")
    assert main(["-q", "upscale", models["edsr"], str(a), str(b), "--out", str(hard)]) == 1
    assert str(b) in _one_line(capsys)
    assert {p: p.read_bytes() for p in (a, b, a_x2)} == before


def test_export_refuses_to_overwrite_the_model(models, tmp_path, capsys):
    model = tmp_path / "m.safetensors"
    model.write_bytes(Path(models["edsr"]).read_bytes())
    before = model.read_bytes()
    assert main(["-q", "export", str(model), "--onnx", str(tmp_path / "." / model.name)]) == 1
    assert "overwrite the input" in _one_line(capsys)
    assert model.read_bytes() == before


# ------------------------------------------------------------ item 6: non-finite output


@pytest.mark.parametrize("size", [[], ["--tile", "16"]])
def test_upscale_refuses_nan_weights(models, tmp_path, capsys, size):
    a = _png(tmp_path / "a.png", 20, 24)
    out = tmp_path / "out"
    assert main(["-q", "upscale", models["nan"], str(a), "--out", str(out), *size]) == 1
    err = _one_line(capsys)
    assert models["nan"] in err and "weights are NaN or infinite" in err
    assert not list(out.glob("*.png"))


def test_upscale_refuses_non_finite_output(models, tmp_path, capsys):
    a = _png(tmp_path / "a.png", 20, 24)
    out = tmp_path / "out"
    assert main(["-q", "upscale", models["overflow"], str(a), "--out", str(out)]) == 1
    err = _one_line(capsys)
    assert models["overflow"] in err and str(a) in err and "not finite" in err
    assert not list(out.glob("*.png"))


# ------------------------------------------------- item 7: a budget from the memory available


def test_upscale_without_a_budget_tiles_in_the_memory_available(
    models, tmp_path, capsys, monkeypatch
):
    # EDSR 16 features ×2 needs about 1.6 kB per LR pixel: 120×100 needs 19 MB whole.
    monkeypatch.setattr(upscale_module, "available_memory_mb", lambda device: 12.0)
    a = _png(tmp_path / "a.png", 100, 120)
    out, log = tmp_path / "out", tmp_path / "log.txt"
    argv = ["-q", "--log-file", str(log), "upscale", models["edsr"], str(a), "--out", str(out)]
    assert main(argv) == 0
    text = log.read_text()
    assert "does not fit whole in 6 MB (50% of the 12 MB of memory available" in text
    assert "running it in tiles of" in text
    model = load_model(models["edsr"])[0]
    expected = super_resolve(model, read_image(a), torch.device("cpu"))
    assert np.array_equal(read_image(out / "a_x2.png"), expected)  # tiling is exact for EDSR
    small = _png(tmp_path / "small.png", 20, 24)  # fits: runs whole, nothing said
    argv = ["-q", "--log-file", str(log), "upscale", models["edsr"], str(small), "--out", str(out)]
    assert main(argv) == 0
    assert "does not fit" not in log.read_text()


def test_upscale_without_a_budget_fails_in_one_line(models, tmp_path, capsys, monkeypatch):
    a = _png(tmp_path / "a.png", 100, 120)
    out = tmp_path / "out"
    monkeypatch.setattr(upscale_module, "available_memory_mb", lambda device: 0.2)
    assert main(["-q", "upscale", models["edsr"], str(a), "--out", str(out)]) == 1
    err = _one_line(capsys)
    assert str(a) in err and "--max-memory" in err and "too small for edsr" in err
    monkeypatch.setattr(upscale_module, "available_memory_mb", lambda device: 12.0)
    assert main(["-q", "upscale", models["rlfn"], str(a), "--out", str(out)]) == 1
    err = _one_line(capsys)
    assert str(a) in err and "--max-memory" in err and "--approximate" in err
    assert not list(out.glob("*.png"))


def test_available_memory_is_read():
    mb = upscale_module.available_memory_mb(torch.device("cpu"))
    assert mb is None or mb > 0


# ------------------------------------------------------ item 8: the smallest input accepted


def test_upscale_refuses_an_image_below_the_model_minimum(models, tmp_path, capsys):
    tiny, fine = _png(tmp_path / "tiny.png", 9, 11), _png(tmp_path / "fine.png", 15, 15)
    out = tmp_path / "out"
    assert main(["-q", "upscale", models["rlfn"], str(fine), str(tiny), "--out", str(out)]) == 1
    err = _one_line(capsys)
    assert str(tiny) in err and "11×9" in err and "at least 15×15" in err  # RLFN's ESA pooling
    assert not list(out.glob("*.png"))
    assert main(["-q", "upscale", models["rlfn"], str(fine), "--out", str(out)]) == 0


def test_tiles_are_not_cut_below_the_model_minimum(models):
    model = load_model(models["edsr"])[0]
    for hw, tile, margin in [((40, 45), 2, 0), ((40, 45), 5, 3), ((12, 30), 1, 1)]:
        tiles = plan_tiles(model, hw, tile, margin, min_window=15)
        cover = torch.zeros(hw[0] * 2, hw[1] * 2, dtype=torch.int32)
        for t in tiles:
            cover[t.out] += 1
            for side, n in zip(t.window, hw, strict=True):
                assert side.stop - side.start >= min(15, n)
        assert (cover == 1).all()
    lr = np.random.default_rng(0).integers(0, 256, (33, 40, 3), np.uint8)
    device = torch.device("cpu")
    tiled = super_resolve_tiled(model, lr, device, 2, min_window=15)
    assert np.array_equal(tiled, super_resolve(model, lr, device))


# -------------------------------------------------------- item 9: stale temporaries of a run


def test_upscale_removes_stale_temporaries_of_its_outputs(models, tmp_path):
    a = _png(tmp_path / "a.png", 9, 11)
    out = tmp_path / "out"
    out.mkdir()
    old = time.time() - 3600
    stale = out / ".a_x2.png.k3j_x9q2.tmp"  # what a kill -9 during the PNG write leaves
    other = out / ".b_x2.png.k3j_x9q2.tmp"  # another output's
    alike = out / ".a_x2.png.kept.k3j_x9q2.tmp"  # not the temporary pattern of a_x2.png
    fresh = out / ".a_x2.png.abcdefgh.tmp"  # made after the run started
    held = out / ".a_x2.png.12345678.tmp"  # a live writer holds its lock
    for p in (stale, other, alike, fresh, held):
        p.write_bytes(b"partial")
        os.utime(p, (old, old))
    os.utime(fresh, (time.time() + 60,) * 2)
    with open(held) as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        assert main(["-q", "upscale", models["edsr"], str(a), "--out", str(out)]) == 0
    assert not stale.exists()
    assert all(p.exists() for p in (other, alike, fresh, held))
    assert (out / "a_x2.png").is_file()


def test_a_live_atomic_write_is_not_stale(tmp_path):
    target = tmp_path / "x.png"
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"partial")
        os.utime(tmp, (0, 0))
        assert remove_stale_temporaries(target, before=time.time()) == []
        assert tmp.exists()
    assert target.read_bytes() == b"partial"
    left = tmp_path / ".x.png.abcd1234.tmp"
    left.write_bytes(b"")
    os.utime(left, (0, 0))
    assert remove_stale_temporaries(target, before=time.time()) == [left]


def test_export_removes_stale_temporaries(models, tmp_path):
    out = tmp_path / "m.onnx"
    stale = tmp_path / ".m.onnx.zz99zz99.tmp"
    stale.write_bytes(b"partial")
    os.utime(stale, (0, 0))
    pytest.importorskip("onnxruntime")
    assert main(["-q", "export", models["edsr"], "--onnx", str(out), "--opset", "13"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


# ------------------------------------------------------------------- item 10: the opset asked


def test_export_writes_the_opset_asked_for(models, tmp_path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    out = tmp_path / "m.onnx"
    assert main(["-q", "export", models["edsr"], "--onnx", str(out), "--opset", "13"]) == 0
    versions = [o.version for o in onnx.load(str(out)).opset_import if o.domain in ("", "ai.onnx")]
    assert versions == [13]


@pytest.mark.parametrize("opset", ["6", "99"])
def test_export_refuses_an_opset_it_cannot_write(models, tmp_path, capsys, opset):
    out = tmp_path / "m.onnx"
    assert main(["-q", "export", models["edsr"], "--onnx", str(out), "--opset", opset]) == 1
    err = _one_line(capsys)
    assert models["edsr"] in err and f"opset {opset}" in err and "supported opsets are 7–" in err
    assert list(tmp_path.iterdir()) == []


# -------------------------------------------------------------- item 11: multi-frame images


def _frames(n: int, h: int = 12, w: int = 14) -> list[Image.Image]:
    rng = np.random.default_rng(n)
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), np.uint8)) for _ in range(n)]


@pytest.mark.parametrize(
    ("name", "fmt"), [("anim.gif", "GIF"), ("anim.png", "PNG"), ("pages.tif", "TIFF")]
)
def test_multi_frame_images_are_refused(models, tmp_path, capsys, name, fmt):
    path = tmp_path / "in" / name
    path.parent.mkdir()
    first, *rest = _frames(3)
    first.save(path, format=fmt, save_all=True, append_images=rest)
    with pytest.raises(ImageError, match="3 frames"):
        read_image(path)
    out = tmp_path / "out"
    assert main(["-q", "upscale", models["edsr"], str(path), "--out", str(out)]) == 1
    assert str(path) in _one_line(capsys)
    if fmt != "GIF":  # a folder set lists PNG and TIFF: `prepare` refuses them too
        with pytest.raises(ImageError, match=f"{path}: image has 3 frames"):
            prepare_set([path], 2, tmp_path / "prepared", progress=False)
    single = tmp_path / "single.gif"
    first.save(single, format="GIF")
    assert read_image(single).shape == (12, 14, 3)
