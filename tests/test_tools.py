"""Tools for people's own images: exact tiled inference, `litesr upscale`, `litesr export`."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from litesr.cli import main
from litesr.data.images import read_image, write_png
from litesr.evaluate.run import super_resolve
from litesr.models import build
from litesr.models.store import load_model, save_model
from litesr.tools import backends, locality
from litesr.tools.budget import tile_for_memory
from litesr.tools.cache import cache_dir
from litesr.tools.locality import NonLocalModelError, analyse, cache_by_file, receptive_radius
from litesr.tools.tiles import plan_tiles, tiled_forward
from litesr.tools.upscale import super_resolve_tiled, upscale

SMALL = {
    "edsr": {"scale": 2, "n_resblocks": 2, "n_feats": 16},
    "edsr4": {"scale": 4, "n_resblocks": 1, "n_feats": 16},
    "vdsr": {"scale": 3, "width": 16, "depth": 5},
    "rlfn": {"scale": 2, "feature_channels": 16, "mid_channels": 16, "n_blocks": 1},
}


@pytest.fixture(autouse=True)
def _no_progress_bars(monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")  # restored after each test (`-q` sets it too)


@pytest.fixture(scope="module")
def cache_home(tmp_path_factory) -> Path:
    """One cache folder for the module's tests (an ONNX export is made once per model)."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def _cache_in_tmp(monkeypatch, cache_home):
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_home))  # never the user's ~/.cache


@pytest.fixture(scope="module")
def model_files(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("models")
    files = {}
    for i, (name, args) in enumerate(SMALL.items()):
        torch.manual_seed(i)
        arch = name.rstrip("4")
        model = build(arch, **args)
        with torch.no_grad():  # a slightly trained-looking net: non-zero biases everywhere
            for p in model.parameters():
                p.add_(0.01 * torch.randn_like(p))
        files[name] = str(folder / f"{name}.safetensors")
        save_model(model, files[name], arch=arch, args=args)
    return files


@pytest.fixture(scope="module")
def models(model_files) -> dict[str, torch.nn.Module]:
    return {name: load_model(path)[0] for name, path in model_files.items()}


def _lr(h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", ["edsr", "edsr4", "vdsr"])
@pytest.mark.parametrize(("h", "w", "tile"), [(37, 53, 16), (90, 131, 24), (41, 29, 5)])
def test_tiled_forward_equals_whole_bit_for_bit(models, name, h, w, tile):
    # 90×131 is large enough that the whole image's 3-channel convolutions use oneDNN while
    # plain 24+2r windows would not: the windows must be grown to match.
    model = models[name]
    x = _lr(h, w)
    with torch.inference_mode():
        whole = model(x)
    tiled = tiled_forward(model, x, tile)
    assert tiled.shape == whole.shape
    assert torch.equal(tiled, whole)
    lr = (x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    device = torch.device("cpu")
    assert np.array_equal(
        super_resolve_tiled(model, lr, device, tile), super_resolve(model, lr, device)
    )


def test_receptive_radius(models):
    # EDSR ×2: head 1 + 2 blocks × 2 + body end 1 + upsampler 1 (LR) + tail 1 (HR, ½ LR).
    assert receptive_radius(models["edsr"]) == 8
    # VDSR ×3: 5 convolutions at HR (5/3 LR) after bicubic (2 LR pixels): 3 or 4 by phase.
    assert receptive_radius(models["vdsr"]) in (3, 4)
    assert analyse(models["vdsr"]).spread >= analyse(models["vdsr"]).conv_bound


def test_tiles_cover_the_output_once(models):
    model = models["edsr"]
    for hw, tile in [((37, 53), 16), ((5, 90), 7), ((100, 3), 64)]:
        cover = torch.zeros(hw[0] * 2, hw[1] * 2, dtype=torch.int32)
        for t in plan_tiles(model, hw, tile, receptive_radius(model)):
            cover[t.out] += 1
            window = (t.window[0].stop - t.window[0].start, t.window[1].stop - t.window[1].start)
            assert t.window[0].start >= 0 and t.window[0].stop <= hw[0]
            assert t.window[1].start >= 0 and t.window[1].stop <= hw[1]
            assert t.keep[0].stop <= window[0] * 2 and t.keep[1].stop <= window[1] * 2
        assert (cover == 1).all()


def test_rlfn_is_refused_or_tiled_approximately(models, caplog):
    model = models["rlfn"]
    x = _lr(40, 45)
    with pytest.raises(NonLocalModelError, match="rlfn cannot be tiled exactly.*position"):
        tiled_forward(model, x, 16)
    with pytest.raises(NonLocalModelError, match="max_pool2d"):
        receptive_radius(model)
    approx = tiled_forward(model, x, 16, allow_approximate=True)
    assert "approximately" in caplog.text
    with torch.inference_mode():
        assert torch.allclose(approx, model(x), atol=1e-2)


def test_tile_for_memory(models):
    model = models["edsr"]
    small, large = tile_for_memory(model, 20), tile_for_memory(model, 200)
    assert 16 <= small < large
    assert tile_for_memory(model, 2000, image_hw=(30, 40)) == 40  # fits whole
    with pytest.raises(ValueError, match="too small for edsr"):
        tile_for_memory(model, 0.5)


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(3)
    paths = [tmp_path / "in" / "a.png", tmp_path / "in" / "b photo.png"]
    write_png(paths[0], rng.integers(0, 256, (37, 53, 3), np.uint8))
    write_png(paths[1], rng.integers(0, 256, (20, 31, 3), np.uint8))
    return paths


@pytest.mark.parametrize("size", [[], ["--tile", "16"], ["--max-memory", "40"]])
def test_cli_upscale_writes_pngs(model_files, images, tmp_path, size):
    out = tmp_path / "out"
    args = ["-q", "upscale", model_files["edsr"], *map(str, images), "--out", str(out)]
    assert main([*args, *size, "--device", "cpu"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a_x2.png", "b photo_x2.png"]
    model = load_model(model_files["edsr"])[0]
    for src, name in zip(images, ["a_x2.png", "b photo_x2.png"], strict=True):
        sr = read_image(out / name)
        lr = read_image(src)
        assert sr.shape == (lr.shape[0] * 2, lr.shape[1] * 2, 3)
        assert np.array_equal(sr, super_resolve(model, lr, torch.device("cpu")))


def test_cli_upscale_unreadable_image(model_files, images, tmp_path, capsys):
    bad = tmp_path / "in" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    out = tmp_path / "out"
    argv = ["-q", "upscale", model_files["edsr"], str(images[0]), str(bad), "--out", str(out)]
    assert main([*argv, "--tile", "16"]) == 1
    err = capsys.readouterr().err
    assert str(bad) in err and err.count("\n") == 1
    assert list(out.iterdir()) == []  # nothing written, not even the good image's output


def test_cli_upscale_not_a_litesr_model(images, tmp_path, capsys):
    plain = tmp_path / "plain.safetensors"
    save_file({"weight": torch.zeros(3, 3)}, plain)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 64)
    for model in (plain, garbage, tmp_path / "missing.safetensors"):
        assert main(["-q", "upscale", str(model), str(images[0]), "--out", str(tmp_path)]) == 1
        assert str(model) in capsys.readouterr().err
    assert not list(tmp_path.glob("*.png"))


def test_cli_upscale_unwritable_output(model_files, images, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    out = blocker / "out"  # its parent is a regular file: it cannot be created, even by root
    assert main(["-q", "upscale", model_files["edsr"], str(images[0]), "--out", str(out)]) == 1
    assert str(out) in capsys.readouterr().err
    if os.geteuid() != 0:  # root ignores permissions
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        argv = ["-q", "upscale", model_files["edsr"], str(images[0]), "--out", str(locked)]
        assert main(argv) == 1
        assert str(locked) in capsys.readouterr().err


def test_cli_upscale_refuses_rlfn_tiles(model_files, images, tmp_path, capsys):
    argv = ["-q", "upscale", model_files["rlfn"], str(images[0]), "--out", str(tmp_path / "o")]
    assert main([*argv, "--tile", "16"]) == 1
    err = capsys.readouterr().err
    assert model_files["rlfn"] in err and "--approximate" in err
    assert main([*argv, "--tile", "16", "--approximate"]) == 0
    assert main(argv) == 0  # whole images are fine


@pytest.mark.parametrize("name", ["edsr", "rlfn", "vdsr"])
def test_onnx_export_dynamic_size(model_files, models, tmp_path, name):
    ort = pytest.importorskip("onnxruntime")
    out = tmp_path / f"{name}.onnx"
    assert main(["-q", "export", model_files[name], "--onnx", str(out)]) == 0
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temporary left
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for h, w in [(24, 37), (51, 18)]:
        x = _lr(h, w, seed=h)
        got = session.run(None, {"lr": x.numpy()})[0]
        with torch.inference_mode():
            ref = models[name](x).numpy()
        assert got.shape == ref.shape
        assert np.abs(got - ref).max() <= 1e-4


# ------------------------------------------------------------------ caches, backends, PNGs


def test_cache_folder_follows_xdg_cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "litesr"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # the spec: absolute paths only
    assert cache_dir() == Path.home() / ".cache" / "litesr"


def test_locality_analysis_is_cached_per_model_file(model_files, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    model = load_model(model_files["edsr"])[0]
    key = cache_by_file(model, model_files["edsr"])
    first = analyse(model)
    entry = tmp_path / "cache" / "litesr" / "locality" / f"{key}.json"
    assert [p.name for p in entry.parent.iterdir()] == [entry.name]  # no temporary left

    def never(model):
        raise AssertionError("the analysis ran again")

    monkeypatch.setattr(locality, "_analyse", never)
    copy = tmp_path / "renamed copy.safetensors"  # another name, the same content
    shutil.copy(model_files["edsr"], copy)
    again = load_model(copy)[0]
    assert cache_by_file(again, copy) == key
    assert analyse(again) == first and receptive_radius(again) == 8

    monkeypatch.undo()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for damage in ("{not json", json.dumps({"stamp": {"version": -1}, "value": {}})):
        entry.write_text(damage)  # damaged, or written by another version: computed again
        fresh = load_model(copy)[0]
        cache_by_file(fresh, copy)
        assert analyse(fresh) == first
        assert json.loads(entry.read_text())["value"]["radius"] == 8


def _run(model_file, images, out, *args, log=None) -> int:
    argv = ["-q", *(["--log-file", str(log)] if log else []), "upscale", model_file]
    return main([*argv, *map(str, images), "--out", str(out), "--device", "cpu", *args])


@pytest.mark.parametrize("name", ["edsr", "rlfn"])
def test_onnxruntime_backend_is_within_one_level_of_torch(model_files, models, tmp_path, name):
    pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(5)
    image = tmp_path / "in.png"
    write_png(image, rng.integers(0, 256, (61, 47, 3), np.uint8))
    assert _run(model_files[name], [image], tmp_path / "ort", "--backend", "onnxruntime") == 0
    got = read_image(tmp_path / "ort" / "in_x2.png").astype(int)
    want = super_resolve(models[name], read_image(image), torch.device("cpu")).astype(int)
    diff = np.abs(got - want)
    assert diff.max() <= 1 and (diff > 0).mean() <= 1e-3  # float rounding, nothing more
    assert list((cache_dir() / "onnx").glob("*.onnx"))  # the export is kept for the next run


def test_onnxruntime_tiles_are_byte_exact(model_files, tmp_path):
    pytest.importorskip("onnxruntime")
    image = tmp_path / "in.png"
    write_png(image, np.random.default_rng(6).integers(0, 256, (57, 70, 3), np.uint8))
    for out, size in (("whole", []), ("tiled", ["--tile", "20"])):
        argv = ["--backend", "onnxruntime", *size]
        assert _run(model_files["edsr"], [image], tmp_path / out, *argv) == 0
    whole = read_image(tmp_path / "whole" / "in_x2.png")
    assert np.array_equal(read_image(tmp_path / "tiled" / "in_x2.png"), whole)


def test_auto_backend_follows_the_measured_rule(model_files, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    shutil.rmtree(cache_dir() / "speed", ignore_errors=True)  # the export is kept, if made
    image = tmp_path / "in.png"
    write_png(image, np.random.default_rng(7).integers(0, 256, (40, 52, 3), np.uint8))
    log = tmp_path / "log.txt"
    timings = {"torch": 2.0, "onnxruntime": 1.0}
    probes = []

    def probe(model, ort, hw=backends.PROBE_HW):
        probes.append(hw)
        return dict(timings)

    monkeypatch.setattr(backends, "measure_speed", probe)
    # A small run never considers onnxruntime: no export, no probe.
    assert _run(model_files["edsr"], [image], tmp_path / "a", log=log) == 0
    assert "in.png (torch," in log.read_text() and not probes
    monkeypatch.setattr(backends, "AUTO_MIN_PIXELS", 0)
    assert _run(model_files["edsr"], [image], tmp_path / "b", log=log) == 0
    assert "in.png (onnxruntime," in log.read_text() and len(probes) == 1
    assert _run(model_files["edsr"], [image], tmp_path / "c", log=log) == 0
    assert "in.png (onnxruntime," in log.read_text() and len(probes) == 1  # cached
    assert _run(model_files["edsr"], [image], tmp_path / "d", "--threads", "1", log=log) == 0
    assert len(probes) == 2  # another thread count is measured anew
    # Faster, but over the memory budget at onnxruntime's memory: torch, whole.
    model = load_model(model_files["edsr"])[0]
    torch_mb = tile_for_memory_need(model, (40, 52))
    budget = str(torch_mb * (1 + backends.ORT_MEMORY_RATIO) / 2)
    assert _run(model_files["edsr"], [image], tmp_path / "e", "--max-memory", budget, log=log) == 0
    assert "in.png (torch," in log.read_text()
    # Slower: torch.
    timings.update(onnxruntime=3.0)
    shutil.rmtree(cache_dir() / "speed")
    assert _run(model_files["edsr"], [image], tmp_path / "f", log=log) == 0
    assert "in.png (torch," in log.read_text()
    # Explicit: torch never probes; bf16 never uses onnxruntime.
    probes.clear()
    assert _run(model_files["edsr"], [image], tmp_path / "g", "--backend", "torch") == 0
    assert _run(model_files["edsr"], [image], tmp_path / "h", "--bf16") == 0
    assert not probes


def tile_for_memory_need(model, hw) -> float:
    """The smallest budget (MB) at which an image of ``hw`` runs whole on torch."""
    from litesr.tools.budget import bytes_per_pixel

    h, w = hw
    return (h * w * (bytes_per_pixel(model) + 12) + h * w * (3 + 3 * model.scale**2)) / 2**20


def test_bf16_is_asked_for_and_close(model_files, models, tmp_path, capsys):
    image = tmp_path / "in.png"
    write_png(image, np.random.default_rng(8).integers(0, 256, (33, 40, 3), np.uint8))
    log = tmp_path / "log.txt"
    assert _run(model_files["edsr"], [image], tmp_path / "o", "--bf16", log=log) == 0
    assert "bfloat16" in log.read_text()
    got = read_image(tmp_path / "o" / "in_x2.png").astype(float)
    want = super_resolve(models["edsr"], read_image(image), torch.device("cpu")).astype(float)
    assert 0 < np.abs(got - want).mean() < 2  # lower precision: changed, but only slightly
    argv = ["--bf16", "--backend", "onnxruntime"]
    assert _run(model_files["edsr"], [image], tmp_path / "p", *argv) == 1
    assert "--bf16" in capsys.readouterr().err


def test_png_level_and_threads(model_files, tmp_path):
    image = tmp_path / "in.png"
    write_png(image, np.random.default_rng(9).integers(0, 256, (40, 40, 3), np.uint8))
    before = torch.get_num_threads()
    upscale(model_files["edsr"], [image], tmp_path / "fast", png_level=0, threads=1)
    assert torch.get_num_threads() == before  # the caller's setting is restored
    upscale(model_files["edsr"], [image], tmp_path / "small", png_level=9)
    fast, small = tmp_path / "fast" / "in_x2.png", tmp_path / "small" / "in_x2.png"
    assert fast.stat().st_size > small.stat().st_size
    assert np.array_equal(read_image(fast), read_image(small))
    for bad in ({"png_level": 10}, {"threads": 0}, {"backend": "tvm"}):
        with pytest.raises(ValueError):
            upscale(model_files["edsr"], [image], tmp_path / "bad", **bad)


def test_a_failed_png_write_stops_the_run(model_files, tmp_path, monkeypatch, capsys):
    import litesr.tools.upscale as upscale_module

    images = []
    for i in range(3):
        images.append(tmp_path / f"{i}.png")
        write_png(images[-1], np.random.default_rng(i).integers(0, 256, (20, 20, 3), np.uint8))

    def full_disk(sr, target, level, what=""):
        raise OSError(28, "No space left on device", str(target))

    monkeypatch.setattr(upscale_module, "save_png", full_disk)
    assert _run(model_files["edsr"], images, tmp_path / "out") == 1
    assert "No space left on device" in capsys.readouterr().err


def test_quiet_silences_the_progress_bars(model_files, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("TQDM_DISABLE")  # as on a user's console
    image = tmp_path / "in.png"
    write_png(image, np.random.default_rng(10).integers(0, 256, (30, 30, 3), np.uint8))
    assert _run(model_files["edsr"], [image], tmp_path / "o", "--tile", "16") == 0
    err = capsys.readouterr().err
    assert "it/s" not in err and "%|" not in err
