"""Peak CPU memory (RSS) of one forward pass, run as ``python -m litesr.measure.memprobe``.

Usage: ``python -m litesr.measure.memprobe MODEL_PATH H W [--threads N]``; prints one JSON
object ``{"rss_baseline_bytes": ..., "rss_peak_bytes": ...}`` on stdout.

The baseline is the current RSS after importing torch, loading the model and one warm-up
forward on a 32×32 input (large enough for RLFN's strided ESA pooling), so that thread
pools, kernel caches and allocator arenas already exist. On Linux the kernel's RSS
high-water mark (``VmHWM``) is then reset to the current RSS by writing ``5`` to
``/proc/self/clear_refs``, and read back after the H×W forward: peak − baseline is the
memory that forward needed (input, activations, output), not one-off start-up costs.
Where the reset is unavailable (not Linux), ``getrusage().ru_maxrss`` is used instead; it
cannot forget the start-up peak, so small inputs may then show a delta near zero.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
from pathlib import Path

import torch

from litesr.models.store import load_model

STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_bytes(field: str) -> int:
    """A ``kB`` field of /proc/self/status (``VmRSS``, ``VmHWM``) in bytes."""
    line = next(x for x in STATUS.read_text().splitlines() if x.startswith(field + ":"))
    return int(line.split()[1]) * 1024


def reset_peak_rss() -> int | None:
    """Reset the RSS high-water mark to the current RSS; return that RSS, None if impossible."""
    try:
        CLEAR_REFS.write_text("5")
        return _status_bytes("VmRSS")
    except OSError:
        return None


def max_rss_bytes() -> int:
    """Peak resident set size of this process (since the last reset), in bytes."""
    if STATUS.exists():
        return _status_bytes("VmHWM")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024  # bytes on macOS


def probe(model_path: str, lr_hw: tuple[int, int], threads: int = 1) -> dict[str, int]:
    """Load the model, warm it up, and return baseline and peak RSS around one forward."""
    torch.set_num_threads(threads)
    model, _ = load_model(model_path, device="cpu")  # in eval mode
    with torch.inference_mode():
        model(torch.rand(1, 3, 32, 32))
        x = torch.rand(1, 3, *lr_hw)
        baseline = reset_peak_rss() or max_rss_bytes()
        model(x)
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
