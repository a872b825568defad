"""Model sizes and smallest inputs known before building; content hashes in model files."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from litesr.models import available, build
from litesr.models.limits import (
    FORMULAS,
    MIN_SIDES,
    check_size,
    estimate_size,
    min_input_size,
    min_input_size_of,
    probe_min_input_size,
)
from litesr.models.store import load_model, read_meta, save_model, verify_model_file

# Several argument sets per architecture, pruned and re-parameterisable forms included.
SHAPES = {
    "edsr": [
        {"scale": 4},
        {"scale": 3, "n_resblocks": 2, "n_feats": 8},
        {"scale": 2, "n_resblocks": 3, "n_feats": 8, "block_widths": [3, 4, 5]},
    ],
    "rlfn": [
        {"scale": 4},
        {
            "scale": 4,
            "feature_channels": 44,
            "mid_channels": 38,
            "esa_channels": 16,
            "n_blocks": 4,
            "rrb_expand": 16,
        },
        {"scale": 2, "n_blocks": 2, "block_widths": [[3, 4], [5, 6]], "bias": True},
    ],
    "span": [
        {"scale": 4},
        {"scale": 4, "feature_channels": 28},
        {"scale": 3, "feature_channels": 6, "n_blocks": 2, "conv3xc_gain": 2},
    ],
    "vdsr": [{"scale": 2}, {"scale": 3, "width": 5, "depth": 3}],
    "plain": [
        {"scale": 4},
        {"scale": 4, "widths": [8, 32, 12], "factors": [1, 2, 2]},
        {"scale": 2, "widths": [8, 12], "acts": ["identity", "identity"], "const": True},
    ],
}


def test_every_architecture_has_a_size_formula() -> None:
    assert set(available()) <= set(FORMULAS)
    assert set(available()) <= set(SHAPES)


@pytest.mark.parametrize(("arch", "args"), [(a, s) for a, ss in SHAPES.items() for s in ss])
def test_size_estimate_is_exact(arch: str, args: dict) -> None:
    with torch.device("meta"):
        model = build(arch, **args)
    size = estimate_size(arch, args)
    assert size.params == sum(t.numel() for t in model.state_dict().values())
    assert size.layers == sum(isinstance(m, torch.nn.Conv2d) for m in model.modules())


@pytest.mark.parametrize(
    "args",
    [
        {"n_resblocks": 10**7, "n_feats": 8},
        {"n_feats": 10**6},
        {"n_resblocks": 20_000, "n_feats": 1},
    ],
)
def test_a_huge_model_is_refused_before_it_is_built(args: dict) -> None:
    start = time.perf_counter()
    with pytest.raises(ValueError, match="the limit is 200,000,000 parameters"):
        check_size("edsr", {"scale": 4, **args})
    assert time.perf_counter() - start < 0.1


def test_the_limits_can_be_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    args = {"scale": 2, "n_resblocks": 2, "n_feats": 64}
    monkeypatch.setenv("LITESR_MAX_PARAMS", "1000")
    with pytest.raises(ValueError, match="LITESR_MAX_PARAMS"):
        check_size("edsr", args)
    monkeypatch.setenv("LITESR_MAX_PARAMS", str(10**9))
    assert check_size("edsr", args).params > 1000


@pytest.mark.parametrize(
    ("args", "message"),
    [({"n_feats": 8.0}, "whole numbers"), ({"n_feats": -3}, "negative"), ({"nope": 1}, "bad arg")],
)
def test_bad_arguments_are_refused_by_the_estimate(args: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        estimate_size("edsr", {"scale": 2, **args})


@pytest.mark.parametrize(("arch", "args"), [(a, s) for a, ss in SHAPES.items() for s in ss])
def test_min_input_size_is_the_smallest_side_that_runs(arch: str, args: dict) -> None:
    side = min_input_size(arch, args)
    model = build(arch, **args).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, side, side)).shape[-1] == side * args["scale"]
        if side > 1:
            with pytest.raises(RuntimeError):
                model(torch.rand(1, 3, side - 1, side - 1))
    assert min_input_size_of(model) == side
    assert probe_min_input_size(arch, args) == side, "MIN_SIDES disagrees with the probe"


def test_every_architecture_has_a_known_smallest_input() -> None:
    """Parsing the workflow asks for it: a constant costs nothing, the probe seconds."""
    assert set(available()) <= set(MIN_SIDES)


def test_rlfn_needs_15_pixels_edsr_one() -> None:
    assert min_input_size("rlfn", SHAPES["rlfn"][1]) == 15
    assert min_input_size("edsr", {"scale": 4, "n_resblocks": 1, "n_feats": 4}) == 1


SMALL_EDSR = {"scale": 2, "n_resblocks": 1, "n_feats": 4}


def _saved(tmp_path: Path) -> Path:
    path = tmp_path / "model.safetensors"
    torch.manual_seed(0)
    save_model(build("edsr", **SMALL_EDSR), path, arch="edsr", args=SMALL_EDSR, meta={"m": 1})
    return path


def _flip(path: Path, offset: int) -> None:
    """Flip one bit at ``offset`` (from the end when negative), keeping the mtime."""
    stat = path.stat()
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


@pytest.mark.parametrize("offset", [-1, -300])
def test_a_flipped_byte_in_a_model_file_is_refused(tmp_path: Path, offset: int) -> None:
    path = _saved(tmp_path)
    assert verify_model_file(path) is True
    load_model(path)
    _flip(path, offset)
    with pytest.raises(ValueError, match=r"model\.safetensors is corrupted: .*tensor ") as err:
        load_model(path)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="corrupted"):
        verify_model_file(path)


def test_a_changed_metadata_value_is_refused(tmp_path: Path) -> None:
    path = _saved(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data.replace(b'"m":"1"', b'"m":"2"', 1))
    with pytest.raises(ValueError, match="corrupted: the SHA-256 of metadata"):
        load_model(path)


def test_digests_keep_files_deterministic_and_out_of_the_meta(tmp_path: Path) -> None:
    first = _saved(tmp_path).read_bytes()
    assert _saved(tmp_path).read_bytes() == first
    assert "sha256" not in read_meta(tmp_path / "model.safetensors")
    with pytest.raises(ValueError, match="reserved"):
        save_model(
            build("edsr", **SMALL_EDSR),
            tmp_path / "x",
            arch="edsr",
            args=SMALL_EDSR,
            meta={"sha256": "x"},
        )


def test_a_file_without_digests_loads_unchecked(tmp_path: Path) -> None:
    """Files from before the digests (or from other tools) are accepted without the check."""
    model = build("edsr", **SMALL_EDSR)
    path = tmp_path / "old.safetensors"
    save_file(
        dict(model.state_dict()),
        str(path),
        metadata={"arch": "edsr", "args": json.dumps(SMALL_EDSR)},
    )
    assert verify_model_file(path) is False
    loaded, _ = load_model(path)
    assert all(
        torch.equal(a, b)
        for a, b in zip(loaded.state_dict().values(), model.state_dict().values(), strict=True)
    )


def test_a_model_file_asking_for_ten_million_blocks_is_refused_at_once(tmp_path: Path) -> None:
    path = tmp_path / "deep.safetensors"
    args = {"scale": 2, "n_resblocks": 10**7, "n_feats": 8}
    save_file({"w": torch.zeros(1)}, str(path), metadata={"arch": "edsr", "args": json.dumps(args)})
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"deep\.safetensors: model edsr.* the limit is"):
        load_model(path)
    assert time.perf_counter() - start < 1.0
