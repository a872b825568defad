"""The registry of compression methods.

A method is a package (``litesr.methods.<name>``, or any importable module) exposing
``METHOD``, a :class:`Method`: its name, the JSON schema of its config section, a ``plan``
function (config section → :class:`~litesr.methods.plan.Plan`) and its entry points:
``steps`` (called by ``litesr run``), ``figures`` and ``tables`` (called by the report),
and optionally a rules file and the paper's claims (``claims.yaml``, see
:mod:`litesr.claims`).

Parsing the workflow imports every method package for its ``plan``: a package imports no
step code (nor torch) at module level. It names its steps as ``"module:function"`` and exports
its step-time classes through :func:`lazy_exports`.

Methods are found in the built-in list, in the ``litesr.methods`` entry-point group of
installed packages, and in the colon-separated module names of ``LITESR_METHODS``.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from litesr.methods.plan import Paths, Plan

BUILT_IN = (
    "litesr.methods.authors",
    "litesr.methods.ail",
    "litesr.methods.dipnet",
    "litesr.methods.drc",
    "litesr.methods.memsr",
)
ENV = "LITESR_METHODS"


@dataclass(frozen=True)
class Method:
    """One paper's method, as the workflow and the report see it."""

    name: str
    schema: Path
    plan: Callable[[dict[str, Any], dict[str, Any], Paths], Plan]
    steps: dict[str, Callable[..., Any] | str] = field(default_factory=dict)
    figures: dict[str, Callable[..., Path] | str] = field(default_factory=dict)
    tables: dict[str, Callable[..., Any] | str] = field(default_factory=dict)
    rules: Path | None = None
    claims: Path | None = None


def _modules() -> list[str]:
    names = list(BUILT_IN)
    names += [ep.value for ep in entry_points(group="litesr.methods")]
    names += [m for m in os.environ.get(ENV, "").split(":") if m]
    return list(dict.fromkeys(names))


def methods() -> dict[str, Method]:
    """Every registered method by name."""
    found: dict[str, Method] = {}
    for module in _modules():
        method = getattr(importlib.import_module(module), "METHOD", None)
        if not isinstance(method, Method):
            raise ValueError(f"method module {module!r} has no METHOD of type Method")
        if method.name in found and found[method.name] is not method:
            raise ValueError(f"two methods are named {method.name!r} ({module})")
        found[method.name] = method
    return found


def get(name: str) -> Method:
    """The method ``name``; a clear error lists the known ones."""
    known = methods()
    if name not in known:
        raise ValueError(f"unknown method {name!r}; registered: {', '.join(sorted(known))}")
    return known[name]


def entry(kind: str, qualified: str) -> Callable[..., Any]:
    """A method's step, figure or table by ``"<method>.<name>"``.

    An entry may be given as ``"module:function"``: it is imported only when used, so that
    parsing the workflow (which loads every method) does not import plotting libraries."""
    method_name, _, name = qualified.partition(".")
    table = getattr(get(method_name), kind)
    if name not in table:
        raise ValueError(
            f"method {method_name!r} has no {kind[:-1]} {name!r}; it has: {', '.join(table)}"
        )
    target = table[name]
    if isinstance(target, str):
        module, _, function = target.partition(":")
        target = getattr(importlib.import_module(module), function)
    return target


def lazy_exports(package: str, names: dict[str, str]) -> Callable[[str], Any]:
    """A package's module ``__getattr__`` (PEP 562) that imports each exported name from its
    module (``names``: name → module) on first use, so that importing the package imports
    none of them."""

    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(names[name]), name)

    return __getattr__
