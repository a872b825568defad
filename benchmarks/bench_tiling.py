"""Peak memory and time of whole-image against tiled upscaling, at growing output sizes.

For each output size, a random uint8 LR image is upscaled by a small EDSR (×2, 4 blocks of
16 features) twice, each time in a fresh process: whole (``litesr.evaluate.run.super_resolve``,
what ``litesr upscale`` does without a limit) and tiled (``super_resolve_tiled`` with the tile
that ``tile_for_memory`` picks for ``--max-memory``). Peak memory is measured the way
``litesr.measure.memprobe`` measures it, with its functions: the process loads the model,
runs a warm-up forward, makes the LR image, resets the kernel's RSS high-water mark, upscales,
and reads the mark back; the table shows peak − baseline (what the upscaling needed: float
input, activations, uint8 output). ``est_MB`` is ``tile_for_memory``'s estimate of the same.
The tiled output is checked to equal the whole-image output (SHA-256 of the PNG pixels).

Example: ``python benchmarks/bench_tiling.py --sizes 1 4 9 16 25 --max-memory 256``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from litesr.evaluate.run import super_resolve
from litesr.measure.memprobe import max_rss_bytes, reset_peak_rss
from litesr.models import build
from litesr.models.store import load_model, save_model
from litesr.tools.budget import bytes_per_pixel, tile_for_memory
from litesr.tools.locality import analyse, receptive_radius
from litesr.tools.tiles import plan_tiles
from litesr.tools.upscale import super_resolve_tiled

ARCH, ARGS = "edsr", {"scale": 2, "n_resblocks": 4, "n_feats": 16}


def worker(model_path: str, h: int, w: int, max_memory_mb: float | None, threads: int) -> dict:
    """Upscale one random h×w image (tiled when ``max_memory_mb`` is given) in this process."""
    torch.set_num_threads(threads)
    model, _ = load_model(model_path)
    scale = model.scale
    with torch.inference_mode():
        model(torch.rand(1, 3, 32, 32))  # warm-up, as memprobe does
    lr = np.random.default_rng(0).integers(0, 256, (h, w, 3), np.uint8)
    out_bytes = h * w * 3 * scale**2  # the uint8 SR image
    analyse(model)  # one-time locality probe (float64), before the baseline
    per_pixel = bytes_per_pixel(model)
    if max_memory_mb is None:  # + the float32 LR input
        tile, est = None, (per_pixel * h * w + h * w * 12 + out_bytes) / 2**20
    else:
        tile = tile_for_memory(model, max_memory_mb, image_hw=(h, w))
        window = plan_tiles(model, (h, w), tile, receptive_radius(model))[0].window
        area = (window[0].stop - window[0].start) * (window[1].stop - window[1].start)
        est = (per_pixel * area + out_bytes) / 2**20
    baseline = reset_peak_rss() or max_rss_bytes()
    start = time.perf_counter()
    if tile is None:
        sr = super_resolve(model, lr, torch.device("cpu"))
    else:
        sr = super_resolve_tiled(model, lr, torch.device("cpu"), tile)
    seconds = time.perf_counter() - start
    peak = max_rss_bytes()
    return {
        "tile": tile,
        "time_s": seconds,
        "peak_MB": (peak - baseline) / 2**20,
        "est_MB": est,
        "sha": hashlib.sha256(sr.tobytes()).hexdigest()[:12],
    }


def run_worker(model_path: Path, h: int, w: int, max_memory: float | None, threads: int) -> dict:
    limit = "whole" if max_memory is None else str(max_memory)
    cmd = [sys.executable, __file__, "--worker", str(model_path), str(h), str(w), limit]
    cmd += ["--threads", str(threads)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"worker failed ({' '.join(cmd)}):\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=float, nargs="+", default=[1, 4, 9, 16, 25], help="output MP")
    p.add_argument("--max-memory", type=float, default=256, help="MB, for the tiled runs")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)  # MODEL H W (MB | whole)
    a = p.parse_args(argv)
    if a.worker:
        model, h, w, limit = a.worker
        mb = None if limit == "whole" else float(limit)
        print(json.dumps(worker(model, int(h), int(w), mb, a.threads)))
        return

    torch.manual_seed(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        model_path = Path(tmp) / "edsr.safetensors"
        save_model(build(ARCH, **ARGS), model_path, arch=ARCH, args=ARGS)
        scale = ARGS["scale"]
        for mp in a.sizes:
            # LR 4:3 with an output of about `mp` megapixels
            h = int(round((mp * 1e6 * 3 / 4) ** 0.5 / scale))
            w = int(round(h * 4 / 3))
            for mode, limit in (("whole", None), ("tiled", a.max_memory)):
                r = run_worker(model_path, h, w, limit, a.threads)
                rows.append(
                    {
                        "output": f"{h * scale}×{w * scale}",
                        "out_MP": h * w * scale**2 / 1e6,
                        "mode": mode if limit is None else f"tiled ≤{limit:g} MB",
                        "tile": r["tile"] or "",
                        "time_s": r["time_s"],
                        "peak_MB": r["peak_MB"],
                        "est_MB": r["est_MB"],
                        "sha": r["sha"],
                    }
                )
                print(rows[-1], file=sys.stderr, flush=True)
    table = pd.DataFrame(rows)
    same = table.groupby("output", sort=False)["sha"].nunique().eq(1).all()
    print(
        f"{ARCH} {ARGS}, {a.threads} threads; peak_MB = peak RSS − baseline (memprobe's "
        f"method); tiled output identical to whole: {bool(same)}\n"
    )
    print(table.drop(columns="sha").to_markdown(index=False, floatfmt=".1f"))


if __name__ == "__main__":
    main()
