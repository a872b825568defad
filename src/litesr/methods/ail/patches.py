"""AIL on a fixed patch set, as the authors train (patches pre-extracted into an HDF5 file).

The set is drawn once from the prepared training set with the ``patches`` options (count,
seed, and the HR side ``hr_patch``, else the round recipe's ``lr_patch``) and the recipe's
augmentation, so every variant of a run trains on the same patches. The teacher's Y output
of every patch is computed once and kept in ``<stages>/teacher_y.safetensors`` under a key
naming the patches and the teacher's file, so a resumed run reads it back; the AIL rounds
then never run the teacher.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

from litesr.atomic import atomic_path
from litesr.data.sources import data_fingerprint
from litesr.digest import file_sha256
from litesr.methods.ail.importance import student_input
from litesr.models.store import load_model
from litesr.train.patches import (
    FixedPatchSampler,
    PatchSampler,
    Sampler,
    extract_patches,
    load_pairs,
)
from litesr.train.run import sampler_for
from litesr.train.spec import TrainSpec

logger = logging.getLogger(__name__)

TEACHER_CACHE = "teacher_y.safetensors"


def lr_side(scale: int, spec: TrainSpec, hr_patch: int | None) -> int:
    """The LR patch side: ``hr_patch / scale`` (which must be whole), else the recipe's."""
    if hr_patch is None:
        return spec.lr_patch
    if hr_patch % scale:
        raise ValueError(f"ail.patches.hr_patch: {hr_patch} is not a multiple of scale {scale}")
    return hr_patch // scale


def fixed_patches(
    data: Path,
    scale: int,
    spec: TrainSpec,
    count: int,
    seed: int = 0,
    hr_patch: int | None = None,
) -> tuple[Tensor, Tensor, str]:
    """``count`` uint8 ``(lr, hr)`` patches of the prepared set ``data`` drawn from ``seed``
    (flipped and rotated when the recipe augments), HR side ``hr_patch`` or the recipe's
    ``lr_patch`` × ``scale``, and their key."""
    p = lr_side(scale, spec, hr_patch)
    lr, hr = extract_patches(
        PatchSampler(load_pairs(data, scale, p), scale, p, spec.augment), count, seed
    )
    key = f"{data_fingerprint(data)}|x{scale}|p{p}|a{spec.augment}|n{count}|s{seed}"
    return lr, hr, key


@torch.no_grad()
def teacher_outputs(
    teacher: nn.Module, lr: Tensor, scale: int, device: str | torch.device = "cpu", chunk: int = 256
) -> Tensor:
    """The teacher's Y output (float32, N×1×sp×sp, on the CPU) for uint8 LR patches ``lr``,
    computed from the same input as the task's: Y of the bicubic-upsampled patch."""
    teacher = teacher.to(device).eval()
    out = [
        teacher.forward_y(student_input(part.to(device).float().div_(255), scale)).cpu()
        for part in lr.split(chunk)
    ]
    return torch.cat(out)


def cached_teacher_outputs(
    teacher_file: Path, lr: Tensor, scale: int, key: str, cache: Path, device: str = "cpu"
) -> Tensor:
    """:func:`teacher_outputs` of the teacher in ``teacher_file``, read from ``cache`` when it
    was made for the same patches (``key``) and teacher file, else computed and saved there."""
    full_key = hashlib.sha256(f"{key}|{file_sha256(teacher_file)}".encode()).hexdigest()
    cache = Path(cache)
    if cache.is_file():
        try:
            with safe_open(cache, framework="pt") as handle:
                if (handle.metadata() or {}).get("key") == full_key:
                    logger.info("teacher outputs read from %s", cache)
                    return handle.get_tensor("teacher_y")
        except (SafetensorError, OSError) as err:
            logger.warning("%s is unreadable (%s); computing it again", cache, err)
    logger.info("computing the teacher's outputs on %d patches into %s", len(lr), cache)
    out = teacher_outputs(load_model(teacher_file)[0], lr, scale, device)
    with atomic_path(cache) as tmp:
        save_file({"teacher_y": out.contiguous()}, tmp, metadata={"key": full_key})
    return out


def round_sampler(
    *,
    variant: str,
    data: Path,
    scale: int,
    spec: TrainSpec,
    patches: dict[str, Any] | None,
    teacher: Path | None,
    stages: Path,
    device: str = "cpu",
) -> Sampler:
    """What every round of ``variant`` draws from: random patches of ``data`` without
    ``patches``; with it, the fixed set, plus the cached teacher outputs for ``ail``."""
    if patches is None:
        return sampler_for(data, scale, spec)
    lr, hr, key = fixed_patches(
        data, scale, spec, patches["count"], patches.get("seed", 0), patches.get("hr_patch")
    )
    if variant != "ail":
        return FixedPatchSampler(lr, hr, key=key)
    if teacher is None:
        raise ValueError("the 'ail' variant needs a teacher model file")
    outputs = cached_teacher_outputs(teacher, lr, scale, key, Path(stages) / TEACHER_CACHE, device)
    return FixedPatchSampler(lr, hr, [outputs], key=f"{key}|teacher {file_sha256(teacher)}")
