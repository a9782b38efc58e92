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
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from fraudwatch.detect.fields import ENRICHED_TYPES
from fraudwatch.store.schema import TABLES

OPS = ("in", "not_in", "lt", "le", "gt", "ge", "regex", "list", "prefix_list", "exists", "eq", "ne")


EAGER_ROWS = 4096  # up to this many rows a constant column is built from a list: no query, whose fixed cost
# dominates small batches


def constant(name: str, value: bool, n: int) -> pl.Series:
    """A Boolean column of `n` times `value`."""
    if n <= EAGER_ROWS:
        return pl.Series(name, [value] * n, dtype=pl.Boolean)
    return pl.repeat(value, n, dtype=pl.Boolean, eager=True).alias(name)


def flags(n: int, rows: pl.Series) -> pl.Series:
    """A Boolean column of `n` rows, true at `rows`."""
    return constant("", False, n).scatter(rows, True)


def distinct_hashes(values: pl.Series) -> pl.Series | None:
    """The 64-bit hashes of `values` (distinct, non-null), or None when two of them share one. When they tell the
    values apart, grouping or joining on the hashes is exact, and cheaper than on text."""
    hashes = values.hash()
    return hashes if hashes.n_unique() == values.len() else None


def hashed(column: str) -> pl.Expr:
    """A text column's 64-bit hashes, as `distinct_hashes` makes them (null stays null)."""
    return pl.when(pl.col(column).is_not_null()).then(pl.col(column).hash())


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


def field_kind(field: str) -> str | None:
    """number, text or bool: how a `where:` value for `field` must be written (None: anything goes)."""
    sql = ENRICHED_TYPES.get(field) or next(
        (col.type for t in TABLES.values() if (col := t.column(field)) is not None), None)
    if sql is None:
        return None
    if sql.startswith(_NUMBER_TYPES):
        return "number"
    return {"VARCHAR": "text", "BOOLEAN": "bool"}.get(sql)


def check_value(field: str, kind: str | None, value: Any) -> Any:
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


_COSTLY_OPS = frozenset({"regex", "list", "prefix_list"})  # string scans, per row: worth doing on distinct values


def _costly(cond: Any) -> bool:
    if isinstance(cond, dict):
        return any(k in _COSTLY_OPS or _costly(v) for k, v in cond.items())
    if isinstance(cond, list):
        return any(_costly(c) for c in cond)
    return False


@dataclass(frozen=True)
class Conjunct:
    """One top-level condition of a `where:`. `key` is its canonical text, so rules sharing a condition share
    its evaluation; `field` names the one column a costly condition reads (evaluated on its distinct values),
    `reads` every column it reads."""

    key: str
    expr: pl.Expr
    costly: bool
    field: str | None
    reads: tuple[str, ...] = ()


def _reads(field: str, cond: Any) -> list[str]:
    """The columns a condition reads (its own field, or those of the conditions under `any` and `not`)."""
    if field == "any":
        return [f for c in cond for k, v in c.items() for f in _reads(k, v)]
    if field == "not":
        return [f for k, v in cond.items() for f in _reads(k, v)]
    return [field]


def where_fields(where: Any) -> set[str]:
    """The columns a `where:` (or any part of one) names, under `any` and `not` too."""
    out: set[str] = set()
    if isinstance(where, dict):
        for k, v in where.items():
            out |= where_fields(v) if k in ("any", "not") else {k}
    elif isinstance(where, list):
        for item in where:
            out |= where_fields(item)
    return out


def compile_conjuncts(where: dict[str, Any], lists_dir: Path, columns: set[str]) -> list[Conjunct]:
    """The `where:` as ANDed conditions, cheap ones first (sorted by text, so that rules share prefixes)."""
    out = []
    for k, v in where.items():
        expr = _condition(k, v, lists_dir, columns)
        costly = _costly({k: v}) if k in ("any", "not") else _costly(v)
        single = k not in ("any", "not")
        out.append(Conjunct(json.dumps({k: v}, sort_keys=True, default=str), expr, costly, k if single else None,
                            tuple(sorted(set(_reads(k, v))))))
    return sorted(out, key=lambda c: (c.costly, c.key))


def shared_conditions(groups: Iterable[Iterable[Conjunct]]) -> list[Conjunct]:
    """The cheap conditions of several detectors, each once: what `Selection.prime` evaluates together."""
    distinct: dict[str, Conjunct] = {}
    for conjuncts in groups:
        for c in conjuncts:
            if not c.costly:
                distinct.setdefault(c.key, c)
    return list(distinct.values())


@dataclass
class Selection:
    """Which events of one batch meet rules' conditions, as boolean masks memoised for the batch: rules with the
    same conditions (or the same cheap ones) share the work. A fresh Selection per batch."""

    frame: pl.DataFrame
    masks: dict[tuple[str, ...], pl.Series | None] = field(default_factory=dict)

    def prime(self, conjuncts: Sequence[Conjunct]) -> None:
        """Evaluate the cheap conditions among `conjuncts` (distinct by key) in one pass over the frame, rather
        than one query each: on a small batch the fixed cost of a query is most of the work."""
        wanted = [c for c in conjuncts if not c.costly and (c.key,) not in self.masks]
        if not wanted:
            return
        names = [f"_m{i}" for i in range(len(wanted))]
        got = self.frame.select(c.expr.alias(n) for c, n in zip(wanted, names, strict=True))
        for c, n in zip(wanted, names, strict=True):
            self.masks[(c.key,)] = got.get_column(n)

    def mask(self, conjuncts: Sequence[Conjunct]) -> pl.Series | None:
        """The rows meeting every condition (None: all rows)."""
        whole = tuple(c.key for c in conjuncts)
        if whole in self.masks:
            return self.masks[whole]
        if not conjuncts:
            self.masks[whole] = None
            return None
        *before, last = conjuncts
        mask = self.mask(before)
        if not last.costly:
            own = self.masks.get((last.key,))
            if own is None:
                own = self.masks[(last.key,)] = self.frame.select(last.expr.alias("_m")).to_series().rechunk()
            mask = own if mask is None else mask & own
        else:  # only on the rows that passed the cheaper conditions
            rows = pl.Series("_row", range(self.frame.height), dtype=pl.UInt32) if self.frame.height <= EAGER_ROWS \
                else pl.int_range(self.frame.height, dtype=pl.UInt32, eager=True)
            inside = self.frame.with_columns(rows.alias("_row"))
            inside = inside if mask is None else inside.filter(mask)
            kept = apply_costly(inside, last).get_column("_row")
            mask = flags(self.frame.height, kept)
        self.masks[whole] = mask
        return mask

    def __call__(self, conjuncts: Sequence[Conjunct], columns: Sequence[str] | None = None) -> pl.DataFrame:
        """The events meeting every condition, with only `columns` (all when None)."""
        mask = self.mask(conjuncts)
        frame = self.frame if columns is None else self.frame[list(columns)]
        if mask is None:
            return frame
        if frame.height <= EAGER_ROWS:  # column by column: no query, whose fixed cost is most of a small batch
            return pl.DataFrame([s.filter(mask) for s in frame.get_columns()])
        return frame.filter(mask)


def apply_costly(frame: pl.DataFrame, c: Conjunct) -> pl.DataFrame:
    """`frame` filtered by a costly condition; a single-column one is evaluated once per distinct value when the
    column repeats (user-agents, statuses), which gives the same rows."""
    if not frame.height:
        return frame
    if c.field is None or c.field not in frame.columns:
        return frame.filter(c.expr)
    values = frame.get_column(c.field).unique()
    if values.len() * 4 > frame.height:
        return frame.filter(c.expr)
    ok = pl.DataFrame({c.field: values}).with_columns(c.expr.alias("_ok"))
    good = ok.filter(pl.col("_ok") & pl.col(c.field).is_not_null()).get_column(c.field)
    null_ok = bool(ok.filter(pl.col(c.field).is_null() & pl.col("_ok")).height)
    keep = pl.col(c.field).is_in(good.implode())
    return frame.filter((keep | pl.col(c.field).is_null()) if null_ok else keep.fill_null(False))


def select(frame: pl.DataFrame, conjuncts: Sequence[Conjunct], selection: Selection | None = None,
           columns: Sequence[str] | None = None) -> pl.DataFrame:
    """The events of `frame` meeting every condition (through the batch's shared `selection` when given), with
    only `columns` when given."""
    if selection is None or selection.frame is not frame:
        selection = Selection(frame)
    return selection(conjuncts, columns)


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
    kind = field_kind(field)
    if isinstance(cond, dict):
        if not cond:
            raise FilterError(f"'{field}' has an empty mapping of operators")
        exprs = [_operator(col, op, arg, lists_dir, field, kind) for op, arg in cond.items()]
        return functools.reduce(lambda a, b: a & b, exprs)
    if isinstance(cond, list):
        return col.is_in([check_value(field, kind, v) for v in cond]).fill_null(False)
    equal: pl.Expr = (col == check_value(field, kind, cond)).fill_null(False)
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
        return compare[op](col, check_value(field, kind, arg)).fill_null(op == "ne")
    if op in ("in", "not_in"):
        if not isinstance(arg, list):
            raise FilterError(f"'{op}' takes a list")
        inside = col.is_in([check_value(field, kind, v) for v in arg]).fill_null(False)
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
        prefixes = {p for p in (normalise_prefix(e) for e in load_list(lists_dir, str(arg))) if p}
        number = col if field == "callee_number" else normalise_number(col)  # enrichment normalised that one
        # one hash lookup per prefix length, not one scan per prefix
        by_length: dict[int, list[str]] = {}
        for prefix in sorted(prefixes):
            by_length.setdefault(len(prefix), []).append(prefix)
        hits = [number.str.slice(0, n).is_in(group) for n, group in sorted(by_length.items())]
        return functools.reduce(lambda a, b: a | b, hits).fill_null(False) if hits else pl.lit(False)
    raise FilterError(f"unknown operator '{op}' (known: {', '.join(OPS)})")
