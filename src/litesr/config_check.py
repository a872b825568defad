"""Checks of a configuration that Snakemake's loading and validation do not make.

- **Duplicate keys.** PyYAML (and so Snakemake) silently keeps the last of two equal keys,
  so ``seed: 0`` then ``seed: 1`` in one mapping would run with a seed nobody meant.
- **Alias bombs.** A YAML alias repeats its anchor's whole subtree, so a few lines of nested
  aliases (a "billion laughs") describe a document of billions of nodes, and whatever walks
  it (validation, printing) never ends. Aliases may add at most :data:`MAX_ALIAS_NODES`
  nodes to a document; a recursive alias is refused.
- **Whole numbers.** JSON Schema counts ``4.0`` as an integer, and so does Snakemake's
  ``validate``; :func:`check_schema` validates the config again with integers that must be
  written as integers, and names the key of any error as a dotted path.

The workflow re-reads each config file with :func:`strict_load`, which names the file and
the line, then calls :func:`check_schema` before Snakemake's ``validate``.

Snakemake reads a ``--configfile`` before the workflow can, and reports a YAML syntax error
without the file or the line; ``litesr check-config FILE`` names both. Snakemake also merges
nested mappings of the file into its config before the workflow runs, walking every alias:
an alias bomb made of mappings hangs there, before any check of the workflow can refuse it.
``litesr check-config FILE`` refuses it at once; run it on a config file from elsewhere.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import yaml
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

# Nodes that aliases may add to a document, beyond the ones written in it.
MAX_ALIAS_NODES = 10_000
# The schemas' pattern of a path: no control character and no shell metacharacter anywhere.
PATH_PATTERN = r"""^(?![\s\S]*[\x00-\x1f\x7f$`;|&'"<>\\()*?!\[\]])"""


class _StrictLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses a key given twice in one mapping and alias expansion
    beyond :data:`MAX_ALIAS_NODES` nodes."""

    def get_single_node(self) -> yaml.Node | None:
        node = super().get_single_node()
        if node is not None:
            _check_aliases(node)
        return node

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


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [child for pair in node.value for child in pair]
    return []


def _check_aliases(root: yaml.Node) -> None:
    """Refuse a node graph whose expansion (every alias replaced by its anchor's subtree)
    has more than :data:`MAX_ALIAS_NODES` nodes beyond the graph's own, or a cycle."""
    size: dict[int, int] = {}  # expanded size of each finished node
    extra = 0
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    open_nodes: set[int] = set()
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            open_nodes.discard(key)
            size[key] = 1 + sum(size[id(child)] for child in _children(node))
            continue
        if key in open_nodes:
            raise yaml.composer.ComposerError(
                None, None, "recursive YAML alias (an anchor used inside itself)", node.start_mark
            )
        if key in size:  # a node met again: an alias repeats its subtree
            extra += size[key]
            if extra > MAX_ALIAS_NODES:
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"YAML aliases expand the document by more than {MAX_ALIAS_NODES:,} nodes "
                    "(a 'billion laughs' document?); write the values out instead",
                    node.start_mark,
                )
            continue
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in reversed(_children(node)))


def strict_load(path: str | os.PathLike[str]) -> Any:
    """Load a YAML file; a syntax error, a duplicate key or an alias bomb raises
    ``ValueError`` with the file and line."""
    try:
        with open(path) as handle:
            return yaml.load(handle, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ValueError(f"{where}: {err.problem or err}") from None


def _is_int(checker: Any, instance: Any) -> bool:
    return isinstance(instance, int) and not isinstance(instance, bool)


_Strict = validators.extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_int),
)


def _registry(schema_file: Path) -> tuple[dict[str, Any], Registry]:
    """The schema at ``schema_file`` and a registry resolving its relative ``$ref``s to the
    YAML files beside it. Their ``$schema`` is dropped: with it, jsonschema would validate
    them with its own integer type (which takes 4.0)."""
    schema = yaml.safe_load(schema_file.read_text())
    schema["$id"] = schema_file.resolve().as_uri()

    def retrieve(uri: str) -> Resource:
        contents = yaml.safe_load(Path(url2pathname(urlparse(uri).path)).read_text())
        contents.pop("$schema", None)
        return Resource(contents=contents, specification=DRAFT202012)

    return schema, Registry(retrieve=retrieve)


def key_path(parts: Any) -> str:
    """A config key as a dotted path: ``models.tiny.train.steps``, ``scales[0]``."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text or "(top level)"


def _nested(errors: list[ValidationError]) -> list[ValidationError]:
    """``errors`` and, depth first, the errors under each (those of a failed ``oneOf``...)."""
    return [e for error in errors for e in (error, *_nested(list(error.context)))]


def check_schema(config: Any, schema_file: str | os.PathLike[str]) -> None:
    """Validate ``config`` against the YAML JSON schema ``schema_file``, with integers that
    must be written as integers (``4``, not ``4.0``); ``ValueError`` names the key."""
    schema, registry = _registry(Path(schema_file))
    errors = list(_Strict(schema, registry=registry).iter_errors(config))
    unsafe = [
        e for e in _nested(errors) if e.validator == "pattern" and e.validator_value == PATH_PATTERN
    ]
    error = unsafe[0] if unsafe else best_match(errors)
    if error is None:
        return
    if unsafe:
        message = (
            f"{error.instance!r} is not a safe path: control characters and the shell "
            "metacharacters $ ` ; | & ' \" < > \\ ( ) * ? ! [ ] are refused"
        )
    else:
        message = error.message if len(error.message) <= 300 else error.message[:300] + "..."
    if error.validator == "type" and "integer" in str(error.validator_value):
        message += " (write whole numbers without a decimal point)"
    raise ValueError(f"config key {key_path(error.absolute_path)}: {message}")


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``check-config`` sub-command."""
    s = sub.add_parser(
        "check-config",
        help="check config files for YAML errors, duplicate keys and alias bombs (file:line)",
    )
    s.add_argument("files", nargs="+", type=str)
    s.set_defaults(func=_cmd_check)


def _cmd_check(a: argparse.Namespace) -> None:
    for path in a.files:
        strict_load(path)
        print(f"{path}: valid YAML, no duplicate keys, no alias bomb")
