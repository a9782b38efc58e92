"""The `where:` language of rules, compiled to polars expressions over canonical (and enriched) columns.

    where:
      event: response                 # equality
      status: [401, 403]              # one of
      method: {not_in: [OPTIONS]}
      hold_seconds: {lt: 4}           # lt, le, gt, ge
      user_agent: {list: scanner-user-agents}    # case-insensitive substring of any entry of rules/lists/NAME.txt
      callee_e164: {prefix_list: high-risk-prefixes}   # starts with any entry (after normalising 00/+)
      username: {regex: '^[0-9]+$'}
      account: {exists: true}
      any: [{status: 403}, {event: auth_failure}]   # OR of conditions
      not: {src_ip: {list: trusted-peers}}

Attacker text only ever meets these as data: lists and regexes come from rule files, never from events.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl

from fraudwatch.detect.enrich import ENRICHED_TYPES
from fraudwatch.store.schema import TABLES

OPS = ("in", "not_in", "lt", "le", "gt", "ge", "regex", "list", "prefix_list", "exists", "eq", "ne")


class FilterError(ValueError):
    """A `where:` condition that cannot be compiled; the rule loader adds file and line."""


@functools.lru_cache(maxsize=64)
def load_list(folder: Path, name: str) -> tuple[str, ...]:
    """Entries of rules/lists/NAME.txt: one per line, '#' starts a comment, blank lines ignored."""
    path = folder / f"{name}.txt"
    if not path.is_file():
        raise FilterError(f"no list named '{name}' (expected {path})")
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        entry = line.split("#", 1)[0].strip()
        if entry:
            out.append(entry)
    return tuple(out)


def normalise_number(col: pl.Expr) -> pl.Expr:
    """Digits only, international prefix 00 or + removed: '00447700900123' and '+44 7700 900123' -> '4477...'."""
    digits = col.cast(pl.Utf8).str.replace_all(r"[^0-9]", "")
    return pl.when(digits.str.starts_with("00")).then(digits.str.slice(2)).otherwise(digits)


def normalise_prefix(entry: str) -> str:
    """A list entry as `normalise_number` writes numbers: '+44 90' -> '4490', '00882' -> '882'."""
    digits = re.sub(r"[^0-9]", "", entry)
    return digits[2:] if digits.startswith("00") else digits


_NUMBER_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "DOUBLE", "REAL", "FLOAT", "DECIMAL")


def _kind(field: str) -> str | None:
    """number, text or bool: how a `where:` value for `field` must be written (None: anything goes)."""
    sql = ENRICHED_TYPES.get(field) or next(
        (col.type for t in TABLES.values() if (col := t.column(field)) is not None), None)
    if sql is None:
        return None
    if sql.startswith(_NUMBER_TYPES):
        return "number"
    return {"VARCHAR": "text", "BOOLEAN": "bool"}.get(sql)


def _value(field: str, kind: str | None, value: Any) -> Any:
    """`value` checked against the field's kind, so a quoted number fails at load time, not in the watcher;
    a bare number for a text field (YAML reads `username: 1001` as a number) is taken as its text."""
    if value is None or kind is None:
        return value
    if kind == "number" and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise FilterError(f"'{field}' is a number: write {value!r} without quotes")
    if kind == "bool" and not isinstance(value, bool):
        raise FilterError(f"'{field}' is true or false, not {value!r}")
    if kind == "text":
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise FilterError(f"'{field}' is text, not {value!r}")
        return str(value)
    return value


def compile_where(where: dict[str, Any], lists_dir: Path, columns: set[str]) -> pl.Expr:
    """All conditions ANDed; an empty `where` matches every event."""
    expr: pl.Expr = pl.lit(True)
    for k, v in where.items():
        expr = expr & _condition(k, v, lists_dir, columns)
    return expr


def _condition(field: str, cond: Any, lists_dir: Path, columns: set[str]) -> pl.Expr:
    if field == "any":
        if not isinstance(cond, list) or not cond or not all(isinstance(c, dict) for c in cond):
            raise FilterError("'any' takes a list of conditions")
        parts = [compile_where(c, lists_dir, columns) for c in cond]
        return functools.reduce(lambda a, b: a | b, parts)
    if field == "not":
        if not isinstance(cond, dict):
            raise FilterError("'not' takes a mapping of conditions")
        return ~compile_where(cond, lists_dir, columns)
    if field not in columns:
        raise FilterError(f"unknown field '{field}' (known: {', '.join(sorted(columns))})")
    col = pl.col(field)
    kind = _kind(field)
    if isinstance(cond, dict):
        if not cond:
            raise FilterError(f"'{field}' has an empty mapping of operators")
        exprs = [_operator(col, op, arg, lists_dir, field, kind) for op, arg in cond.items()]
        return functools.reduce(lambda a, b: a & b, exprs)
    if isinstance(cond, list):
        return col.is_in([_value(field, kind, v) for v in cond]).fill_null(False)
    equal: pl.Expr = (col == _value(field, kind, cond)).fill_null(False)
    return equal


def _operator(col: pl.Expr, op: str, arg: Any, lists_dir: Path, field: str, kind: str | None) -> pl.Expr:
    compare: dict[str, Callable[[pl.Expr, Any], pl.Expr]] = {
        "eq": lambda c, a: c == a, "ne": lambda c, a: c != a, "lt": lambda c, a: c < a, "le": lambda c, a: c <= a,
        "gt": lambda c, a: c > a, "ge": lambda c, a: c >= a,
    }
    if op in compare:
        if isinstance(arg, list | dict):
            raise FilterError(f"'{op}' takes one value")
        # a missing value is 'not equal' to anything, as it is 'not_in' any list
        return compare[op](col, _value(field, kind, arg)).fill_null(op == "ne")
    if op in ("in", "not_in"):
        if not isinstance(arg, list):
            raise FilterError(f"'{op}' takes a list")
        inside = col.is_in([_value(field, kind, v) for v in arg]).fill_null(False)
        return inside if op == "in" else ~inside
    if op == "regex":
        if not isinstance(arg, str):
            raise FilterError("'regex' takes a regular expression")
        try:
            pl.select(pl.lit("").str.contains(arg))
        except Exception as exc:
            raise FilterError(f"bad regex {arg!r}: {exc}") from None
        return col.cast(pl.Utf8).str.contains(arg).fill_null(False)
    if op == "exists":
        return col.is_not_null() if arg else col.is_null()
    if op == "list":
        entries = [e.lower() for e in load_list(lists_dir, str(arg))]
        text = col.cast(pl.Utf8).str.to_lowercase()
        return text.str.contains_any(entries).fill_null(False) if entries else pl.lit(False)
    if op == "prefix_list":
        prefixes = [p for p in (normalise_prefix(e) for e in load_list(lists_dir, str(arg))) if p]
        number = normalise_number(col)
        hits = [number.str.starts_with(p) for p in prefixes]
        return functools.reduce(lambda a, b: a | b, hits).fill_null(False) if hits else pl.lit(False)
    raise FilterError(f"unknown operator '{op}' (known: {', '.join(OPS)})")
