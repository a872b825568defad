"""Checks of a configuration file that JSON schema cannot make: YAML duplicate keys.

PyYAML (and so Snakemake) silently keeps the last of two equal keys, so ``seed: 0`` then
``seed: 1`` in one mapping would run with a seed nobody meant. The workflow re-reads each
config file with :func:`strict_load`, which names the file, the line and the key.

Snakemake reads a ``--configfile`` before the workflow can, and reports a YAML syntax error
without the file or the line; ``litesr check-config FILE`` names both.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import yaml


class _StrictLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses a key given twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first on line {seen[key]})",
                    key_node.start_mark,
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def strict_load(path: str | os.PathLike[str]) -> Any:
    """Load a YAML file; a syntax error or a duplicate key raises ``ValueError`` with the file
    and line."""
    try:
        with open(path) as handle:
            return yaml.load(handle, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ValueError(f"{where}: {err.problem or err}") from None


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``check-config`` sub-command."""
    s = sub.add_parser(
        "check-config", help="check config files for YAML errors and duplicate keys (file:line)"
    )
    s.add_argument("files", nargs="+", type=str)
    s.set_defaults(func=_cmd_check)


def _cmd_check(a: argparse.Namespace) -> None:
    for path in a.files:
        strict_load(path)
        print(f"{path}: valid YAML, no duplicate keys")
