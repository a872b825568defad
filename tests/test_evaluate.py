"""Evaluation as the workflow runs it: per-image TSVs, set means, grey images, bicubic table."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from test_metrics import BICUBIC_TABLE

from litesr.data.images import list_images, read_image, stored_grey, write_png
from litesr.data.resize import bicubic_upsample
from litesr.data.sources import prepare_set
from litesr.evaluate.run import (
    EXACT_DB,
    evaluate_set,
    measure,
    measured_planes,
    summarize,
    super_resolve,
)
from litesr.models import build
from litesr.models.store import save_model

# The published bicubic PSNR / SSIM of every scale of Set5 and Set14 (conventions.md).
PUBLISHED = BICUBIC_TABLE
TOLERANCE = (0.02, 0.002)  # (dB, SSIM)


@pytest.mark.shared_data
@pytest.mark.parametrize(("set_name", "scale"), sorted(PUBLISHED))
def test_the_workflows_bicubic_table_is_the_published_one(shared_data, tmp_path, set_name, scale):
    """`prepare` (our modcrop and MATLAB bicubic, from the HR images alone) then `evaluate`, as
    the workflow runs them, give the published bicubic row within 0.02 dB."""
    hr = shared_data / "benchmark" / set_name / f"x{scale}" / "HR"
    prepared = prepare_set(list_images(hr), scale, tmp_path / "set", progress=False)
    table = evaluate_set(
        "bicubic",
        prepared,
        scale,
        tmp_path / "t.tsv",
        model_name="bicubic",
        set_name=set_name,
        progress=False,
    )
    psnr, ssim = PUBLISHED[set_name, scale]
    assert table.psnr_y.mean() == pytest.approx(psnr, abs=TOLERANCE[0])
    assert table.ssim_y.mean() == pytest.approx(ssim, abs=TOLERANCE[1])
    on_disk = pd.read_csv(tmp_path / "t.tsv", sep="\t")
    assert list(on_disk.columns) == [
        "model",
        "set",
        "scale",
        "image",
        "psnr_y",
        "ssim_y",
        "psnr_rgb",
    ]
    assert len(on_disk) == len(list(hr.iterdir()))


@pytest.mark.shared_data
def test_set14_grey_images_are_measured_by_their_stored_channels(shared_data, tmp_path):
    """img_003 is stored with one channel and stays so once prepared; img_010 is stored as RGB
    with three equal channels and is measured on Y, as the field's scripts do."""
    hr = shared_data / "benchmark" / "Set14" / "x4" / "HR"
    images = [hr / "img_003.png", hr / "img_010.png"]
    prepared = prepare_set(images, 4, tmp_path / "set", progress=False)
    for sub in ("HR", "LR"):
        assert read_image(prepared / sub / "img_003.png").shape[2] == 3
        assert stored_grey(prepared / sub / "img_003.png")
        assert not stored_grey(prepared / sub / "img_010.png")
    manifest = pd.read_csv(prepared / "manifest.tsv", sep="\t")
    assert dict(zip(manifest.name, manifest.channels, strict=True)) == {
        "img_003": 1,
        "img_010": 3,
    }
    rgb010 = read_image(prepared / "HR" / "img_010.png")
    assert np.array_equal(rgb010[..., 0], rgb010[..., 1])
    lr = read_image(prepared / "LR" / "img_010.png")
    sr = bicubic_upsample(lr, 4)
    on_y = measure(sr, rgb010, 4, grey=False)
    on_grey = measure(sr, rgb010, 4, grey=True)
    assert on_y["psnr_y"] != pytest.approx(on_grey["psnr_y"], abs=0.05)
    table = evaluate_set(
        "bicubic", prepared, 4, tmp_path / "t.tsv", model_name="b", set_name="s", progress=False
    )
    assert table.set_index("image").psnr_y["img_010"] == pytest.approx(on_y["psnr_y"])


def test_grey_images_are_measured_on_their_grey_level():
    hr = np.repeat(np.arange(64, dtype=np.uint8).reshape(8, 8, 1), 3, axis=2)
    sr, ref = measured_planes(hr, hr, grey=True)
    assert sr.ndim == 2 and np.array_equal(sr, hr[..., 0]) and np.array_equal(ref, hr[..., 0])
    sr, ref = measured_planes(hr, hr, grey=False)
    assert sr.shape == hr.shape and ref is hr


def test_prepare_keeps_a_one_channel_source_one_channel(tmp_path):
    rng = np.random.default_rng(0)
    write_png(tmp_path / "src" / "g.png", rng.integers(0, 256, (48, 40), dtype=np.uint8))
    write_png(tmp_path / "src" / "c.png", rng.integers(0, 256, (48, 40, 3), dtype=np.uint8))
    out = prepare_set(list_images(tmp_path / "src"), 4, tmp_path / "set", progress=False)
    assert [stored_grey(out / "LR" / f"{n}.png") for n in "cg"] == [False, True]
    assert [stored_grey(out / "HR" / f"{n}.png") for n in "cg"] == [False, True]


def test_summary_averages_over_images_not_pixels():
    rows = pd.DataFrame(
        {
            "model": ["m", "m"],
            "set": ["s", "s"],
            "scale": [4, 4],
            "image": ["a", "b"],
            "psnr_y": [30.0, 20.0],
            "ssim_y": [0.9, 0.5],
            "psnr_rgb": [29.0, 19.0],
        }
    )
    out = summarize(rows)
    assert out.psnr_y.item() == 25.0 and out.ssim_y.item() == pytest.approx(0.7)


def test_summary_rows_go_by_model_then_set_in_report_order():
    rows = pd.DataFrame(
        {
            "model": ["b", "a", "a", "a"],
            "set": ["Set5", "Set14", "Set5", "Set5"],
            "scale": [4, 4, 4, 2],
            "image": "x",
            "psnr_y": 30.0,
            "ssim_y": 0.9,
            "psnr_rgb": 29.0,
        }
    )
    out = summarize(rows)
    assert list(zip(out.model, out.set, out.scale, strict=True)) == [
        ("a", "Set5", 2),
        ("a", "Set5", 4),
        ("a", "Set14", 4),
        ("b", "Set5", 4),
    ]


def test_model_evaluation_rounds_output_like_a_png(tmp_path):
    torch.manual_seed(0)
    model = build("edsr", scale=2, n_resblocks=1, n_feats=8)
    lr = np.random.default_rng(0).integers(0, 256, (12, 10, 3), dtype=np.uint8)
    sr = super_resolve(model.eval(), lr, torch.device("cpu"))
    assert sr.dtype == np.uint8 and sr.shape == (24, 20, 3)
    data = tmp_path / "set"
    write_png(data / "HR" / "a.png", np.zeros((24, 20, 3), np.uint8))
    write_png(data / "LR" / "a.png", lr)
    path = tmp_path / "m.safetensors"
    save_model(model, path, arch="edsr", args={"scale": 2, "n_resblocks": 1, "n_feats": 8})
    table = evaluate_set(
        str(path),
        data,
        2,
        tmp_path / "e.tsv",
        model_name="m",
        set_name="s",
        save_dir=tmp_path / "sr",
        progress=False,
    )
    assert len(table) == 1 and (tmp_path / "sr" / "a.png").exists()


def test_device_setting_auto_and_bad_values():
    from litesr.device import resolve_device
    from litesr.evaluate.run import upscaler

    assert resolve_device("auto").type in {"cpu", "cuda"}
    assert callable(upscaler("bicubic", "auto"))
    with pytest.raises(ValueError, match="gpu0"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            resolve_device("cuda")


def test_an_image_too_small_for_ssim_is_named_before_any_model_runs(tmp_path):
    """At x4 the 11x11 SSIM window needs sides of 11 + 2 * 4 = 19 pixels after no crop."""
    data = tmp_path / "set"
    rng = np.random.default_rng(0)
    for name, (h, w) in {"big": (40, 40), "thin": (40, 16)}.items():
        write_png(data / "HR" / f"{name}.png", rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        write_png(data / "LR" / f"{name}.png", np.zeros((h // 4, w // 4, 3), np.uint8))
    with pytest.raises(ValueError, match=r"thin\.png \(16x40\).*at least 19 pixels") as err:
        evaluate_set(
            str(tmp_path / "no-such-model.safetensors"),  # never loaded: sizes come first
            data,
            4,
            tmp_path / "e.tsv",
            model_name="m",
            set_name="s",
            progress=False,
        )
    assert "big.png" not in str(err.value)
    assert not (tmp_path / "e.tsv").exists()


def test_ssim_names_the_window_for_small_arrays():
    from litesr.evaluate.metrics import ssim_y

    img = np.zeros((18, 30, 3), np.uint8)
    with pytest.raises(ValueError, match=r"30x18 pixels is 22x10 after cropping 4.*11x11"):
        ssim_y(img, img, 4)
    square = np.zeros((19, 19, 3), np.uint8)
    assert ssim_y(square, square, 4) == pytest.approx(1.0)


def test_saved_sr_images_replace_the_folder_whole(tmp_path):
    """evaluate_set's save_dir holds exactly the images measured, written atomically."""
    data = tmp_path / "set"
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        hr = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
        write_png(data / "HR" / f"{name}.png", hr)
        write_png(data / "LR" / f"{name}.png", hr[::2, ::2])
    sr_dir = tmp_path / "sr"
    write_png(sr_dir / "stale.png", np.zeros((4, 4, 3), np.uint8))
    evaluate_set(
        "bicubic",
        data,
        2,
        tmp_path / "e.tsv",
        model_name="bicubic",
        set_name="s",
        save_dir=sr_dir,
        progress=False,
    )
    assert sorted(p.name for p in sr_dir.iterdir()) == ["a.png", "b.png"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_grey_measurement_does_not_depend_on_memory_layout():
    rng = np.random.default_rng(1)
    hr = np.repeat(rng.integers(0, 256, (40, 40, 1), dtype=np.uint8), 3, axis=2)
    # Pixels whose grey level is exactly k + 0.5, where the summation order decides rint.
    r, g, b = np.meshgrid(np.arange(256), np.arange(256), np.arange(0, 256, 5), indexing="ij")
    tie = (299 * r + 587 * g + 114 * b) % 1000 == 500
    planar = np.stack([r[tie], g[tie], b[tie]])[:, :1600].astype(np.uint8).reshape(3, 40, 40)
    view = planar.transpose(1, 2, 0)  # as a network's C×H×W output is usually viewed
    assert not view.flags["C_CONTIGUOUS"]
    assert measure(view, hr, 4, grey=True) == measure(np.ascontiguousarray(view), hr, 4, grey=True)


# --- speed: backends, threads, progress (litesr.evaluate.run, *Speed*) -----------------------

SPEED_MODELS = {
    "edsr": {"scale": 2, "n_resblocks": 2, "n_feats": 16},
    "vdsr": {"scale": 3, "width": 16, "depth": 6},  # runs at HR resolution
}


@pytest.fixture
def cache_home(tmp_path, monkeypatch) -> Path:
    """A cache folder of the test's own (ONNX exports, speed probes), never the user's."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "litesr"


def _speed_model(folder: Path, arch: str) -> str:
    """A random-weight model file; VDSR's residual is damped, so that its output is near
    bicubic and PSNR is at a realistic level (one level flipped then weighs more)."""
    torch.manual_seed(0)
    args = SPEED_MODELS[arch]
    model = build(arch, **args)
    if arch == "vdsr":
        with torch.no_grad():
            model.tail.weight.mul_(0.02)
    path = folder / f"{arch}.safetensors"
    save_model(model, path, arch=arch, args=args)
    return str(path)


def _textured_set(folder: Path, scale: int, n: int = 3) -> Path:
    """A prepared set of ``n`` smooth images with mild noise (bicubic ×scale: about 30 dB)."""
    rng = np.random.default_rng(scale)
    for i in range(n):
        coarse = rng.integers(0, 256, (9 + i, 8, 3), dtype=np.uint8)
        smooth = bicubic_upsample(coarse, 8).astype(float) + rng.normal(0, 3, (72 + 8 * i, 64, 3))
        write_png(folder / "hr" / f"{i}.png", smooth.clip(0, 255).round().astype(np.uint8))
    return prepare_set(list_images(folder / "hr"), scale, folder / "set", progress=False)


def _evaluate(model: str, data: Path, scale: int, out: Path, **kwargs) -> pd.DataFrame:
    return evaluate_set(
        model, data, scale, out / "e.tsv", model_name="m", set_name="s", progress=False, **kwargs
    )


@pytest.mark.parametrize("arch", sorted(SPEED_MODELS))
def test_onnxruntime_keeps_a_set_s_psnr_within_a_thousandth_of_a_db(
    arch, tmp_path, cache_home, caplog
):
    """The bar a backend must clear to evaluate: the per-set means within EXACT_DB of torch
    float32, the SR images within one level (float rounding, nothing more)."""
    pytest.importorskip("onnxruntime")
    scale = SPEED_MODELS[arch]["scale"]
    model, data = _speed_model(tmp_path, arch), _textured_set(tmp_path, scale)
    means = {}
    for backend in ("torch", "onnxruntime"):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="litesr.evaluate.run"):
            table = _evaluate(
                model, data, scale, tmp_path, backend=backend, save_dir=tmp_path / backend
            )
        assert caplog.text.count(f"on {backend};") == 3
        means[backend] = summarize(table).iloc[0]
    for column in ("psnr_y", "psnr_rgb"):
        assert abs(means["onnxruntime"][column] - means["torch"][column]) <= EXACT_DB
    assert abs(means["onnxruntime"].ssim_y - means["torch"].ssim_y) <= 1e-5
    if arch == "vdsr":
        assert means["torch"].psnr_y > 25  # a realistic level, where a flipped level counts
    for png in (tmp_path / "torch").iterdir():
        ort = read_image(tmp_path / "onnxruntime" / png.name).astype(int)
        diff = np.abs(ort - read_image(png).astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() <= 1e-3


def test_auto_follows_upscale_s_measured_rule_on_the_given_threads(
    tmp_path, cache_home, monkeypatch, caplog
):
    pytest.importorskip("onnxruntime")
    from litesr.tools import backends

    model, data = _speed_model(tmp_path, "edsr"), _textured_set(tmp_path, 2, n=2)
    probes, sessions = [], []

    def probe(model, ort, hw=backends.PROBE_HW):
        probes.append(hw)
        return {"torch": 2.0, "onnxruntime": 1.0}

    class Session(backends.OrtForward):
        def __init__(self, path, threads):
            sessions.append(threads)
            super().__init__(path, threads)

    monkeypatch.setattr(backends, "measure_speed", probe)
    monkeypatch.setattr(backends, "OrtForward", Session)

    def used(**kwargs) -> str:
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="litesr.evaluate.run"):
            _evaluate(model, data, 2, tmp_path, **kwargs)
        return "onnxruntime" if "on onnxruntime;" in caplog.text else "torch"

    before = torch.get_num_threads()
    # A small set: neither an export nor a probe is paid for.
    assert used(threads=1) == "torch" and not probes and not (cache_home / "onnx").exists()
    # A large one (the threshold lowered): exported, probed once, on the run's threads.
    monkeypatch.setattr(backends, "AUTO_MIN_PIXELS", 0)
    assert used(threads=1) == "onnxruntime" and len(probes) == 1 and sessions == [1]
    # Measured before: a small set reuses the timing (no probe again); not at 2 threads.
    monkeypatch.setattr(backends, "AUTO_MIN_PIXELS", 1 << 40)
    assert used(threads=1) == "onnxruntime" and len(probes) == 1 and sessions == [1, 1]
    assert used(threads=2) == "torch" and len(probes) == 1
    # Explicit: torch never probes nor exports.
    assert used(threads=1, backend="torch") == "torch" and sessions == [1, 1]
    assert torch.get_num_threads() == before  # the caller's setting is restored
    with pytest.raises(ValueError, match="threads must be a positive number"):
        _evaluate(model, data, 2, tmp_path, threads=0)


def test_progress_shows_images_and_the_time_left(tmp_path, monkeypatch, capsys, caplog):
    """A bar by pixels (the time left follows the images' sizes) with the images done; a log
    line per image (the workflow's log files, where `-q` turns the bar off)."""
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    data = _textured_set(tmp_path, 2)
    with caplog.at_level(logging.INFO, logger="litesr.evaluate.run"):
        evaluate_set("bicubic", data, 2, tmp_path / "e.tsv", model_name="b", set_name="s")
    err = capsys.readouterr().err
    assert "eval b s: 100%" in err and "3/3 images" in err and "<00:00" in err
    assert caplog.text.count("s left") == 3 and "b s ×2: 2 (3/3) on bicubic;" in caplog.text


@pytest.mark.shared_data
def test_onnxruntime_keeps_the_releases_set5_psnr_within_a_thousandth_of_a_db(
    shared_data, tmp_path, cache_home
):
    """The authors' networks, at HR resolution (AIL's VDSR-13) and at LR (DIPNet), on Set5
    ×4: onnxruntime's per-set PSNR within EXACT_DB of torch's."""
    pytest.importorskip("onnxruntime")
    from litesr.models.releases import import_weights

    hr = shared_data / "benchmark" / "Set5" / "x4" / "HR"
    data = prepare_set(list_images(hr), 4, tmp_path / "set", progress=False)
    for release in ("ail_vdsr13_ail_x4", "dipnet_x4"):
        model = import_weights(
            release, shared_data / "reference", 4, tmp_path / f"{release}.safetensors"
        )
        means = {
            backend: summarize(_evaluate(str(model), data, 4, tmp_path, backend=backend))
            for backend in ("torch", "onnxruntime")
        }
        for column in ("psnr_y", "psnr_rgb"):
            gap = abs(means["onnxruntime"][column].item() - means["torch"][column].item())
            assert gap <= EXACT_DB, (release, column, gap)
