"""A method's deviations from its authors' code: ``deviations.yaml`` beside its schema.

The file names the code it was read against and lists every difference::

    source: {repository: owner/name, commit: <40 hex>, folder: DRN}
    deviations:
      - id: dual-kept              # unique, lower case, words joined by '-'
        what: the dual network trained with the primal is reused
        authors: "channel_pruning/segment_trainer.py:model_parallelism — ..."
        ours: "..."
        class: bug fixed           # one of CLASSES
        effect: "..."              # measured where possible

Classes: ``bug fixed`` (a bug, theirs or an earlier port's, that the port does not have),
``simplification`` (ours does less, on purpose), ``budget`` (the same algorithm, smaller
numbers), ``harmless`` (a difference that cannot change the result, or an addition).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from litesr.methods.registry import Method

FILE = "deviations.yaml"
CLASSES = ("bug fixed", "simplification", "budget", "harmless")
KEYS = ("id", "what", "authors", "ours", "class", "effect")
SOURCE_KEYS = ("repository", "commit", "folder")
_ID = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class Deviation:
    """One difference between the authors' code and ours."""

    id: str
    what: str
    authors: str
    ours: str
    kind: str
    effect: str


@dataclass(frozen=True)
class Deviations:
    """A method's audit: the code read (``source``) and every difference found."""

    source: dict[str, str]
    items: list[Deviation]

    def by_class(self) -> dict[str, list[Deviation]]:
        """The deviations of each class, in :data:`CLASSES` order (empty classes included)."""
        return {c: [d for d in self.items if d.kind == c] for c in CLASSES}


def load_deviations(path: str | Path) -> Deviations:
    """Read and check a ``deviations.yaml``; a ValueError names the file and the entry."""
    path = Path(path)
    doc = yaml.safe_load(path.read_text())
    if not isinstance(doc, dict) or set(doc) != {"source", "deviations"}:
        raise ValueError(f"{path}: needs exactly the keys `source` and `deviations`")
    source = doc["source"]
    if not isinstance(source, dict) or set(source) != set(SOURCE_KEYS):
        raise ValueError(f"{path}: `source` needs exactly {list(SOURCE_KEYS)}")
    if not all(isinstance(v, str) and v for v in source.values()):
        raise ValueError(f"{path}: `source` values must be non-empty strings")
    if not _COMMIT.match(source["commit"]):
        raise ValueError(f"{path}: `source.commit` must be a full 40-hex commit")
    entries = doc["deviations"]
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{path}: `deviations` must be a non-empty list")
    items, seen = [], set()
    for n, entry in enumerate(entries):
        name = entry.get("id", "?") if isinstance(entry, dict) else "?"
        where = f"{path}: deviation {n} ({name})"
        if not isinstance(entry, dict) or set(entry) != set(KEYS):
            found = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
            raise ValueError(f"{where}: needs exactly the keys {list(KEYS)}, has {found}")
        if not all(isinstance(entry[k], str) and entry[k].strip() for k in KEYS):
            raise ValueError(f"{where}: every value must be non-empty text")
        if not _ID.match(entry["id"]) or entry["id"] in seen:
            raise ValueError(f"{where}: ids are unique, lower case, words joined by '-'")
        if entry["class"] not in CLASSES:
            raise ValueError(f"{where}: class {entry['class']!r} is not one of {list(CLASSES)}")
        seen.add(entry["id"])
        items.append(
            Deviation(
                id=entry["id"],
                what=entry["what"].strip(),
                authors=entry["authors"].strip(),
                ours=entry["ours"].strip(),
                kind=entry["class"],
                effect=entry["effect"].strip(),
            )
        )
    return Deviations(source=dict(source), items=items)


def deviations_file(method: Method) -> Path:
    """Where a method keeps its deviations: beside its schema."""
    return Path(method.schema).with_name(FILE)


def method_deviations(method: Method) -> Deviations | None:
    """The method's checked deviations, or ``None`` when it has not been audited yet."""
    path = deviations_file(method)
    return load_deviations(path) if path.is_file() else None
