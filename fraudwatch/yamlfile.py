"""YAML loading that remembers where each value came from, so errors can name the file and line.

PyYAML's composer keeps a start mark on every node; `load_with_lines` turns the node tree into plain
dicts/lists/scalars and returns, beside them, a `Lines` map from id() of each dict/list to its line, plus each
dict key's line. Nothing past the loaders sees raw YAML.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fraudwatch.errors import ConfigError, Location


@dataclass
class Lines:
    """Line numbers (1-based) for containers and for the keys inside mappings."""

    path: Path
    of_node: dict[int, int] = field(default_factory=dict)
    of_key: dict[tuple[int, str], int] = field(default_factory=dict)

    def at(self, container: object, key: str | None = None) -> Location:
        """The location of `container` (a dict or list from this file), or of one of its keys."""
        if key is not None and (id(container), key) in self.of_key:
            return Location(self.path, self.of_key[(id(container), key)])
        return Location(self.path, self.of_node.get(id(container)))


# libyaml's parser when PyYAML has it (it keeps the same marks): the shipped formats and rules load much faster,
# and every command loads them at start-up (figures: benchmarks/RESULTS.md, "YAML read by libyaml").
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _convert(node: yaml.Node, lines: Lines, loader: Any) -> Any:
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        lines.of_node[id(out)] = node.start_mark.line + 1
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                raise ConfigError(f"keys must be text, not {key!r}", Location(lines.path, key_node.start_mark.line + 1))
            if key in out:
                raise ConfigError(f"duplicate key '{key}'", Location(lines.path, key_node.start_mark.line + 1))
            out[key] = _convert(value_node, lines, loader)
            lines.of_key[(id(out), key)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        seq: list[Any] = [_convert(item, lines, loader) for item in node.value]
        lines.of_node[id(seq)] = node.start_mark.line + 1
        return seq
    return loader.construct_object(node, deep=True)


def load_with_lines(path: Path) -> tuple[Any, Lines]:
    """Parse one YAML document; YAML syntax errors become `ConfigError` with the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read: {exc}", Location(path)) from None
    lines = Lines(path)
    loader = _LOADER(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, lines
        return _convert(node, lines, loader), lines
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise ConfigError(f"invalid YAML: {exc.problem or exc.context}", Location(path, line)) from None
    finally:
        loader.dispose()
