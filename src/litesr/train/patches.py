"""Training batches: random patches of HR/LR pairs held in memory as uint8, or a fixed set
of patches extracted once (with any per-patch tensors a method stores beside them)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from litesr.data.images import list_images, read_image

log = logging.getLogger(__name__)


class Sampler(Protocol):
    """What ``fit`` draws batches from: ``sample`` returns ``(lr, hr, *extras)`` (the task's
    ``loss`` arguments) from the generator alone; ``key`` names the content for checkpoints.

    Optional, for GPUs (see ``litesr.train.loader``): ``worker_safe = True`` says ``sample``
    reads host memory alone, so a DataLoader worker may draw ahead; ``to(device)`` returns the
    sampler drawing on that device.
    """

    key: str

    def sample(self, batch_size: int, gen: torch.Generator) -> tuple[torch.Tensor, ...]: ...


@dataclass(frozen=True)
class Pair:
    """One training image: HR and its bicubic LR, uint8 HxWx3."""

    name: str
    hr: np.ndarray
    lr: np.ndarray


def load_pairs(folder: Path, scale: int, lr_patch: int) -> list[Pair]:
    """Load ``folder/HR`` and ``folder/LR`` (same file names) and check their geometry.

    Images whose LR side is smaller than ``lr_patch`` are skipped with a warning; an error is
    raised when none is left.
    """
    folder = Path(folder)
    pairs: list[Pair] = []
    for hr_path in list_images(folder / "HR"):
        lr_path = folder / "LR" / hr_path.name
        if not lr_path.is_file():
            raise FileNotFoundError(f"{lr_path}: LR image missing for {hr_path}")
        hr, lr = read_image(hr_path), read_image(lr_path)
        if hr.shape[:2] != (lr.shape[0] * scale, lr.shape[1] * scale):
            raise ValueError(
                f"{hr_path}: HR size {hr.shape[:2]} is not ×{scale} of LR size {lr.shape[:2]}"
            )
        if min(lr.shape[:2]) < lr_patch:
            log.warning("%s: LR %s smaller than patch %d, skipped", hr_path, lr.shape[:2], lr_patch)
            continue
        pairs.append(Pair(hr_path.stem, hr, lr))
    if not pairs:
        raise ValueError(f"{folder}: no training image is at least {lr_patch} px (LR) on each side")
    return pairs


class PatchSampler:
    """Draws batches of aligned LR/HR patches with random flips and 90° rotations.

    All randomness comes from the ``torch.Generator`` passed to :meth:`sample`, so a
    checkpointed generator state reproduces the exact batch sequence.
    """

    worker_safe = True  # draws from numpy arrays alone

    def __init__(
        self,
        pairs: Sequence[Pair],
        scale: int,
        lr_patch: int,
        augment: bool = True,
        key: str = "",
    ):
        self.pairs, self.scale, self.lr_patch, self.augment = list(pairs), scale, lr_patch, augment
        self.key = key  # names the images' content; part of every training checkpoint's key

    def sample(self, batch_size: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(lr, hr)`` float tensors in [0, 1], shapes N×3×p×p and N×3×sp×sp."""
        p, s = self.lr_patch, self.scale
        lrs, hrs = [], []
        for _ in range(batch_size):
            pair = self.pairs[int(torch.randint(len(self.pairs), (1,), generator=gen))]
            h, w = pair.lr.shape[:2]
            y = int(torch.randint(h - p + 1, (1,), generator=gen))
            x = int(torch.randint(w - p + 1, (1,), generator=gen))
            lr = pair.lr[y : y + p, x : x + p]
            hr = pair.hr[y * s : (y + p) * s, x * s : (x + p) * s]
            if self.augment:
                flip = int(torch.randint(2, (1,), generator=gen))
                rot = int(torch.randint(4, (1,), generator=gen))
                lr, hr = _augment(lr, flip, rot), _augment(hr, flip, rot)
            lrs.append(lr)
            hrs.append(hr)
        return _to_tensor(np.stack(lrs)), _to_tensor(np.stack(hrs))


def extract_patches(
    sampler: PatchSampler, count: int, seed: int, chunk: int = 1024
) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` patches drawn once by ``sampler`` from a generator seeded with ``seed`` (its
    flips and rotations included), as uint8 ``(lr, hr)`` tensors N×3×p×p and N×3×sp×sp."""
    gen = torch.Generator().manual_seed(seed)
    lrs, hrs = [], []
    for start in range(0, count, chunk):
        lr, hr = sampler.sample(min(chunk, count - start), gen)
        lrs.append(_to_uint8(lr))
        hrs.append(_to_uint8(hr))
    return torch.cat(lrs), torch.cat(hrs)


class FixedPatchSampler:
    """Batches drawn uniformly, with replacement, from a fixed set of uint8 patches, as the
    authors' pre-extracted HDF5 files are used; ``extras`` are float tensors with one row per
    patch (a teacher's outputs) returned after ``(lr, hr)``. No augmentation at draw time:
    the set already holds the flips and rotations it was extracted with."""

    def __init__(
        self,
        lr: torch.Tensor,
        hr: torch.Tensor,
        extras: Sequence[torch.Tensor] = (),
        key: str = "",
    ) -> None:
        if any(len(t) != len(lr) for t in (hr, *extras)) or not len(lr):
            raise ValueError("a fixed patch set needs the same number (> 0) of lr, hr and extras")
        self.lr, self.hr, self.extras, self.key = lr, hr, list(extras), key

    def __len__(self) -> int:
        return len(self.lr)

    def to(self, device: torch.device) -> FixedPatchSampler:
        """The same set held on ``device``: batches are then indexed there (the indices still
        come from the CPU generator, so the draws are unchanged)."""
        return FixedPatchSampler(
            self.lr.to(device),
            self.hr.to(device),
            [t.to(device) for t in self.extras],
            key=self.key,
        )

    def sample(self, batch_size: int, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
        """``(lr, hr, *extras)`` of ``batch_size`` patches; lr and hr as floats in [0, 1]."""
        index = torch.randint(len(self.lr), (batch_size,), generator=gen)
        return (
            self.lr[index].float().div_(255),
            self.hr[index].float().div_(255),
            *(t[index] for t in self.extras),
        )


def _to_uint8(batch: torch.Tensor) -> torch.Tensor:
    return batch.mul(255).round_().to(torch.uint8)


def _augment(img: np.ndarray, flip: int, rot: int) -> np.ndarray:
    if flip:
        img = img[:, ::-1]
    return np.rot90(img, rot)


def _to_tensor(batch: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(batch.transpose(0, 3, 1, 2))).float().div_(255)
