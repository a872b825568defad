"""``litesr upscale`` throughput, before and after its backends, threads and PNG options.

A batch of ``--images`` photographs (scikit-image's, resized to the LR of a ``--out-mp``
megapixel ×scale output) is upscaled by one model (``--model``, else DIPNet's architecture
with random weights) at ``--threads`` threads, once per configuration, each in a fresh
process; ``--rounds`` repeats the whole set, configurations interleaved:

- ``before``: what ``litesr upscale`` did before these options: torch, each PNG written at
  zlib level 6 before the next image starts (the old loop, re-created here);
- ``torch forward`` / ``onnxruntime forward``: the forward passes alone (uint8 in, uint8
  out, nothing written), the bare loops;
- ``after``: ``litesr.tools.upscale.upscale`` with its defaults (backend ``auto``, PNG level
  1 in a background thread), then with one default changed at a time: ``--backend torch``,
  ``--png-level 6``, ``--bf16``.

The ONNX export and the speed probe that ``auto`` needs are made first, into a temporary
cache folder (or ``--cache DIR``, which may hold them already), and timed apart (a first
run on a model pays them once). Each row shows the
wall time, the output megapixels per second, the CPU time (all threads), the peak memory
above the process's baseline (RSS high-water mark, as ``litesr.measure.memprobe``), the PNG
bytes, and how far its PNGs are from ``before``'s (largest difference in levels, share of
values that differ). With ``--quality SET`` (a prepared set folder with ``HR/`` and ``LR/``)
the fp32, onnxruntime and bf16 outputs are also scored on it (mean PSNR-Y).

Example: ``python benchmarks/bench_upscale.py --model dipnet.safetensors --threads 1``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

CONFIGS = {
    "before (torch, PNG 6 in the loop)": ("before", {}),
    "torch forward": ("forward", {"backend": "torch"}),
    "onnxruntime forward": ("forward", {"backend": "onnxruntime"}),
    "after (defaults)": ("upscale", {}),
    "after, --backend torch": ("upscale", {"backend": "torch"}),
    "after, --png-level 6": ("upscale", {"png_level": 6}),
    "after, --bf16": ("upscale", {"bf16": True}),
}
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "motorcycle_left", "hubble_deep_field")


def make_images(folder: Path, count: int, hw: tuple[int, int]) -> list[Path]:
    """``count`` photographs resized to ``hw`` (LR), as PNGs in ``folder``."""
    from skimage import data

    paths = []
    for i in range(count):
        name = PHOTOS[i % len(PHOTOS)]
        image = Image.fromarray(getattr(data, name)()).convert("RGB")
        paths.append(folder / f"{i}_{name}.png")
        image.resize((hw[1], hw[0]), Image.Resampling.BICUBIC).save(paths[-1])
    return paths


def run_config(kind: str, options: dict, model: str, images: list[Path], out: Path) -> dict:
    """One configuration in this process: seconds, CPU seconds, peak memory, PNG bytes."""
    import torch

    from litesr.data.images import read_image
    from litesr.measure.memprobe import max_rss_bytes, reset_peak_rss
    from litesr.models.store import load_model
    from litesr.tools.backends import OrtForward, cached_onnx
    from litesr.tools.upscale import super_resolve_whole, upscale

    threads = torch.get_num_threads()
    net = load_model(model)[0]
    forward = net
    if options.get("backend") == "onnxruntime":
        from litesr.digest import file_sha256

        forward = OrtForward(cached_onnx(model, file_sha256(model), out), threads)
    out.mkdir(parents=True, exist_ok=True)
    baseline = reset_peak_rss() or max_rss_bytes()
    wall, cpu = time.perf_counter(), time.process_time()
    if kind == "upscale":
        upscale(model, images, out, threads=threads, progress=False, **options)
    else:
        for path in images:
            sr = super_resolve_whole(net, read_image(path), torch.device("cpu"), forward)
            if kind == "before":
                Image.fromarray(sr).save(out / f"{path.stem}_x{net.scale}.png", format="PNG")
    return {
        "s": time.perf_counter() - wall,
        "cpu_s": time.process_time() - cpu,
        "peak_MB": (max_rss_bytes() - baseline) / 2**20,
        "png_MB": sum(p.stat().st_size for p in out.glob("*.png")) / 2**20,
    }


def child(args: list[str]) -> dict:
    """Run ``args`` (``--child ...``) in a fresh process with the same environment."""
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{args[1]} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def differences(pngs: list[Path], reference: list[Path]) -> tuple[int, float]:
    """Largest level difference and share of differing values, against ``reference``."""
    from litesr.data.images import read_image

    worst, differing, total = 0, 0, 0
    for got, want in zip(pngs, reference, strict=True):
        diff = np.abs(read_image(got).astype(int) - read_image(want).astype(int))
        worst, differing, total = (
            max(worst, int(diff.max())),
            differing + int((diff > 0).sum()),
            total + diff.size,
        )
    return worst, differing / total


def quality(model: str, folder: Path, threads: int) -> dict[str, float]:
    """Mean PSNR-Y on a prepared set of torch fp32, onnxruntime and torch bf16 outputs."""
    import torch

    from litesr.data.images import list_images, read_image, stored_grey
    from litesr.digest import file_sha256
    from litesr.evaluate.run import measure
    from litesr.models.store import load_model
    from litesr.tools.backends import OrtForward, bf16_forward, cached_onnx
    from litesr.tools.upscale import super_resolve_whole

    torch.set_num_threads(threads)
    net = load_model(model)[0]
    with tempfile.TemporaryDirectory() as tmp:
        forwards = {
            "torch fp32": net,
            "onnxruntime": OrtForward(cached_onnx(model, file_sha256(model), Path(tmp)), threads),
            "torch bf16": bf16_forward(net),
        }
        scores: dict[str, list[float]] = {name: [] for name in forwards}
        for hr_path in list_images(folder / "HR"):
            lr = read_image(folder / "LR" / hr_path.name)
            hr = read_image(hr_path)
            for name, forward in forwards.items():
                sr = super_resolve_whole(net, lr, torch.device("cpu"), forward)
                grey = stored_grey(hr_path)
                scores[name].append(measure(sr, hr, int(net.scale), grey=grey)["psnr_y"])
    return {name: float(np.mean(v)) for name, v in scores.items()}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, help="a litesr model (default: DIPNet, random)")
    p.add_argument("--images", type=int, default=4)
    p.add_argument("--out-mp", type=float, default=12.0, help="output megapixels per image")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--quality", type=Path, help="a prepared set folder (HR/, LR/) to score")
    p.add_argument("--cache", type=Path, help="XDG_CACHE_HOME to use (default: a new one)")
    p.add_argument("--child", nargs=4, help=argparse.SUPPRESS)  # CONFIG MODEL IMAGES OUT
    a = p.parse_args(argv)
    if a.child:
        name, model, images, out = a.child
        kind, options = CONFIGS[name]
        paths = [Path(x) for x in json.loads(images)]
        print(json.dumps(run_config(kind, options, model, paths, Path(out))))
        return

    os.environ["OMP_NUM_THREADS"] = str(a.threads)  # the children's torch and libgomp
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        os.environ["XDG_CACHE_HOME"] = str((a.cache or tmp_path / "cache").resolve())
        import torch

        from litesr.digest import file_sha256
        from litesr.models import build
        from litesr.models.rlfn import DIPNET_ARGS
        from litesr.models.store import load_model, save_model
        from litesr.tools import backends

        torch.set_num_threads(a.threads)
        model = a.model
        if model is None:
            torch.manual_seed(0)
            model = tmp_path / "dipnet.safetensors"
            save_model(
                build("rlfn", scale=4, **DIPNET_ARGS),
                model,
                arch="rlfn",
                args={"scale": 4, **DIPNET_ARGS},
            )
        net = load_model(model)[0]
        scale = int(net.scale)
        h = int(round((a.out_mp * 1e6 * 3 / 4) ** 0.5 / scale))
        w = int(round(h * 4 / 3))
        images = make_images(tmp_path, a.images, (h, w))
        key = file_sha256(model)
        started = time.perf_counter()
        onnx = backends.cached_onnx(model, key, tmp_path)
        export_s = time.perf_counter() - started
        started = time.perf_counter()
        probe = backends.ort_is_faster(net, backends.OrtForward(onnx, a.threads), key, a.threads)
        probe_s = time.perf_counter() - started

        rows = []
        for round_ in range(a.rounds):
            for name in CONFIGS:
                out = tmp_path / f"out-{round_}-{list(CONFIGS).index(name)}"
                found = child(
                    ["--child", name, str(model), json.dumps(list(map(str, images))), str(out)]
                )
                rows.append({"configuration": name, "round": round_, "out": out, **found})
                print(rows[-1], file=sys.stderr, flush=True)
        table = pd.DataFrame(rows)
        reference = sorted(table.out[0].glob("*.png"))
        table["max_diff"], table["differ"] = zip(
            *[
                differences(sorted(out.glob("*.png")), reference)
                if any(out.glob("*.png"))
                else (np.nan, np.nan)
                for out in table.out
            ],
            strict=True,
        )
        scores = quality(str(model), a.quality, a.threads) if a.quality else None

    table = table.groupby("configuration", sort=False).median(numeric_only=True).reset_index()
    mp = a.images * h * w * scale**2 / 1e6
    table["MP/s"] = mp / table["s"]
    table["vs before"] = table["s"] / table["s"].iloc[0]
    print(
        f"{Path(model).name if a.model else 'DIPNet (random weights)'} ×{scale}; {a.images} "
        f"images of {w}×{h} LR ({w * scale}×{h * scale} output, {mp / a.images:.1f} MP); "
        f"{a.threads} thread(s); {os.cpu_count()} CPUs, 1-min load average at the end "
        f"{os.getloadavg()[0]:.1f}; medians of {a.rounds} round(s)\n"
        f"one-time costs of a first run: ONNX export {export_s:.1f} s, speed probe "
        f"{probe_s:.1f} s (onnxruntime {probe['onnxruntime']:.3f} s, torch "
        f"{probe['torch']:.3f} s on {backends.PROBE_HW[0]}×{backends.PROBE_HW[1]}: "
        f"{'faster' if probe['faster'] else 'not faster'})\n"
    )
    columns = ["configuration", "s", "MP/s", "vs before", "cpu_s", "peak_MB", "png_MB"]
    print(table[[*columns, "max_diff", "differ"]].to_markdown(index=False, floatfmt=".3g"))
    if scores:
        print(
            f"\nmean PSNR-Y on {a.quality}: "
            + ", ".join(f"{name} {value:.3f} dB" for name, value in scores.items())
        )


if __name__ == "__main__":
    main()
