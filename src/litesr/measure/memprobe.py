"""Peak CPU memory (RSS) of one forward pass, run as ``python -m litesr.measure.memprobe``.

Usage: ``python -m litesr.measure.memprobe MODEL_PATH H W [--threads N]``; prints one JSON
object ``{"rss_baseline_bytes": ..., "rss_peak_bytes": ...}`` on stdout.

Both numbers are ``getrusage(RUSAGE_SELF).ru_maxrss``, the process's resident-set
high-water mark. The baseline is read after importing torch, loading the model and
running one warm-up forward on a 32×32 input (large enough for
RLFN's strided ESA pooling): that warm-up makes oneDNN/OpenMP thread
pools, kernel caches and allocator arenas exist before the baseline, so that the
difference peak − baseline is the memory the H×W forward needs (activations, input and
output) rather than one-off start-up costs. Because ``ru_maxrss`` is a high-water mark,
a transient during loading larger than the weights can hide part of a small forward's
memory; for whole-image inputs the activations dominate.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys

import torch

from litesr.models.store import load_model


def max_rss_bytes() -> int:
    """Peak resident set size of this process so far, in bytes."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024  # KiB on Linux, bytes on macOS


def probe(model_path: str, lr_hw: tuple[int, int], threads: int = 1) -> dict[str, int]:
    """Load the model, warm it up, and return baseline and peak RSS around one forward."""
    torch.set_num_threads(threads)
    model, _ = load_model(model_path, device="cpu")
    model.eval()
    with torch.inference_mode():
        model(torch.rand(1, 3, 32, 32))
        baseline = max_rss_bytes()
        model(torch.rand(1, 3, *lr_hw))
        peak = max_rss_bytes()
    return {"rss_baseline_bytes": baseline, "rss_peak_bytes": peak}


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point: print the probe's result as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_path")
    parser.add_argument("height", type=int)
    parser.add_argument("width", type=int)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    print(json.dumps(probe(args.model_path, (args.height, args.width), args.threads)))


if __name__ == "__main__":
    main()
