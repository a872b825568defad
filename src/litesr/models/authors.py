"""Import the papers' authors' released weights into our architectures, as litesr model files.

The reference folder (``../shared/data/reference`` beside a checkout) holds the authors'
state dicts as safetensors files, under the authors' own key names. Each known release names
its file, our architecture and its arguments, the scales it serves, and an explicit map from
the authors' keys to our state-dict keys. :func:`import_weights` checks every key and shape
before loading, then writes a regular model file with :func:`litesr.models.store.save_model`,
so the authors' networks go through the same evaluation, cost and report steps as ours.

- **AIL (VDSR).** The authors' ``Net`` is pytorch-vdsr's: ``input`` conv 1→W + ReLU, 18
  ``residual_layer.i.conv`` convs W→W + ReLU, ``output`` conv W→1, no biases, and the output
  added to the input, which is the BT.601 Y channel in [0, 1] of the bicubic-upsampled image.
  That is our ``vdsr`` arch (``forward_y``); its RGB interface upsamples with MATLAB-exact
  bicubic, as the authors' MATLAB-made test data do. The teacher and the plainly pre-trained
  student serve ×2, ×3 and ×4 (trained on all scales, as VDSR); each AIL student one scale.
- **DIPNet.** The deployed ×4 network is our ``rlfn`` arch at 44 / 38 / 16 channels and four
  blocks, with no biases in the main convolutions (the release has none) and biased ESA convs;
  RGB in [0, 1]. The authors' ``block_{i}`` (from 1) is our ``blocks.{i-1}``.
"""

from __future__ import annotations

import argparse
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from safetensors import SafetensorError, safe_open

from litesr.models import build
from litesr.models.store import save_model
from litesr.tsv import write_tsv

VDSR_DEPTH = 20
DIPNET_ARGS: dict[str, Any] = {
    "feature_channels": 44,
    "mid_channels": 38,
    "esa_channels": 16,
    "n_blocks": 4,
    "bias": False,
}


def vdsr_key_map(depth: int = VDSR_DEPTH) -> dict[str, str]:
    """AIL's (pytorch-vdsr's) key names → our ``vdsr`` state-dict keys."""
    keys = {"input.weight": "head.weight"}
    # Our body is a Sequential of (conv, ReLU) pairs: the i-th conv is at index 2 i.
    keys |= {f"residual_layer.{i}.conv.weight": f"body.{2 * i}.weight" for i in range(depth - 2)}
    keys["output.weight"] = "tail.weight"
    return keys


def dipnet_key_map(n_blocks: int = 4, bias: bool = False) -> dict[str, str]:
    """DIPNet's key names → our ``rlfn`` state-dict keys (ESA convs always have biases)."""
    params = ("weight", "bias") if bias else ("weight",)
    keys: dict[str, str] = {}
    for conv in ("conv_1", "conv_2", "upsampler.0"):
        keys |= {f"{conv}.{p}": f"{conv}.{p}" for p in params}
    for i in range(1, n_blocks + 1):
        for conv in ("c1_r", "c2_r", "c3_r", "c5"):
            keys |= {f"block_{i}.{conv}.{p}": f"blocks.{i - 1}.{conv}.{p}" for p in params}
        for conv in ("conv1", "conv_f", "conv2", "conv3", "conv4"):
            keys |= {
                f"block_{i}.esa.{conv}.{p}": f"blocks.{i - 1}.esa.{conv}.{p}"
                for p in ("weight", "bias")
            }
    return keys


@dataclass(frozen=True)
class Release:
    """One released set of weights: its file, our arch and args, its scales and its key map."""

    file: str
    arch: str
    args: dict[str, Any]
    scales: tuple[int, ...]
    key_map: dict[str, str] = field(repr=False)
    paper: str

    @property
    def size(self) -> int:
        """The width the catalog groups by: VDSR's width, RLFN's feature channels."""
        return int(self.args["width"] if self.arch == "vdsr" else self.args["feature_channels"])


def _vdsr(file: str, width: int, scales: tuple[int, ...]) -> Release:
    return Release(
        file=file,
        arch="vdsr",
        args={"width": width, "depth": VDSR_DEPTH},
        scales=scales,
        key_map=vdsr_key_map(VDSR_DEPTH),
        paper="AIL",
    )


RELEASES: dict[str, Release] = {
    "ail_vdsr64_teacher": _vdsr("ail_vdsr64_teacher.safetensors", 64, (2, 3, 4)),
    "ail_vdsr13_plain": _vdsr("ail_vdsr13_plain.safetensors", 13, (2, 3, 4)),
    **{
        f"ail_vdsr13_ail_x{s}": _vdsr(f"ail_vdsr13_ail_x{s}.safetensors", 13, (s,))
        for s in (2, 3, 4)
    },
    "dipnet_x4": Release(
        file="dipnet_x4.safetensors",
        arch="rlfn",
        args=dict(DIPNET_ARGS),
        scales=(4,),
        key_map=dipnet_key_map(DIPNET_ARGS["n_blocks"], DIPNET_ARGS["bias"]),
        paper="DIPNet",
    ),
}


# Releases made of one file per scale, by the name the workflow gives the set of them.
FAMILIES = {"ail_vdsr13_ail": "ail_vdsr13_ail_x{scale}", "dipnet": "dipnet_x{scale}"}


def release_file(name: str) -> str:
    """The file name of a release or family, ``{scale}`` standing for the scale."""
    return FAMILIES.get(name, name) + ".safetensors"


def release_at(name: str, scale: int) -> Release:
    """The release (or the member of family ``name``) that serves ``scale``; a ValueError
    names the scales it serves otherwise."""
    key = FAMILIES.get(name, name).format(scale=scale)
    if key in RELEASES and scale in RELEASES[key].scales:
        return RELEASES[key]
    if name not in RELEASES and name not in FAMILIES:
        known = sorted({*RELEASES, *FAMILIES})
        raise ValueError(f"unknown release {name!r}; known: {', '.join(known)}")
    served = [s for s in (2, 3, 4) if FAMILIES.get(name, name).format(scale=s) in RELEASES]
    served = [s for s in served if s in RELEASES[FAMILIES.get(name, name).format(scale=s)].scales]
    raise ValueError(
        f"the authors released {name!r} for scale(s) {served} only, not ×{scale}: "
        f"leave it out of methods.authors.releases or leave ×{scale} out of scales"
    )


def get_release(name: str) -> Release:
    """The known release ``name``; ``ValueError`` listing the known ones otherwise."""
    if name not in RELEASES:
        raise ValueError(f"unknown release {name!r}; known: {', '.join(sorted(RELEASES))}")
    return RELEASES[name]


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_listed_hash(path: Path, digest: str) -> None:
    """Compare with the folder's SHA256SUMS where it lists the file (nothing to do otherwise)."""
    sums = path.parent / "SHA256SUMS"
    if not sums.is_file():
        return
    for line in sums.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("*") == path.name and parts[0] != digest:
            raise ValueError(f"{path}: SHA-256 {digest} differs from {sums}'s {parts[0]}")


def convert_state(rel: Release, path: Path, scale: int) -> tuple[torch.nn.Module, dict]:
    """Our model for ``rel`` at ``scale`` with the authors' tensors in ``path`` loaded.

    Every key of the file must be in the release's key map and every mapped key in the file,
    and every tensor must have the shape of our parameter: otherwise a ``ValueError`` names
    the file and the key.
    """
    args = {"scale": scale, **rel.args}
    model = build(rel.arch, **args)
    ours = model.state_dict()
    unmapped = sorted(set(rel.key_map.values()) ^ set(ours))
    if unmapped:  # the table and the architecture disagree: a bug here, not in the file
        raise ValueError(f"{path.name}: key map does not cover {rel.arch}{args}: {unmapped}")
    try:
        with safe_open(path, framework="pt") as f:
            theirs = set(f.keys())
            unexpected = sorted(theirs - set(rel.key_map))
            if unexpected:
                raise ValueError(f"{path}: unexpected key {unexpected[0]!r} ({unexpected})")
            missing = sorted(set(rel.key_map) - theirs)
            if missing:
                raise ValueError(f"{path}: missing key {missing[0]!r} ({missing})")
            state = {}
            for key, our_key in rel.key_map.items():
                tensor = f.get_tensor(key)
                if tensor.shape != ours[our_key].shape:
                    raise ValueError(
                        f"{path}: key {key!r} has shape {tuple(tensor.shape)}, but our "
                        f"{rel.arch} {our_key!r} needs {tuple(ours[our_key].shape)}"
                    )
                if not tensor.is_floating_point():
                    raise ValueError(f"{path}: key {key!r} has non-float dtype {tensor.dtype}")
                state[our_key] = tensor.to(ours[our_key].dtype)
    except SafetensorError as err:
        raise ValueError(f"{path} is not a readable safetensors file: {err}") from err
    model.load_state_dict(state, strict=True)
    return model.eval(), args


def import_weights(release: str, reference_dir: Path, scale: int, out: Path) -> Path:
    """Write the authors' weights of ``release`` for ``scale`` as a litesr model ``out``.

    The file's meta: ``method`` "authors", ``variant`` the release, ``source`` the file name,
    ``sha256`` of the source file (checked against ``SHA256SUMS`` where listed there) and
    ``size`` (the width, as the catalog reads it).
    """
    rel = get_release(release)
    if scale not in rel.scales:
        raise ValueError(
            f"release {release!r} ({rel.file}) serves scales {list(rel.scales)}, not {scale}"
        )
    path = Path(reference_dir) / rel.file
    if not path.is_file():
        raise FileNotFoundError(f"weights of release {release!r} not found: {path}")
    digest = sha256(path)
    _check_listed_hash(path, digest)
    model, args = convert_state(rel, path, scale)
    meta = {
        "method": "authors",
        "variant": release,
        "source": rel.file,
        "sha256": digest,
        "size": rel.size,
    }
    save_model(model, out, arch=rel.arch, args=args, meta=meta)
    return Path(out)


def import_release(
    *,
    release: str,
    weights: Path,
    scale: int,
    out: Path,
    log: Path,
    stages: Path | None = None,
    device: str = "cpu",
) -> Path:
    """The ``authors.import`` step: ``weights`` (the file of ``release`` at ``scale``) as the
    model ``out``; ``log`` gets a one-row TSV naming the source and its SHA-256 (nothing is
    trained). ``stages`` and ``device`` are accepted for the step interface and unused."""
    rel = release_at(release, scale)
    weights = Path(weights)
    if weights.name != rel.file:
        raise ValueError(f"{weights}: release {release!r} at ×{scale} is the file {rel.file}")
    key = next(k for k, r in RELEASES.items() if r is rel)
    import_weights(key, weights.parent, scale, out)
    write_tsv(
        pd.DataFrame([{"release": key, "source": str(weights), "sha256": sha256(weights)}]),
        log,
        float_format=None,
    )
    return Path(out)


def _cmd(a: argparse.Namespace) -> None:
    import_weights(a.release, a.reference, a.scale, a.out)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """``litesr import-weights --release NAME --reference DIR --scale S --out FILE``."""
    s = sub.add_parser(
        "import-weights", help="write the authors' released weights as a litesr model file"
    )
    s.add_argument("--release", required=True, choices=sorted(RELEASES))
    s.add_argument("--reference", type=Path, required=True, help="folder of the release files")
    s.add_argument("--scale", type=int, required=True)
    s.add_argument("--out", type=Path, required=True, help="model file (.safetensors)")
    s.set_defaults(func=_cmd)
