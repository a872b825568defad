"""DIPNet CPU latency in one run: what re-parameterisation and pruning buy at inference.

Batch-1 fp32 CPU latency (``litesr.measure.cost.cpu_latency_ms``: median of ``--repeats``
timed forwards after one warm-up, ``--threads`` torch threads), with parameters and MACs, on a
256×256 LR input and on the LR of a 1280×720 output, for:

- the deployed student: ``--deployed`` (a model file, e.g. the ``dipnet-progressive`` model),
  else dipnet_cpu.yaml's student after one pruning round (44 features, middle widths 38);
- the official DIPNet architecture (``rlfn`` 44/38/16, 4 blocks, no biases);
- the unmerged RRB student (44 features, middle width 55, RRB expansion ``--expand``);
- RLFN at width 52 (6 blocks, biases), the network DIPNet starts from.

Weights are random (time does not depend on them) unless ``--deployed`` is given.
Example: ``python benchmarks/bench_dipnet.py`` (about a minute on one thread).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import torch

from litesr.measure.cost import count_macs, count_params, cpu_latency_ms, lr_size_for_output
from litesr.models import build
from litesr.models.rlfn import DIPNET_ARGS
from litesr.models.store import load_model

SCALE = 4


def networks(deployed: Path | None, expand: int) -> dict[str, torch.nn.Module]:
    """The compared networks, random weights except a given deployed model file."""
    torch.manual_seed(0)
    student = {"feature_channels": 44, "esa_channels": 16, "n_blocks": 4, "bias": False}
    nets = {
        "deployed student": load_model(deployed)[0]
        if deployed
        else build("rlfn", scale=SCALE, **student, block_widths=[[38, 38]] * 4),
        "official DIPNet arch": build("rlfn", scale=SCALE, **DIPNET_ARGS),
        f"unmerged RRB student (x{expand})": build(
            "rlfn", scale=SCALE, **student, mid_channels=55, rrb_expand=expand
        ),
        "RLFN width 52": build(
            "rlfn",
            scale=SCALE,
            feature_channels=52,
            mid_channels=52,
            esa_channels=16,
            n_blocks=6,
            bias=True,
        ),
    }
    return {name: net.eval() for name, net in nets.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deployed", type=Path, help="model file of the deployed student")
    parser.add_argument("--expand", type=int, default=256, help="RRB expansion width")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    a = parser.parse_args()
    sizes = {"256x256": (256, 256), "720p LR": lr_size_for_output((720, 1280), scale=SCALE)}
    rows = []
    for name, net in networks(a.deployed, a.expand).items():
        row: dict[str, object] = {"network": name, "params": count_params(net)}
        for label, hw in sizes.items():
            row[f"GMACs {label}"] = round(count_macs(net, hw) / 1e9, 2)
            row[f"CPU ms {label}"] = round(
                cpu_latency_ms(net, hw, threads=a.threads, warmup=1, repeats=a.repeats), 1
            )
        rows.append(row)
    print(f"CPU latency, batch 1, fp32, {a.threads} thread(s), median of {a.repeats}:")
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
