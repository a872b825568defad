"""VDSR (Kim et al., CVPR 2016) as used by AIL: a plain residual network on the bicubic Y channel.

The RGB interface upsamples the LR image with MATLAB-exact bicubic interpolation, converts it to
BT.601 YCbCr, refines Y with the network and recombines it with the bicubic Cb and Cr.

Releases (:mod:`litesr.models.releases`): AIL's. The authors' ``Net`` is pytorch-vdsr's:
``input`` conv 1→W + ReLU, 18 ``residual_layer.i.conv`` convs W→W + ReLU, ``output`` conv W→1,
no biases, and the output added to the input, the BT.601 Y channel in [0, 1] of the
bicubic-upsampled image: this network (``forward_y``); its RGB interface upsamples as the
authors' MATLAB-made test data do. The teacher and the plainly pre-trained student serve ×2,
×3 and ×4 (trained on all scales, as VDSR); each AIL student one scale.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from litesr.data.color import rgb_to_ycbcr, ycbcr_to_rgb
from litesr.data.resize_torch import upsample_bicubic
from litesr.models import register
from litesr.models.releases import Release, register_releases

AIL_DEPTH = 20


@register("vdsr")
class VDSR(nn.Module):
    """conv 1→W + ReLU, (depth − 2) × (conv W→W + ReLU), conv W→1, plus the input Y."""

    def __init__(self, scale: int, width: int = 64, depth: int = 20) -> None:
        super().__init__()
        if depth < 2:
            raise ValueError(f"VDSR depth must be >= 2, got {depth}")
        self.scale = scale
        self.head = nn.Conv2d(1, width, 3, padding=1, bias=False)
        self.body = nn.Sequential(
            *(
                layer
                for _ in range(depth - 2)
                for layer in (nn.Conv2d(width, width, 3, padding=1, bias=False), nn.ReLU())
            )
        )
        self.tail = nn.Conv2d(width, 1, 3, padding=1, bias=False)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward_y(self, y: Tensor) -> Tensor:
        """Refine an N×1×H×W bicubic-upsampled Y channel (the network proper)."""
        return y + self.tail(self.body(torch.relu(self.head(y))))

    def predict_y(self, x: Tensor) -> Tensor:
        """Predicted N×1×sH×sW Y channel from the N×3×h×w LR RGB image."""
        return self.forward_y(rgb_to_ycbcr(upsample_bicubic(x, self.scale))[:, :1])

    def forward(self, x: Tensor) -> Tensor:
        """SR RGB image: predicted Y with the bicubic Cb and Cr."""
        ycbcr = rgb_to_ycbcr(upsample_bicubic(x, self.scale))
        y = self.forward_y(ycbcr[:, :1])
        return ycbcr_to_rgb(torch.cat([y, ycbcr[:, 1:]], dim=1))


def ail_key_map(depth: int = AIL_DEPTH) -> dict[str, str]:
    """AIL's (pytorch-vdsr's) key names → our state-dict keys."""
    keys = {"input.weight": "head.weight"}
    # Our body is a Sequential of (conv, ReLU) pairs: the i-th conv is at index 2 i.
    keys |= {f"residual_layer.{i}.conv.weight": f"body.{2 * i}.weight" for i in range(depth - 2)}
    keys["output.weight"] = "tail.weight"
    return keys


def _ail(
    name: str, width: int, scales: tuple[int, ...], description: str, family: str | None = None
) -> Release:
    return Release(
        name=name,
        arch="vdsr",
        args={"width": width, "depth": AIL_DEPTH},
        scales=scales,
        key_map=ail_key_map(AIL_DEPTH),
        size=width,
        paper="AIL",
        description=description,
        family=family,
    )


register_releases(
    [
        _ail(
            "ail_vdsr64_teacher",
            64,
            (2, 3, 4),
            "AIL's VDSR-64 teacher (model/tea_vdsr.pth), one model for ×2, ×3 and ×4",
        ),
        _ail(
            "ail_vdsr13_plain",
            13,
            (2, 3, 4),
            "AIL's plainly pre-trained VDSR-13 student (model/pre_vdsr_f13.pth), all scales",
        ),
        *(
            _ail(
                f"ail_vdsr13_ail_x{s}",
                13,
                (s,),
                f"AIL's VDSR-13 student after its last round (model/ours_ail_r9_f13_s{s}.pth)",
                family="ail_vdsr13_ail",
            )
            for s in (2, 3, 4)
        ),
    ]
)
