"""Every enabled method's deviations from its authors' code, as the report prints them after
the scorecard. The report imports no method: the caller passes ``lookup(name)``, which gives
a method's checked deviations (``litesr.methods.deviations.method_deviations``) or ``None``
when the method has no ``deviations.yaml`` yet ("not yet audited")."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol


class _Deviation(Protocol):
    id: str
    what: str
    authors: str
    ours: str
    kind: str
    effect: str


class _Audit(Protocol):
    source: dict[str, str]
    items: list[_Deviation]

    def by_class(self) -> dict[str, list[_Deviation]]: ...


def for_print(methods: Iterable[str], lookup: Callable[[str], _Audit | None]) -> list[dict]:
    """One entry per method, in the given order: its source (repository, short commit,
    folder), the count per class and the rows, grouped by class; ``audited`` is false (and
    the rest empty) for a method without a deviations file."""
    out: list[dict[str, Any]] = []
    for name in methods:
        audit = lookup(name)
        if audit is None:
            out.append({"method": name, "audited": False, "source": "", "counts": "", "rows": []})
            continue
        groups = audit.by_class()
        source = audit.source
        out.append(
            {
                "method": name,
                "audited": True,
                "source": f"{source['repository']} @ {source['commit'][:10]}, "
                f"folder {source['folder']}",
                "counts": ", ".join(f"{len(items)} {kind}" for kind, items in groups.items()),
                "rows": [
                    {
                        "id": d.id,
                        "what": d.what,
                        "authors": d.authors,
                        "ours": d.ours,
                        "class": kind,
                        "effect": d.effect,
                    }
                    for kind, items in groups.items()
                    for d in items
                ],
            }
        )
    return out
