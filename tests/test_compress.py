"""Channel pruning on the dependency graph; RepBlock and Conv3XC re-parameterisation."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from skimage import data
from torch import Tensor, nn

from litesr.compress import (
    Conv3XC,
    RepBlock,
    apply_pruning,
    conv_widths,
    identity_kernel,
    kept_channels,
    l1_norm,
    l2_norm,
    mask_channels,
    merge_1x1_then_valid,
    merge_parallel,
    merge_sequential_1x1,
    prune_channels,
    reparameterize,
    select_channels,
)
from litesr.measure.cost import count_macs, count_params
from litesr.models import build

LR_HW = (17, 23)  # odd on purpose; RLFN's ESA needs >= 15 px per side


def _randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights (std 0.05: outputs stay O(1)) and sizeable biases (std 0.5)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * (0.05 if p.dim() > 1 else 0.5))
    return model


def _edsr() -> nn.Module:
    return _randomize(build("edsr", scale=2, n_resblocks=2, n_feats=16))


def _rlfn() -> nn.Module:
    model = build(
        "rlfn",
        scale=3,
        feature_channels=16,
        mid_channels=16,
        esa_channels=8,
        n_blocks=2,
        bias=True,
    )
    return _randomize(model, seed=1)


EDSR_CONVS = ["head", "body.0.body.0", "body.1.body.0"]
RLFN_CONVS = [
    "conv_1",
    *(f"blocks.{i}.{c}" for i in range(2) for c in ("c1_r", "c2_r", "c5", "esa.conv1")),
]


@pytest.mark.parametrize(
    ("make", "convs", "importance"),
    [(_edsr, EDSR_CONVS, l2_norm), (_rlfn, RLFN_CONVS, l1_norm)],
    ids=["edsr", "rlfn"],
)
def test_pruned_equals_masked(make, convs, importance) -> None:
    model = make()
    x = torch.rand(1, 3, *LR_HW, generator=torch.Generator().manual_seed(2))
    removed = select_channels(model, convs, 0.5, x, importance)
    assert set(removed) == set(convs)
    widths = conv_widths(model)
    assert all(len(idxs) == widths[name] // 2 for name, idxs in removed.items())

    masked = mask_channels(copy.deepcopy(model), removed, x)
    pruned = apply_pruning(copy.deepcopy(model), removed, x)
    before, after = conv_widths(model), conv_widths(pruned)
    for name in convs:
        assert after[name] == before[name] // 2
    assert count_params(pruned) < count_params(model)
    assert count_macs(pruned, LR_HW) < count_macs(model, LR_HW)

    with torch.no_grad():
        reference, out, expected = model(x), pruned(x), masked(x)
    scale = model.scale
    assert out.shape == (1, 3, LR_HW[0] * scale, LR_HW[1] * scale)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
    assert (reference - expected).abs().max() > 1e-2  # the mask did change something


def test_edsr_skips_and_tail_stay_consistent() -> None:
    model = _edsr()
    x = torch.rand(1, 3, *LR_HW)
    model.train()
    prune_channels(model, EDSR_CONVS, 0.5, x)
    assert model.training  # tracing does not leave the model in eval mode
    widths = conv_widths(model)
    # head, every ResBlock's last conv and body_end are summed into one residual stream
    stream = {widths[n] for n in ("head", "body.0.body.2", "body.1.body.2", "body_end")}
    assert stream == {8}
    assert model.upsample[0].in_channels == 8
    assert model.body[1].body[0].in_channels == 8
    assert widths["upsample.0"] == 4 * 16  # conv feeding the PixelShuffle untouched
    assert widths["tail"] == 3 and model.head.in_channels == 3


def test_rlfn_skips_esa_and_tail_stay_consistent() -> None:
    model = _rlfn()
    x = torch.rand(1, 3, *LR_HW)
    prune_channels(model, ["conv_1", "blocks.0.c5"], {"conv_1": 10, "blocks.0.c5": 6}, x)
    w = conv_widths(model)
    # head skip (conv_2 + conv_1) and block 0's local skip (c3_r + its input)
    assert w["conv_1"] == w["conv_2"] == w["blocks.0.c3_r"] == 10
    assert model.blocks[0].c5.in_channels == model.upsampler[0].in_channels == 10
    # block 0's output: c5 and the ESA mask conv4 (x * sigmoid(mask)), block 1's local skip
    assert w["blocks.0.c5"] == w["blocks.0.esa.conv4"] == w["blocks.1.c3_r"] == 6
    assert model.blocks[0].esa.conv1.in_channels == model.blocks[1].c1_r.in_channels == 6
    assert w["blocks.1.c5"] == w["blocks.1.esa.conv4"] == 16  # not coupled to either
    assert w["upsampler.0"] == 3 * 3**2
    assert model(x).shape == (1, 3, LR_HW[0] * 3, LR_HW[1] * 3)


@pytest.mark.parametrize(
    ("make", "name"),
    [(_edsr, "tail"), (_edsr, "upsample.0"), (_rlfn, "upsampler.0"), (_edsr, "body.0")],
)
def test_protected_convs_refused(make, name) -> None:
    with pytest.raises(ValueError, match=repr(name)):
        select_channels(make(), [name], 0.5, torch.rand(1, 3, *LR_HW))


def test_coupled_names_share_one_entry() -> None:
    model, x = _edsr(), torch.rand(1, 3, *LR_HW)
    removed = select_channels(model, ["head", "body_end"], 0.25, x)
    assert list(removed) == ["head"] and len(removed["head"]) == 4
    with pytest.raises(ValueError, match="different target width"):
        select_channels(model, ["head", "body_end"], {"head": 8, "body_end": 4}, x)
    with pytest.raises(ValueError, match="coupled"):
        apply_pruning(model, {"head": [0], "body_end": [1]}, x)


def _toy() -> nn.Sequential:
    """conv 3→6 (prunable), ReLU, conv 6→3 (the output)."""
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 3, 3, padding=1))


def test_norms_pick_the_expected_filters() -> None:
    model = _toy()
    with torch.no_grad():
        w = model[0].weight
        w.fill_(1.0)
        w[1] = 0.0
        w[4] = 0.0
        w[2] = 0.0
        w[2, 0, 0, 0] = 6.0  # L1 6, L2 6
        w[5] *= 0.25  # L1 6.75, L2 1.3 (the other filters: L1 27, L2 5.2)
    x = torch.rand(1, 3, 8, 8)
    assert select_channels(model, ["0"], {"0": 3}, x, l1_norm) == {"0": [1, 2, 4]}
    assert select_channels(model, ["0"], {"0": 3}, x, l2_norm) == {"0": [1, 4, 5]}
    pruned = prune_channels(copy.deepcopy(model), ["0"], {"0": 3}, x, l2_norm)
    torch.testing.assert_close(pruned[0].weight, model[0].weight[[0, 2, 3]])
    torch.testing.assert_close(pruned[2].weight, model[2].weight[:, [0, 2, 3]])


class _TwoBranch(nn.Module):
    """``out(a(x) + b(x))``: a and b are coupled through the addition."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 4, 1), nn.Conv2d(3, 4, 1)
        self.out = nn.Conv2d(4, 3, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.a(x) + self.b(x))


def test_coupled_scores_are_summed() -> None:
    model = _TwoBranch()
    with torch.no_grad():
        model.a.weight.copy_(torch.tensor([0.0, 2.0, 2.0, 1.0]).view(4, 1, 1, 1).expand(4, 3, 1, 1))
        model.b.weight.copy_(torch.tensor([3.0, 0.0, 2.0, 1.0]).view(4, 1, 1, 1).expand(4, 3, 1, 1))
    # a alone would drop channel 0, b alone channel 1; the sums are 3, 2, 4, 2
    removed = select_channels(model, ["a"], {"a": 2}, torch.rand(1, 3, 4, 4), l1_norm)
    assert removed == {"a": [1, 3]}


@pytest.mark.parametrize(
    ("n", "ratio", "round_to", "kept"),
    [(16, 0.5, 1, 8), (16, 0.5, 3, 9), (16, 0.0, 4, 16), (16, 0.99, 1, 1), (16, 0.99, 4, 4)],
)
def test_kept_channels(n, ratio, round_to, kept) -> None:
    assert kept_channels(n, ratio, round_to) == kept


def test_kept_channels_rejects_bad_ratio() -> None:
    with pytest.raises(ValueError, match="ratio"):
        kept_channels(16, 1.0)


# --- re-parameterisation -----------------------------------------------------------------


def _astronaut(hw: tuple[int, int] = (24, 31)) -> Tensor:
    image = data.astronaut()[100 : 100 + hw[0], 180 : 180 + hw[1]]
    return torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0


@pytest.mark.parametrize(
    ("in_ch", "out_ch", "bias", "expand"),
    [(8, 8, True, 256), (8, 8, False, 32), (3, 8, True, 32), (8, 5, False, 256)],
)
def test_repblock_merge_is_exact(in_ch, out_ch, bias, expand) -> None:
    block = _randomize(RepBlock(in_ch, out_ch, expand=expand, bias=bias), seed=in_ch + out_ch)
    assert block.identity == (in_ch == out_ch)
    merged = block.merge()
    assert merged.kernel_size == (3, 3) and merged.padding == (1, 1)
    assert merged.weight.shape == (out_ch, in_ch, 3, 3)
    assert (merged.bias is not None) == bias
    x = torch.randn(2, in_ch, 11, 13, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():  # full maps: border pixels included
        torch.testing.assert_close(merged(x), block(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("out_ch", [3, 16])
def test_repblock_merge_on_an_image(out_ch) -> None:
    block = _randomize(RepBlock(3, out_ch, bias=True), seed=out_ch)
    x = _astronaut()
    with torch.no_grad():
        expected = block(x)
        out = block.merge()(x)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    border = torch.ones_like(expected, dtype=torch.bool)
    border[..., 1:-1, 1:-1] = False
    torch.testing.assert_close(out[border], expected[border], atol=1e-5, rtol=1e-5)


def test_merge_helpers() -> None:
    torch.manual_seed(4)
    c3, c1, c1b = nn.Conv2d(4, 6, 3, padding=1), nn.Conv2d(6, 5, 1), nn.Conv2d(4, 5, 1)
    _randomize(nn.ModuleList([c3, c1, c1b]), seed=5)
    x = torch.randn(1, 4, 9, 7)
    with torch.no_grad():
        torch.testing.assert_close(merge_sequential_1x1(c3, c1)(x), c1(c3(x)), atol=1e-5, rtol=0)
        seq = merge_sequential_1x1(c3, c1)
        torch.testing.assert_close(
            merge_parallel([seq, c1b])(x), seq(x) + c1b(x), atol=1e-5, rtol=0
        )
        eye = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        eye.weight.copy_(identity_kernel(4))
        torch.testing.assert_close(eye(x), x)
    with pytest.raises(ValueError):
        merge_sequential_1x1(c1, c3)  # 1×1 then 3×3: not exact at the borders, refused
    with pytest.raises(ValueError):
        merge_parallel([c3, nn.Conv2d(4, 6, 3, stride=2, padding=1)])


@pytest.mark.parametrize(("in_ch", "out_ch", "gain"), [(8, 8, 2), (3, 8, 2), (8, 5, 1), (6, 6, 3)])
def test_conv3xc_merge_is_exact(in_ch, out_ch, gain) -> None:
    """SPAN's training form against its merged deploy form, border pixels included, within
    fp32 rounding."""
    block = _randomize(Conv3XC(in_ch, out_ch, gain=gain), seed=in_ch + out_ch + gain)
    merged = block.merge()
    assert merged.kernel_size == (3, 3) and merged.padding == (1, 1)
    assert merged.weight.shape == (out_ch, in_ch, 3, 3) and merged.bias is not None
    x = torch.randn(2, in_ch, 11, 13, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(merged(x), block(x), atol=1e-5, rtol=1e-5)


def test_conv3xc_merge_on_an_image_keeps_its_border() -> None:
    block = _randomize(Conv3XC(3, 16), seed=7)
    x = _astronaut()
    with torch.no_grad():
        expected = block(x)
        out = block.merge()(x)
    border = torch.ones_like(expected, dtype=torch.bool)
    border[..., 1:-1, 1:-1] = False
    torch.testing.assert_close(out[border], expected[border], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_merge_1x1_then_valid() -> None:
    """1×1 then an unpadded 3×3 on the zero-padded input: the 1×1's bias reaches the border
    as the merged conv's bias does, so the merge is exact (a 'same' 3×3 is refused)."""
    c1, c3 = nn.Conv2d(4, 6, 1), nn.Conv2d(6, 5, 3)
    _randomize(nn.ModuleList([c1, c3]), seed=8)
    x = torch.randn(1, 4, 9, 7)
    with torch.no_grad():
        expected = c3(c1(F.pad(x, [1, 1, 1, 1])))
        torch.testing.assert_close(merge_1x1_then_valid(c1, c3)(x), expected, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="unpadded"):
        merge_1x1_then_valid(c1, nn.Conv2d(6, 5, 3, padding=1))
    with pytest.raises(ValueError, match="unpadded"):
        merge_1x1_then_valid(nn.Conv2d(4, 6, 3, padding=1), c3)


def test_reparameterize_model() -> None:
    model = nn.Sequential(
        RepBlock(3, 8, expand=32),
        nn.LeakyReLU(0.05),
        nn.Sequential(RepBlock(8, 8, expand=32), nn.ReLU(), RepBlock(8, 8, expand=32, bias=False)),
        Conv3XC(8, 8),
        RepBlock(8, 3, expand=32),
    )
    _randomize(model, seed=6)
    x = _astronaut()
    with torch.no_grad():
        expected = model(x)
        assert reparameterize(model) is model
        out = model(x)
    assert not any(isinstance(m, RepBlock | Conv3XC) for m in model.modules())
    assert sum(isinstance(m, nn.Conv2d) for m in model.modules()) == 5
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
