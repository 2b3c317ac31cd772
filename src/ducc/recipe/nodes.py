"""YAML nodes as the recipe parser reads them: their values (never an unsafe object), what
kind of value they hold (for messages) and their text as written (for a refused entry)."""

from __future__ import annotations

from typing import Any

import yaml

_UNREADABLE = object()
_YAML_TYPES = {"int": "an integer", "float": "a number", "bool": "a boolean", "null": "null"}


def node_value(node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        try:
            return yaml.SafeLoader("").construct_object(node)
        except (yaml.YAMLError, ValueError, OverflowError):
            # An explicit tag the safe loader refuses (`!custom`, `!!python/...`) or a value
            # its tag cannot hold (`!!int abc`, an integer beyond Python's digit limit).
            return _UNREADABLE
    return node


def node_kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if node_value(node) is _UNREADABLE:
        return f"a value that cannot be read as {node.tag}"
    short = str(node.tag).rsplit(":", 1)[-1]
    return _YAML_TYPES.get(short, "a string" if short == "str" else f"a {short}")


def node_source(node: yaml.Node) -> str:
    """An entry as the recipe spells it, for a refused wish's name."""
    if isinstance(node, yaml.ScalarNode):
        return str(node.value)
    return f"<{node_kind(node)}>"
