"""Time a training step and whole-image inference for every registered SR architecture.

For each architecture at a small and a paper size, prints parameters, MACs (one
multiply-accumulate counted once: FlopCounterMode FLOPs / 2) at the inference LR size, the
median time of one training step (forward, L1 loss, backward, Adam step on a batch of random
LR/HR patches) and the median batch-1 inference time on a whole image, on CPU and, where
present, on the GPU (NTIRE protocol, via ``litesr.measure.cost``).

Example: ``python benchmarks/bench_models.py --device cpu --lr-size 64 64 --batch 4``
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
import time

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from litesr.measure import cost
from litesr.models import available, build

# (label, constructor arguments besides scale) per architecture.
CONFIGS: dict[str, list[tuple[str, dict]]] = {
    "edsr": [("small 4x32", {"n_resblocks": 4, "n_feats": 32}), ("baseline 16x64", {})],
    "vdsr": [("small 8x32", {"depth": 8, "width": 32}), ("paper 20x64", {})],
    "rlfn": [
        ("DIPNet 44/38/16/4", {"feature_channels": 44, "mid_channels": 38, "n_blocks": 4}),
        ("paper 52/52/16/6", {}),
    ],
}


def train_step_ms(
    model: nn.Module, device: str, *, batch: int, patch: int, warmup: int = 2, repeats: int = 5
) -> float:
    """Median time (ms) of one L1 + Adam training step of a copy of ``model`` on ``device``."""
    model = copy.deepcopy(model).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    lr = torch.rand(batch, 3, patch, patch, device=device)
    hr = torch.rand(batch, 3, patch * model.scale, patch * model.scale, device=device)
    times = []
    for i in range(warmup + repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        F.l1_loss(model(lr), hr).backward()
        optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def bench(arch: str, label: str, kwargs: dict, args: argparse.Namespace, gpu: bool) -> dict:
    """One table row for ``build(arch, scale=args.scale, **kwargs)``."""
    model = build(arch, scale=args.scale, **kwargs).eval()
    lr_hw = tuple(args.lr_size)
    train = {"batch": args.batch, "patch": args.patch, "repeats": args.repeats}
    row = {
        "arch": arch,
        "config": label,
        "scale": args.scale,
        "params": cost.count_params(model),
        "GMACs": cost.count_macs(model, lr_hw) / 1e9,
        "train_cpu_ms": train_step_ms(model, "cpu", **train),
        "infer_cpu_ms": cost.cpu_latency_ms(
            model, lr_hw, threads=args.threads, warmup=1, repeats=args.repeats
        ),
        "train_gpu_ms": math.nan,
        "infer_gpu_ms": math.nan,
        "gpu_peak_MiB": math.nan,
    }
    if gpu:
        row["train_gpu_ms"] = train_step_ms(model, "cuda", **train)
        ms, peak = cost.gpu_latency_ms(model, lr_hw, repeats=args.repeats)
        row["infer_gpu_ms"], row["gpu_peak_MiB"] = ms, peak / cost.MIB
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda", "auto"], default="auto")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads")
    parser.add_argument(
        "--lr-size", type=int, nargs=2, metavar=("H", "W"), help="default: LR of a 720p output"
    )
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--batch", type=int, default=16, help="training batch size")
    parser.add_argument("--patch", type=int, default=48, help="training LR patch size")
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions (median)")
    args = parser.parse_args(argv)

    gpu = cost.use_cuda(args.device)
    args.lr_size = args.lr_size or cost.lr_size_for_output(scale=args.scale)
    torch.set_num_threads(args.threads)
    rows = [
        bench(arch, label, kwargs, args, gpu)
        for arch in available()
        for label, kwargs in CONFIGS.get(arch, [("default", {})])
    ]
    print(f"CPU: {cost.cpu_name()} ({args.threads} threads)")
    print(f"GPU: {torch.cuda.get_device_name() if gpu else 'none'}")
    h, w = args.lr_size
    print(
        f"inference: LR {h}x{w}, batch 1, fp32; training: batch {args.batch}, "
        f"LR patch {args.patch}; MACs at the inference size; medians of {args.repeats}"
    )
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.4g}"))


if __name__ == "__main__":
    main()
