"""MemSR memory benchmark: peak CPU inference memory and latency against output size.

For an EDSR teacher, a residual (EDSR-style) student and a plain student of the same width
and depth (random weights: memory and time do not depend on them), at ×2 and ×4, for outputs
from 240p to 4K: the peak RSS of one forward in a fresh process less its baseline after
loading, warm-up and making the input (``litesr.measure.cost.cpu_peak_memory_bytes``, i.e.
``litesr.measure.memprobe``), one timed forward (``cost.cpu_latency_ms``), and the floor:
the largest pair of consecutive activation maps (input and output of one layer, or a
shuffle's input and output) of the network, fp32. Sizes above ``--max-gmacs`` are skipped so
that the run stays under ~3 minutes on one CPU thread.

Example: ``python benchmarks/bench_memsr.py --out benchmarks/out/memsr_memory.tsv``; the
TSV feeds the ``memsr_memory`` figure (config key ``methods.memsr.memory``).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from litesr.measure import cost
from litesr.models import build
from litesr.models.store import save_model
from litesr.tsv import write_tsv

OUTPUTS = {"240p": (240, 320), "480p": (480, 640), "720p": (720, 1280), "1080p": (1080, 1920),
           "4K": (2160, 3840)}  # fmt: skip


def networks(scale: int, teacher_blocks: int, teacher_feats: int, width: int) -> dict:
    """Teacher, residual student and plain student (one hidden layer per teacher body
    feature, as MemSR's initialisation makes it: head, two per block, body end)."""
    depth = 2 * teacher_blocks + 2
    return {
        f"teacher EDSR {teacher_blocks}x{teacher_feats}": (
            "edsr", {"n_resblocks": teacher_blocks, "n_feats": teacher_feats}),
        f"residual student EDSR {teacher_blocks}x{width}": (
            "edsr", {"n_resblocks": teacher_blocks, "n_feats": width}),
        f"plain student {depth}x{width}": ("plain", {"widths": [width] * depth + [3 * scale**2]}),
    }  # fmt: skip


def floor_bytes(model: nn.Module, lr_hw: tuple[int, int]) -> int:
    """Largest input + output of one step (a conv, or a PixelShuffle), fp32: the two
    activation maps any layer-by-layer execution must hold at once."""
    sizes: list[int] = []

    def hook(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
        sizes.append(args[0].numel() + out.numel())

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, nn.Conv2d | nn.PixelShuffle)
    ]
    with torch.no_grad():
        out = model(torch.zeros(1, 3, *lr_hw))
    for h in handles:
        h.remove()
    if not any(isinstance(m, nn.PixelShuffle) for m in model.modules()):
        # functional shuffle (the plain arch): its input and output are both the output size
        sizes.append(2 * out.numel())
    return 4 * max(sizes)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--teacher", type=int, nargs=2, default=[4, 32], metavar=("BLOCKS", "F"))
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--max-gmacs", type=float, default=25.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/memsr_memory.tsv"))
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for scale in args.scales:
            for name, (arch, kw) in networks(scale, *args.teacher, args.width).items():
                model = build(arch, scale=scale, **kw).eval()
                path = Path(tmp) / f"{arch}{scale}{len(rows)}.safetensors"
                save_model(model, path, arch=arch, args={"scale": scale, **kw})
                for label, out_hw in OUTPUTS.items():
                    lr_hw = cost.lr_size_for_output(out_hw, scale=scale)
                    macs = cost.count_macs(model, (lr_hw[0] // 8, lr_hw[1] // 8)) * 64 / 1e9
                    row = {"network": name, "scale": scale, "output": label,
                           "out_mpix": out_hw[0] * out_hw[1] / 1e6,
                           "lr_hw": f"{lr_hw[0]}x{lr_hw[1]}", "gmacs": round(macs, 2)}  # fmt: skip
                    if macs > args.max_gmacs:
                        rows.append({**row, "peak_MiB": float("nan")})
                        continue
                    rss = cost.cpu_peak_memory_bytes(path, lr_hw, threads=args.threads)
                    floor = floor_bytes(model, lr_hw)
                    rows.append({
                        **row,
                        "peak_MiB": rss["inference_bytes"] / cost.MIB,
                        "floor_MiB": floor / cost.MIB,
                        "ratio": rss["inference_bytes"] / floor,
                        "latency_ms": cost.cpu_latency_ms(
                            model, lr_hw, threads=args.threads, warmup=0, repeats=1),
                    })  # fmt: skip
    table = pd.DataFrame(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_tsv(table, args.out)
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(table.drop(columns="lr_hw").to_string(index=False, float_format="{:.2f}".format))
    return table


if __name__ == "__main__":
    main()
