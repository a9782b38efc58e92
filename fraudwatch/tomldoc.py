"""Helpers for reading a TOML document into typed config: every error names the file, the line and the reason.

`tomllib` gives values without positions, so `Document` finds a key's line in the text itself. One strict
duration parser lives here too: the config sections, the rule files and the CLI's `--ttl`/`--for` spell a
duration the same way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fraudwatch.errors import ConfigError, Location

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, None: 1.0}
# Longer than any window, TTL or interval anyone means; a guard against a typo such as "30000d".
MAX_DURATION = 10 * 365 * 86400.0
DURATION_HINT = "like 90s, 15m, 2h, 7d, 1w, or a number of seconds"


def parse_duration(value: object, *, whole: bool = False) -> float:
    """Seconds from a positive number of seconds or a text such as '500ms', '90s', '15m', '1.5h', '7d', '1w'.

    A text without a unit is seconds. With `whole`, only whole numbers of whole-second units are taken (the
    firewall's TTLs are counted in whole seconds by the kernel). Raises ValueError with a readable reason."""
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not whole or isinstance(value, int):
            seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        number, unit = m.group(1), m.group(2)
        if not whole or ("." not in number and unit != "ms"):
            seconds = float(number) * _UNIT[unit]
    if seconds is None or not 0 < seconds < MAX_DURATION:
        kind = "a duration in whole seconds" if whole else "a duration"
        raise ValueError(f"'{value}' is not {kind} ({DURATION_HINT})")
    return seconds


class Document:
    """A TOML file's path and text, to turn a (table, key) into `file:line` for errors."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def line_of(self, table: str | None, key: str | None, index: int = 0) -> int | None:
        """Line of `key` inside the `index`-th `[table]`/`[[table]]` (top level when table is None)."""
        start, seen = 0, -1
        if table is not None:
            header = re.compile(r"^\s*\[\[?\s*" + re.escape(table) + r"\s*\]\]?\s*(#.*)?$")
            for i, line in enumerate(self.lines):
                if header.match(line):
                    seen += 1
                    if seen == index:
                        start = i
                        break
            else:
                return None
            if key is None:
                return start + 1
        key_re = re.compile(r"^\s*" + re.escape(key or "") + r"\s*=")
        for i in range(start + (1 if table else 0), len(self.lines)):
            if table is not None and i > start and re.match(r"^\s*\[", self.lines[i]):
                break
            if key_re.match(self.lines[i]):
                return i + 1
        return start + 1 if table else None

    def error(self, reason: str, table: str | None, key: str | None, index: int = 0) -> ConfigError:
        return ConfigError(reason, Location(self.path, self.line_of(table, key, index)))


def table(raw: dict[str, Any], name: str, doc: Document) -> dict[str, Any]:
    """The top-level table `name` (empty when absent); an error when it is there but not a table."""
    value = raw.get(name, {})
    if not isinstance(value, dict):
        raise doc.error(f"'{name}' must be a table ([{name}])", None, name)
    return value


def check_keys(section: dict[str, Any], allowed: Iterable[str], doc: Document, table: str,
               index: int = 0) -> None:
    """Refuse a key the section does not know, naming the allowed ones (a typo must not be silently ignored)."""
    names = set(allowed)
    for key in section:
        if key not in names:
            raise doc.error(f"unknown key '{key}' in [{table}] (allowed: {', '.join(sorted(names))})",
                            table, key, index)


def duration(section: dict[str, Any], key: str, default: float, doc: Document, table: str, index: int = 0,
             *, whole: bool = False) -> float:
    """`section[key]` as seconds (`parse_duration`), `default` when absent; errors at the key's line."""
    if key not in section:
        return default
    try:
        return parse_duration(section[key], whole=whole)
    except ValueError as exc:
        raise doc.error(f"'{key}': {exc}", table, key, index) from None
