"""What produced a report: code version, configuration, packages and hardware."""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

PACKAGES = (
    "litesr",
    "torch",
    "numpy",
    "scipy",
    "scikit-image",
    "pillow",
    "safetensors",
    "pandas",
    "seaborn",
    "matplotlib",
    "snakemake",
    "papermill",
    "typst",
    "torch-pruning",
)


def git_commit() -> str:
    """HEAD commit, marked ``-dirty`` when tracked files differ from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return head + ("-dirty" if dirty else "")


def config_hash(config: dict[str, Any]) -> str:
    """SHA-256 of the configuration as canonical JSON."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def device_description() -> str:
    import torch  # not at module level: the workflow imports config_hash when it is parsed

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device"
    return f"{cpu}; {torch.get_num_threads()} torch threads; {gpu}"


def provenance(config: dict[str, Any]) -> dict[str, Any]:
    """Everything the provenance page shows."""
    return {
        "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "git commit": git_commit(),
        "config sha256": config_hash(config),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": device_description(),
        "packages": package_versions(),
    }
