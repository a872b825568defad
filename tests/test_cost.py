"""Tests of litesr.measure.cost: parameters, MACs, latency, peak memory and the cost TSV."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from torch import nn

from litesr.measure import cost

CUDA = torch.cuda.is_available()


def _conv_stack() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 12, 3, padding=1), nn.PixelShuffle(2)
    )


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory: pytest.TempPathFactory):
    """A tiny EDSR (×2, 1 block, 16 features) saved by ``litesr.models.store``."""
    from litesr.models import build
    from litesr.models.store import save_model

    args = {"scale": 2, "n_resblocks": 1, "n_feats": 16}
    path = tmp_path_factory.mktemp("models") / "tiny_edsr_x2.safetensors"
    save_model(build("edsr", **args), path, arch="edsr", args=args)
    return path


def test_count_params_by_hand():
    assert cost.count_params(_conv_stack()) == (3 * 8 * 9 + 8) + (8 * 12 * 9 + 12)


def test_macs_single_conv():
    conv = nn.Conv2d(3, 7, 3, padding=1)
    assert cost.count_macs(conv, (10, 12)) == 7 * 3 * 9 * 10 * 12


def test_macs_conv_pixelshuffle_ignores_elementwise():
    # ReLU, bias and PixelShuffle cost no MACs; the two convs run at LR size.
    assert cost.count_macs(_conv_stack(), (6, 9)) == (8 * 3 * 9 + 12 * 8 * 9) * 6 * 9


@pytest.mark.parametrize(("scale", "expected"), [(2, (360, 640)), (3, (240, 427)), (4, (180, 320))])
def test_lr_size_for_output(scale, expected):
    assert cost.lr_size_for_output(scale=scale) == expected
    assert cost.lr_size_for_output((721, 1281), scale=scale) == (
        math.ceil(721 / scale),
        math.ceil(1281 / scale),
    )


def test_cpu_latency_positive_and_threads_restored():
    before = torch.get_num_threads()
    ms = cost.cpu_latency_ms(_conv_stack(), (16, 16), threads=1, warmup=1, repeats=3)
    assert 0 < ms < math.inf
    assert torch.get_num_threads() == before


@pytest.mark.skipif(CUDA, reason="checks the error raised when CUDA is absent")
def test_gpu_latency_without_cuda_raises():
    with pytest.raises(RuntimeError, match="needs CUDA"):
        cost.gpu_latency_ms(_conv_stack(), (16, 16))


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
def test_gpu_latency_and_peak_memory():
    ms, peak = cost.gpu_latency_ms(_conv_stack(), (64, 64), warmup=2, repeats=5)
    assert 0 < ms < math.inf
    out_bytes = 3 * 128 * 128 * 4
    assert peak >= out_bytes


def test_use_cuda_device_choice():
    assert not cost.use_cuda("cpu")
    assert cost.use_cuda("auto") == CUDA
    with pytest.raises(ValueError, match="use one of"):
        cost.use_cuda("tpu")


@pytest.mark.skipif(CUDA, reason="checks the error raised when CUDA is absent")
def test_cuda_requested_but_absent_fails_early(saved_model):
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        cost.measure_model(saved_model, device="cuda")


def test_memprobe_bigger_input_needs_more_memory(saved_model):
    small = cost.cpu_peak_memory_bytes(saved_model, (32, 32))
    large = cost.cpu_peak_memory_bytes(saved_model, (512, 512))
    for rss in (small, large):
        assert rss["rss_peak_bytes"] >= rss["rss_baseline_bytes"] > 0
        assert rss["inference_bytes"] == rss["rss_peak_bytes"] - rss["rss_baseline_bytes"]
    # At 512×512 one 64-channel LR map (before PixelShuffle) alone is 64 MiB.
    assert large["inference_bytes"] > small["inference_bytes"] + 32 * 2**20


def test_memprobe_failure_names_the_file(tmp_path):
    missing = tmp_path / "no_such_model.safetensors"
    with pytest.raises(RuntimeError, match="no_such_model.safetensors") as err:
        cost.cpu_peak_memory_bytes(missing, (16, 16))
    assert "model file not found" in str(err.value)  # the subprocess's stderr is included


def test_measure_models_writes_documented_columns(saved_model, tmp_path):
    out = tmp_path / "cost" / "cost.tsv"
    kw = {"latency_hw": (24, 24), "cpu_repeats": 2, "device": "cpu"}
    cost.measure_models([saved_model], out, **kw)
    table = pd.read_csv(out, sep="\t")
    assert list(table.columns) == cost.COLUMNS
    for column in cost.COLUMNS:
        assert f"``{column}``" in cost.__doc__
    row = table.iloc[0]
    assert (row["model"], row["arch"], row["scale"]) == ("tiny_edsr_x2", "edsr", 2)
    assert row["params"] > 0 and row["macs_720p_G"] > row["macs_256_G"] > 0
    assert row["latency_lr_hw"] == "24x24" and row["cpu_latency_ms"] > 0
    assert math.isnan(row["gpu_latency_ms"]) and math.isnan(row["gpu_peak_MiB"])
    assert not list(tmp_path.glob("cost/*.tmp"))
