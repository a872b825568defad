"""Model definitions, the registry and the safetensors model store."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from litesr.compress.reparam import reparameterize
from litesr.data.color import rgb_to_ycbcr, ycbcr_to_rgb
from litesr.data.resize import imresize
from litesr.data.resize_torch import bicubic_matrix, upsample_bicubic
from litesr.models import available, build
from litesr.models.limits import check_size
from litesr.models.span import RGB_MEAN
from litesr.models.store import load_model, read_meta, save_model

SMALL = {
    "edsr": {"n_resblocks": 2, "n_feats": 8},
    "vdsr": {"width": 8, "depth": 5},
    "rlfn": {"feature_channels": 8, "mid_channels": 6, "esa_channels": 4, "n_blocks": 2},
    "span": {"feature_channels": 8, "n_blocks": 2},
}
DIPNET = {"feature_channels": 44, "mid_channels": 38, "esa_channels": 16, "n_blocks": 4}


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_registry_lists_models() -> None:
    assert {"edsr", "vdsr", "rlfn", "span"} <= set(available())


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("arch", ["edsr", "vdsr", "rlfn", "span"])
def test_output_shape(arch: str, scale: int) -> None:
    torch.manual_seed(0)
    model = build(arch, scale=scale, **SMALL[arch])
    assert model.scale == scale
    with torch.no_grad():
        out = model(torch.rand(2, 3, 16, 17))
    assert out.shape == (2, 3, 16 * scale, 17 * scale)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("arch", ["edsr", "rlfn"])
def test_return_features(arch: str) -> None:
    model = build(arch, scale=2, **SMALL[arch])
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        sr, feats = model(x, return_features=True)
        assert torch.equal(sr, model(x))
    assert len(feats) == 2
    assert all(f.shape == (1, 8, 16, 16) for f in feats)


@pytest.mark.parametrize(
    ("arch", "kwargs", "expected"),
    [
        ("rlfn", DIPNET, 243_252),  # DIPNet's deployed network
        ("rlfn", {}, 542_340),  # RLFN widths, no biases
        ("rlfn", {"bias": True}, 543_740),  # RLFN as published (0.543 M)
        ("vdsr", {"width": 64, "depth": 20}, 664_704),
        ("vdsr", {"width": 13, "depth": 20}, 27_612),
        ("edsr", {"n_resblocks": 16, "n_feats": 64}, 1_517_571),
        ("span", {"feature_channels": 28}, 150_688),  # the NTIRE 2024 winner, deploy form
        ("span", {}, 426_288),  # SPAN-48, the authors' default width
    ],
)
def test_parameter_count(arch: str, kwargs: dict, expected: int) -> None:
    assert n_params(build(arch, scale=4, **kwargs)) == expected


def test_dipnet_shape() -> None:
    with torch.no_grad():
        assert build("rlfn", scale=4, **DIPNET)(torch.rand(1, 3, 16, 20)).shape == (1, 3, 64, 80)


def test_rlfn_rgb_range_feeds_its_weights_the_pixel_values_they_were_trained_for() -> None:
    """``rgb_range=255``: the network proper sees 0–255 pixels; RGB in [0, 1] outside."""
    torch.manual_seed(0)
    args = {**SMALL["rlfn"], "bias": True}
    wide = build("rlfn", scale=2, rgb_range=255, **args).eval()
    unit = build("rlfn", scale=2, **args).eval()
    unit.load_state_dict(wide.state_dict())
    x = torch.rand(1, 3, 16, 17)
    with torch.no_grad():
        torch.testing.assert_close(wide(x), unit(x * 255) / 255)
    with pytest.raises(ValueError, match="rgb_range must be a positive"):
        build("rlfn", scale=2, rgb_range=0)
    assert check_size("rlfn", {"scale": 4, "rgb_range": 255}) == check_size("rlfn", {"scale": 4})


@pytest.mark.parametrize("scale", [2, 4])
def test_span_training_form_merges_into_its_deploy_form(scale: int) -> None:
    """Every Conv3XC merged by compress.reparam: the deploy form loads the merged weights
    under the same keys and gives the training form's output within fp32 rounding."""
    torch.manual_seed(0)
    args = {"scale": scale, **SMALL["span"]}
    training = build("span", conv3xc_gain=2, **args).eval()
    with torch.no_grad():
        for p in training.parameters():
            p.copy_(torch.randn_like(p) * (0.05 if p.dim() > 1 else 0.2))
    deploy = build("span", **args).eval()
    deploy.load_state_dict(reparameterize(copy.deepcopy(training)).state_dict())
    x = torch.rand(1, 3, 13, 16)
    with torch.no_grad():
        expected = training(x)
        torch.testing.assert_close(deploy(x), expected, rtol=1e-4, atol=1e-4 * expected.abs().max())


def test_span_feeds_its_head_the_mean_shifted_image_times_255() -> None:
    """RGB in [0, 1] outside; the head conv sees 255 · (x − DIV2K mean), as the authors'."""
    model = build("span", scale=2, **SMALL["span"]).eval()
    assert "mean" not in model.state_dict()  # a constant, not a weight
    seen = []
    model.conv_1.register_forward_hook(lambda _m, args, _out: seen.append(args[0]))
    x = torch.rand(1, 3, 5, 6)
    with torch.no_grad():
        model(x)
    torch.testing.assert_close(seen[0], (x - torch.tensor(RGB_MEAN).view(1, 3, 1, 1)) * 255)
    with pytest.raises(ValueError, match="at least one block"):
        build("span", scale=2, n_blocks=0)


def test_vdsr_has_no_biases_and_he_init() -> None:
    torch.manual_seed(0)
    model = build("vdsr", scale=2)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 20
    assert all(conv.bias is None for conv in convs)
    std = convs[5].weight.std().item()
    assert std == pytest.approx((2 / (9 * 64)) ** 0.5, rel=0.05)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_vdsr_upsampling_matches_imresize(scale: int, rng: np.random.Generator) -> None:
    img = rng.random((11, 14, 3))
    x = torch.from_numpy(img.transpose(2, 0, 1)[None].copy())
    got = upsample_bicubic(x, scale)[0].numpy().transpose(1, 2, 0)
    np.testing.assert_allclose(got, imresize(img, scale), rtol=0, atol=1e-12)


def test_bicubic_matrices_are_cached() -> None:
    x = torch.rand(1, 3, 9, 10)
    upsample_bicubic(x, 3)
    hits = bicubic_matrix.cache_info().hits
    upsample_bicubic(x, 3)
    assert bicubic_matrix.cache_info().hits == hits + 2


def test_ycbcr_conversion() -> None:
    white = rgb_to_ycbcr(torch.ones(1, 3, 1, 1, dtype=torch.float64)).flatten()
    np.testing.assert_allclose(white.numpy(), [235 / 255, 128 / 255, 128 / 255], atol=1e-12)
    x = torch.rand(2, 3, 5, 6, dtype=torch.float64)
    torch.testing.assert_close(ycbcr_to_rgb(rgb_to_ycbcr(x)), x, rtol=0, atol=1e-12)


def test_vdsr_with_zero_weights_is_bicubic() -> None:
    model = build("vdsr", scale=3, width=8, depth=4).double()
    for p in model.parameters():
        nn.init.zeros_(p)
    x = torch.rand(1, 3, 7, 9, dtype=torch.float64)
    torch.testing.assert_close(model(x), upsample_bicubic(x, 3), rtol=0, atol=1e-12)


def test_vdsr_predict_y_is_the_y_of_forward() -> None:
    model = build("vdsr", scale=2, **SMALL["vdsr"]).double()
    x = torch.rand(1, 3, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        y = model.predict_y(x)
        assert y.shape == (1, 1, 16, 16)
        torch.testing.assert_close(rgb_to_ycbcr(model(x))[:, :1], y, rtol=0, atol=1e-12)


def test_build_errors() -> None:
    with pytest.raises(ValueError, match=r"unknown model arch 'nope'.*edsr.*rlfn.*vdsr"):
        build("nope", scale=2)
    with pytest.raises(ValueError, match=r"bad arguments for model arch 'vdsr'.*n_feats"):
        build("vdsr", scale=2, n_feats=3)
    with pytest.raises(ValueError, match="scale"):
        build("edsr", scale=5)


@pytest.mark.parametrize("arch", ["edsr", "vdsr", "rlfn", "span"])
def test_store_round_trip(arch: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    args = {"scale": 2, **SMALL[arch]}
    model = build(arch, **args).eval()
    path = tmp_path / "sub" / f"{arch}.safetensors"
    meta = {"psnr": 31.5, "stage": "student", "history": [1, 2]}
    save_model(model, path, arch=arch, args=args, meta=meta)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left

    loaded, got = load_model(path)
    assert got == read_meta(path)
    assert got["arch"] == arch and got["args"] == args and got["litesr_version"]
    assert {k: got[k] for k in meta} == meta
    ref, new = model.state_dict(), loaded.state_dict()
    assert ref.keys() == new.keys() and all(torch.equal(ref[k], new[k]) for k in ref)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_store_failed_save_keeps_old_file(tmp_path: Path) -> None:
    model = build("vdsr", scale=2, **SMALL["vdsr"])
    path = tmp_path / "m.safetensors"
    save_model(model, path, arch="vdsr", args={"scale": 2, **SMALL["vdsr"]})
    before = path.read_bytes()
    with pytest.raises(TypeError):
        save_model(model, path, arch="vdsr", args={"scale": 2}, meta={"bad": object()})
    with pytest.raises(ValueError, match="reserved"):
        save_model(model, path, arch="vdsr", args={"scale": 2}, meta={"arch": "x"})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def test_store_errors(tmp_path: Path) -> None:
    missing = tmp_path / "missing.safetensors"
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        load_model(missing)

    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"this is not a safetensors file at all")
    with pytest.raises(ValueError, match="corrupt.safetensors"):
        load_model(corrupt)

    bare = tmp_path / "bare.safetensors"
    save_file({"w": torch.zeros(2)}, str(bare), metadata={"arch": "vdsr"})
    with pytest.raises(ValueError, match=r"bare.safetensors.*\['args'\]"):
        read_meta(bare)

    wrong = tmp_path / "wrong.safetensors"
    args = json.dumps({"scale": 2})
    save_file({"w": torch.zeros(2)}, str(wrong), metadata={"arch": "vdsr", "args": args})
    with pytest.raises(ValueError, match="wrong.safetensors"):
        load_model(wrong)


def test_store_files_are_byte_identical(tmp_path: Path) -> None:
    """safetensors writes its metadata map in a random order; save_model fixes the order."""
    import hashlib

    torch.manual_seed(0)
    args = {"scale": 2, **SMALL["edsr"]}
    model = build("edsr", **args)
    meta = {f"key{i}": i for i in range(16)} | {"history": {"b": 1, "a": [2, 3]}}
    digests = set()
    for i in range(3):
        path = tmp_path / f"m{i}.safetensors"
        # the same args and meta in another insertion order give the same bytes too
        order = -1 if i % 2 else 1
        save_model(
            model,
            path,
            arch="edsr",
            args=dict(list(args.items())[::order]),
            meta=dict(list(meta.items())[::order]),
        )
        digests.add(hashlib.sha256(path.read_bytes()).hexdigest())
    assert len(digests) == 1
    loaded, got = load_model(tmp_path / "m0.safetensors")
    assert got["args"] == args and got["history"] == meta["history"]


def test_store_refuses_a_small_file_asking_for_a_huge_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The header is checked against a meta-device model before anything is allocated: an
    EDSR of 2048 features x 32 blocks (2.7 G parameters, 11 GB) is never built, even with
    the parameter limit raised above it."""
    import time

    monkeypatch.setenv("LITESR_MAX_PARAMS", str(10**10))
    path = tmp_path / "bomb.safetensors"
    args = json.dumps({"scale": 2, "n_feats": 2048, "n_resblocks": 32})
    save_file({"head.weight": torch.zeros(2)}, str(path), metadata={"arch": "edsr", "args": args})
    assert path.stat().st_size < 1024
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"bomb\.safetensors.*do not match") as err:
        load_model(path)
    assert time.perf_counter() - start < 1.0
    assert "head.weight (2,) (expected (2048, 3, 3, 3))" in str(err.value)
    assert "missing tensors" in str(err.value)


def test_store_refuses_wrong_shapes_before_building(tmp_path: Path) -> None:
    small = {"scale": 2, **SMALL["edsr"]}
    path = tmp_path / "lie.safetensors"
    save_model(build("edsr", **small), path, arch="edsr", args=small)
    # the same weights, with metadata that claims twice the features
    from safetensors import safe_open

    with safe_open(path, framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    big = small | {"n_feats": 2 * small["n_feats"]}
    save_file(tensors, str(path), metadata={"arch": "edsr", "args": json.dumps(big)})
    with pytest.raises(ValueError, match=r"lie\.safetensors.*wrong shapes"):
        load_model(path)
