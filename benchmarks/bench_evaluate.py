"""``litesr evaluate`` of a network that runs at HR resolution, before and after its backends.

One release (``--release``, default AIL's VDSR-64 teacher) is imported from ``--reference``
at ``--scale`` and evaluated on one HR folder (``--set``, prepared once as the workflow
prepares it) by ``litesr -q evaluate --model`` (the workflow's form) at ``--threads``
threads (``OMP_NUM_THREADS`` and ``--threads``), each run in a fresh process, into a cache
folder of the benchmark's own:

- ``--backend torch``: the path evaluation took before it had backends (the same torch
  operations); ``--before SRC`` also runs an older checkout's ``src`` folder as it was;
- ``--backend auto`` with nothing cached: a set this small (under
  ``litesr.tools.backends.AUTO_MIN_PIXELS`` LR pixels) pays for no export and no probe;
- ``--backend onnxruntime``, first without the ONNX export in the cache (the run makes it),
  then with it;
- the speed probe alone (``Backends.ort_faster``, as a large run makes it), then
  ``--backend auto`` again: with the probe's timing in the cache, a small set uses it.

Each row shows the wall time and the CPU time of the process (user + system, all threads:
on a busy machine the CPU time is the steadier figure), the backend its log names for the
images (the probe's row: its two timings), and the set's mean PSNR-Y / RGB PSNR and their
difference from the first row's (``litesr.evaluate.run.EXACT_DB`` is the most allowed).
The header gives the load average before and after.

Example: ``nice -n 19 python benchmarks/bench_evaluate.py --threads 1 --out t.txt``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
PROBE = """
import sys
import torch
from litesr.models.store import load_model
from litesr.tools.backends import AUTO_MIN_PIXELS, Backends
from litesr.tools.locality import cache_by_file

model = load_model(sys.argv[1])[0].eval()
key = cache_by_file(model, sys.argv[1])
backends = Backends(model, sys.argv[1], key, choice="auto", threads=torch.get_num_threads(),
                    bf16=False, work_pixels=AUTO_MIN_PIXELS)
print("onnxruntime faster:", backends.ort_faster())
backends.close()
"""


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Run ``argv`` to its end: (wall seconds, CPU seconds of the process and its threads)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode})")
    return time.perf_counter() - start, usage.ru_utime + usage.ru_stime


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--release", default="ail_vdsr64_teacher")
    p.add_argument("--reference", type=Path, default=SHARED / "reference")
    p.add_argument("--set", type=Path, default=SHARED / "benchmark" / "Set5" / "x4" / "HR")
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--before", type=Path, help="an older checkout's src folder, run as well")
    p.add_argument("--out", type=Path, help="write the table here too")
    a = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-evaluate-") as tmp:
        text = run(a, Path(tmp))
    print(text)
    if a.out:
        a.out.write_text(text)


def run(a: argparse.Namespace, work: Path) -> str:
    """Every step in ``work``; the table as text."""
    from litesr.data.images import list_images
    from litesr.data.sources import prepare_set
    from litesr.evaluate.run import EXACT_DB
    from litesr.models.releases import import_weights, release_at

    data = prepare_set(list_images(a.set), a.scale, work / "set", progress=False)
    name = release_at(a.release, a.scale).name
    model = import_weights(name, a.reference, a.scale, work / "model.safetensors")
    env = os.environ | {
        "OMP_NUM_THREADS": str(a.threads),
        "MKL_NUM_THREADS": str(a.threads),
        "XDG_CACHE_HOME": str(work / "cache"),
    }
    evaluate = [sys.executable, "-m", "litesr.cli", "-q", "evaluate", "--model", str(model)]
    evaluate += ["--name", "m", "--data", str(data), "--set", "s", "--scale", str(a.scale)]
    evaluate += ["--device", "cpu"]
    steps: list[tuple[str, list[str] | str]] = [
        ("--backend torch (before: the same torch operations)", ["--backend", "torch"])
    ]
    if a.before:
        steps.append((f"before, as {a.before} ran it", "before"))
    steps += [
        ("--backend auto, nothing cached (a small set: torch)", ["--backend", "auto"]),
        ("--backend onnxruntime, export made by the run", ["--backend", "onnxruntime"]),
        ("--backend onnxruntime, export cached", ["--backend", "onnxruntime"]),
        ("speed probe alone (once per model file, threads)", "probe"),
        ("--backend auto, probe cached (onnxruntime)", ["--backend", "auto"]),
        ("--backend torch, again", ["--backend", "torch"]),
    ]
    load = os.getloadavg()
    rows = []
    for i, (label, extra) in enumerate(steps):
        tsv, log = work / f"{i}.tsv", work / f"{i}.log"
        argv, step_env = [*evaluate, "--out", str(tsv)], env
        argv[3:3] = ["--log-file", str(log)]
        if extra == "probe":
            argv = [sys.executable, "-c", PROBE, str(model)]
        elif extra == "before":
            step_env = env | {"PYTHONPATH": str(a.before.resolve())}
        else:
            argv += [*extra, "--threads", str(a.threads)]
        wall, cpu = timed(argv, step_env)
        row = {"run": label, "wall s": round(wall, 1), "CPU s": round(cpu, 1), "backend": ""}
        if extra == "probe":
            found = json.loads(next((work / "cache" / "litesr" / "speed").iterdir()).read_text())
            times = found["value"]
            row["backend"] = f"torch {times['torch']:.2f} s, ort {times['onnxruntime']:.2f} s"
        elif log.exists():
            used = sorted(set(re.findall(r"\) on (\w+);", log.read_text())))
            row["backend"] = ", ".join(used)
        if tsv.exists():
            scores = pd.read_csv(tsv, sep="\t")
            row |= {"PSNR-Y": scores.psnr_y.mean(), "RGB PSNR": scores.psnr_rgb.mean()}
        rows.append(row)
        print(row, flush=True)
    table = pd.DataFrame(rows)
    for column in ("PSNR-Y", "RGB PSNR"):
        table[f"Δ{column} dB"] = (table[column] - table[column].iloc[0]).abs()
        table[column] = table[column].map(lambda v: f"{v:.4f}" if v == v else "")
        table[f"Δ{column} dB"] = table[f"Δ{column} dB"].map(lambda v: f"{v:.1e}" if v == v else "")
    import onnxruntime
    import torch

    from litesr.tools.backends import cpu_name

    header = (
        f"litesr evaluate, {a.release} ×{a.scale} on {len(list_images(a.set))} images of "
        f"{a.set}, {a.threads} thread(s), fresh process per run\n"
        f"{cpu_name()}, {os.cpu_count()} CPUs, {platform.python_version()}, torch "
        f"{torch.__version__}, onnxruntime {onnxruntime.__version__}\n"
        f"load average before {load[0]:.1f}, after {os.getloadavg()[0]:.1f}; a backend may "
        f"move the set's PSNR by at most {EXACT_DB} dB\n"
    )
    return header + "\n" + table.to_string(index=False) + "\n"


if __name__ == "__main__":
    main()
