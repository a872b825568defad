"""Released weights, each declared beside the architecture it loads into.

An architecture module declares its releases (:class:`Release`: the file, our arguments, the
scales it serves, the map from the release's key names to ours, the paper and a one-line
description) and registers them with :func:`register_releases`, as timm keeps a model's
pretrained configs and checkpoint filter beside the model. Importing :mod:`litesr.models`
imports every architecture module, so every declared release is known here.

The reference folder (``../shared/data/reference`` beside a checkout) holds the files:
safetensors under the authors' own key names, with ``SHA256SUMS``. :func:`import_weights`
checks every key and shape before loading, then writes a regular litesr model file, so the
released networks go through the same evaluation, cost and report steps as ours.

A release is the file ``<name>.safetensors``. A network released as one file per scale is a
*family*: its member ``<family>_x<scale>`` serves that scale, and the workflow imports the
family as one model. The workflow's ``authors`` method imports what the config lists under
``methods.authors.releases`` as the models ``authors-<release>`` (:func:`model_name`); other
methods' plans read those models' arch and args from :func:`imported`.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from litesr.digest import file_sha256
from litesr.models import available, build
from litesr.models.store import save_model

MODEL_PREFIX = "authors-"
"""The workflow's models made from releases are named ``authors-<release or family>``."""


@dataclass(frozen=True)
class Release:
    """One released file: our arch and args, the scales it serves, its key map and its
    provenance. ``size`` is the width the catalog groups by; ``family`` names the set of
    per-scale files it belongs to (then ``name`` is ``<family>_x<scale>``)."""

    name: str
    arch: str
    args: dict[str, Any]
    scales: tuple[int, ...]
    key_map: dict[str, str] = field(repr=False)
    size: int
    paper: str
    description: str
    family: str | None = None

    @property
    def file(self) -> str:
        """The file name in the reference folder."""
        return self.name + ".safetensors"


_RELEASES: dict[str, Release] = {}


def _family_error(rel: Release) -> str | None:
    """Why ``rel`` cannot be a member of its family, or None."""
    scale = rel.scales[0]
    if rel.family in _RELEASES:
        return f"its family {rel.family!r} is a release's name"
    if rel.scales != (scale,) or rel.name != f"{rel.family}_x{scale}":
        return f"a member of {rel.family!r} serves one scale s and is named {rel.family}_x<s>"
    kin = families().get(rel.family, [rel])[0]
    if (kin.arch, kin.args, kin.paper) != (rel.arch, rel.args, rel.paper):
        return f"the members of {rel.family!r} share arch, args and paper"
    return None


def register_releases(releases: Iterable[Release]) -> None:
    """Add an architecture module's releases; a ``ValueError`` names a clash or a family
    member that breaks the family rules."""
    for rel in releases:
        if rel.arch not in available():
            raise ValueError(f"release {rel.name!r}: arch {rel.arch!r} is not registered")
        if rel.name in _RELEASES or rel.name in families():
            raise ValueError(f"release name {rel.name!r} is already taken")
        error = _family_error(rel) if rel.family is not None else None
        if error:
            raise ValueError(f"release {rel.name!r}: {error}")
        _RELEASES[rel.name] = rel


def releases() -> dict[str, Release]:
    """Every declared release by name, sorted."""
    return dict(sorted(_RELEASES.items()))


def families() -> dict[str, list[Release]]:
    """The members of every family, by family name."""
    found: dict[str, list[Release]] = {}
    for rel in _RELEASES.values():
        if rel.family is not None:
            found.setdefault(rel.family, []).append(rel)
    return found


def get_release(name: str) -> Release:
    """The declared release ``name``; ``ValueError`` listing the known ones otherwise."""
    if name not in _RELEASES:
        raise ValueError(f"unknown release {name!r}; known: {', '.join(sorted(_RELEASES))}")
    return _RELEASES[name]


def release_file(name: str) -> str:
    """The file name of a release or family, ``{scale}`` standing for the scale."""
    if name in families():
        return f"{name}_x{{scale}}.safetensors"
    return get_release(name).file


def _members(name: str) -> list[Release]:
    """The release ``name``, or the members of family ``name``; a ValueError otherwise."""
    members = families().get(name) or ([_RELEASES[name]] if name in _RELEASES else [])
    if not members:
        known = sorted({*_RELEASES, *families()})
        raise ValueError(f"unknown release {name!r}; known: {', '.join(known)}")
    return members


def served_scales(name: str) -> list[int]:
    """The scales a release or family serves, sorted."""
    return sorted(s for rel in _members(name) for s in rel.scales)


def release_at(name: str, scale: int) -> Release:
    """The release (or the member of family ``name``) that serves ``scale``; a ValueError
    names the scales it serves otherwise."""
    for rel in _members(name):
        if scale in rel.scales:
            return rel
    raise ValueError(
        f"the authors released {name!r} for scale(s) {served_scales(name)} only, not ×{scale}"
    )


def model_name(release: str) -> str:
    """The workflow's name of the model imported from a release or family."""
    return MODEL_PREFIX + release


def listed(entry: str | dict[str, Any]) -> tuple[str, list[int] | None]:
    """An entry of ``methods.authors.releases``: a name, or ``{name, scales}`` (the explicit
    scales); the name and those scales (None when not given)."""
    if isinstance(entry, str):
        return entry, None
    return entry["name"], entry.get("scales")


def imported(config: dict[str, Any]) -> dict[str, Release]:
    """The models a workflow config imports (``methods.authors.releases``), by model name,
    each with its release at the first configured scale it serves (any, where it serves
    none): where other methods' plans find an imported model's arch and args."""
    section = config.get("methods", {}).get("authors") or {}
    found = {}
    for entry in section.get("releases", []):
        name = listed(entry)[0]
        served = served_scales(name)
        scale = next((s for s in config["scales"] if s in served), served[0])
        found[model_name(name)] = release_at(name, scale)
    return found


def arch_and_args(config: dict[str, Any], name: str) -> tuple[str, dict[str, Any]] | None:
    """The arch and args of the model ``name``: one of the config's ``models`` or an
    imported release (:func:`imported`); None where it is neither. Methods whose teacher or
    start may be either read it here."""
    spec = config.get("models", {}).get(name)
    if spec:
        return spec["arch"], spec.get("args", {})
    rel = imported(config).get(name)
    return (rel.arch, rel.args) if rel else None


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
    """Our model for ``rel`` at ``scale`` with the release's tensors in ``path`` loaded.

    Every key of the file must be in the release's key map and every mapped key in the file,
    and every tensor must have the shape of our parameter: otherwise a ``ValueError`` names
    the file and the key.
    """
    args = {"scale": scale, **rel.args}
    model = build(rel.arch, **args)
    ours = model.state_dict()
    unmapped = sorted(set(rel.key_map.values()) ^ set(ours))
    if unmapped:  # the declaration and the architecture disagree: a bug here, not in the file
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
    """Write the weights of ``release`` for ``scale`` as a litesr model ``out``.

    The file's meta: ``method`` "authors", ``variant`` the release, ``source`` the file name,
    ``source_sha256`` of the source file (checked against ``SHA256SUMS`` where listed there)
    and ``size`` (the width, as the catalog reads it).
    """
    rel = get_release(release)
    if scale not in rel.scales:
        raise ValueError(
            f"release {release!r} ({rel.file}) serves scales {list(rel.scales)}, not {scale}"
        )
    path = Path(reference_dir) / rel.file
    if not path.is_file():
        raise FileNotFoundError(f"weights of release {release!r} not found: {path}")
    digest = file_sha256(path)
    _check_listed_hash(path, digest)
    model, args = convert_state(rel, path, scale)
    meta = {
        "method": "authors",
        "variant": release,
        "source": rel.file,
        "source_sha256": digest,
        "size": rel.size,
    }
    save_model(model, out, arch=rel.arch, args=args, meta=meta)
    return Path(out)


def _cmd(a: argparse.Namespace) -> None:
    import_weights(a.release, a.reference, a.scale, a.out)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """``litesr import-weights --release NAME --reference DIR --scale S --out FILE``."""
    s = sub.add_parser(
        "import-weights", help="write the authors' released weights as a litesr model file"
    )
    s.add_argument("--release", required=True, choices=sorted(_RELEASES))
    s.add_argument("--reference", type=Path, required=True, help="folder of the release files")
    s.add_argument("--scale", type=int, required=True)
    s.add_argument("--out", type=Path, required=True, help="model file (.safetensors)")
    s.set_defaults(func=_cmd)
