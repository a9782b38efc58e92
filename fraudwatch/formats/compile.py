"""Compiling a line format into the DuckDB SQL that parses a batch of lines.

The batch is an Arrow table `batch(idx, off, line)` registered on the connection. Parsing is two statements:

1. `cls`  — every line gets `k`: the index of the first pattern variant that fully matches it (RE2's DFA, no
   captures, so this pass is cheap), -1 when an ignore rule swallows it, -2 when nothing matches.
2. `conv` — for each variant, only its own lines run the capturing regex once; captured text is converted to the
   column types (timestamps, integers, canonical IPs) and every conversion that fails names itself in `bad`.

Nothing here runs per line in Python, and all SQL text comes from format files (operator data), never from the
lines themselves: lines only ever reach DuckDB as column values.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fraudwatch.formats.spec import ENGINE_COLUMNS, LineFormat, Pattern, TimeSpec
from fraudwatch.sqltext import lit
from fraudwatch.store.schema import TABLES, Column

IPV4 = r"^(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$"


def _ipv6_as_printed() -> str:
    """IPv6 text that `ipaddress` prints as it is (`canonical_ip` returns it unchanged), conservatively: lowercase
    hextets without leading zeros, none of them zero, either eight of them or with one '::' standing for at
    least two zero hextets (the only run of zeros, so the one `ipaddress` compresses). Anything else, such as
    '2001:db8:0:1::1', is left to `fw_ip`; so is IPv4-mapped '::ffff:...', which `canonical_ip` folds to IPv4."""
    hextet = "[1-9a-f][0-9a-f]{0,3}"

    def run(n: int, up_to: bool = False) -> str:
        if n == 0:
            return ""
        return f"(?:{hextet}(?::{hextet}){{0,{n - 1}}})?" if up_to else f"{hextet}(?::{hextet}){{{n - 1}}}"

    forms = [f"{run(i)}::{run(6 - i, up_to=True)}" for i in range(7)] + [f"{hextet}(?::{hextet}){{7}}"]
    return "^(?:" + "|".join(forms) + ")$"


IPV6_AS_PRINTED = _ipv6_as_printed()
IP_COLUMNS = frozenset({"src_ip", "dst_ip", "caller_ip", "callee_ip"})
PORT_COLUMNS = frozenset({"src_port", "dst_port"})
_INTS = ("BIGINT", "INTEGER", "SMALLINT")


def ip_expr(raw: str) -> str:
    """Canonical IP text or NULL: IPv4, and IPv6 already in canonical form, checked in SQL; anything else through
    the `fw_ip` function, a Python call per vector that holds the GIL while the parse's threads wait their turn
    (figures: benchmarks/RESULTS.md, "Canonical IPv6 checked in SQL before `fw_ip`")."""
    return (f"CASE WHEN regexp_full_match({raw}, {lit(IPV4)}) OR (regexp_full_match({raw}, {lit(IPV6_AS_PRINTED)}) "
            f"AND NOT starts_with({raw}, '::ffff:')) THEN {raw} ELSE fw_ip({raw}) END")


def convert_expr(column: Column, raw: str) -> str:
    """Captured (or CSV) text -> the column's type; NULL when empty or unconvertible."""
    text = f"NULLIF({raw}, '')"
    if column.name in IP_COLUMNS:
        return ip_expr(text)
    if column.type in _INTS:
        value = f"TRY_CAST({text} AS {column.type})"
        if column.name in PORT_COLUMNS:
            return f"(CASE WHEN {value} BETWEEN 0 AND 65535 THEN {value} END)"
        return value
    if column.type != "VARCHAR":
        return f"TRY_CAST({text} AS {column.type})"
    return text


def time_expr(spec: TimeSpec, raw: str, tz: str, year: int, ref_epoch: float) -> str:
    """The `ts` group -> TIMESTAMPTZ. Zone-less stamps are read in the source's zone `tz`."""
    text = f"regexp_replace({raw}, ' +', ' ', 'g')" if any("%b" in f or "%e" in f for f in spec.formats) else raw
    if spec.has_zone:  # RFC 3339 'Z' means UTC; DuckDB's %z wants an offset
        text = f"regexp_replace({text}, 'Z$', '+00:00')"
    formats = spec.formats
    if spec.infer_year:
        text = f"concat('{year} ', {text})"
        formats = tuple(f"%Y {f}" for f in formats)
    parsed = f"try_strptime({text}, [{', '.join(lit(f) for f in formats)}])"
    if not spec.has_zone:
        parsed = f"timezone({lit(tz)}, {parsed})"
    if spec.infer_year:
        # A December line read in early January belongs to the year before the file's last write.
        ref = f"to_timestamp({ref_epoch!r})"
        parsed = (f"(CASE WHEN {parsed} > {ref} + INTERVAL 2 DAY "
                  f"THEN {parsed} - INTERVAL 1 YEAR ELSE {parsed} END)")
    return parsed


@dataclass(frozen=True)
class Variant:
    pattern: Pattern
    regex: str


@dataclass(frozen=True)
class CompiledFormat:
    """The SQL for one format, for one source's zone and year."""

    fmt: LineFormat
    variants: tuple[Variant, ...]
    classify_sql: str
    branches: tuple[str, ...]  # per variant: the SELECT converting the lines classified as it
    columns: tuple[str, ...]  # table columns conv carries, in order (beyond idx, off, variant, bad)
    # per variant: the same conversion of captures made outside DuckDB, from `caps(idx, off, k, m)` where `m` is
    # a struct of every group name of the format ('' when the group took no part), as regexp_extract gives them
    captured: tuple[str, ...] = ()
    group_names: tuple[str, ...] = ()  # the fields of `caps.m`, in order
    variant_groups: tuple[tuple[str, ...], ...] = ()  # each variant's groups, in regex order

    def captured_sql_for(self, present: Iterable[int]) -> str:
        """`convert_sql_for` over captures made outside DuckDB (no regex to compile: a small fixed cost)."""
        ks = sorted({k for k in present if 0 <= k < len(self.captured)}) or [0]
        return "\nUNION ALL\n".join(self.captured[k] for k in ks)

    def convert_sql_for(self, present: Iterable[int]) -> str:
        """The conversion of only the variants a batch has: binding the SQL (RE2 compiles every pattern in it)
        is a fixed cost per batch that dominates small batches, so a trickle of one line kind pays for one."""
        ks = sorted({k for k in present if 0 <= k < len(self.branches)}) or [0]
        return "\nUNION ALL\n".join(self.branches[k] for k in ks)


def variants_of(fmt: LineFormat) -> tuple[Variant, ...]:
    return tuple(Variant(p, r) for p in fmt.patterns for r in p.regexes)


def classify_sql(fmt: LineFormat) -> str:
    whens = []
    for k, v in enumerate(variants_of(fmt)):
        cond = f"regexp_full_match(line, {lit(v.regex)})"
        if v.pattern.contains:
            cond = f"contains(line, {lit(v.pattern.contains)}) AND {cond}"
        whens.append(f"WHEN {cond} THEN {k}")
    if fmt.ignores:
        whens.append(f"WHEN regexp_full_match(line, {lit(ignore_regex(fmt))}) THEN -1")
    return f"SELECT CAST(CASE {' '.join(whens)} ELSE -2 END AS INTEGER) AS k FROM batch"  # nosec B608 # generated from the format spec: regexes quoted by lit(), names checked against the schema


def ignore_regex(fmt: LineFormat) -> str:
    """The format's ignore rules as one regex (a line no pattern matched is ignored when it fully matches)."""
    return "|".join(f"(?:{i.regex})" for i in fmt.ignores)


_GROUP_NAME = re.compile(r"\(\?P<([A-Za-z_][A-Za-z0-9_]*)>")


def compile_format(fmt: LineFormat, tz: str = "UTC", year: int = 1970, ref_epoch: float = 0.0) -> CompiledFormat:
    table = TABLES[fmt.table]
    columns = tuple(c.name for c in table.columns if c.name not in ENGINE_COLUMNS)
    derived = {d.column: d for d in fmt.derives}
    branches = []
    captured = []
    own = []  # each variant's groups
    variants = variants_of(fmt)
    for k, v in enumerate(variants):
        groups = tuple(_GROUP_NAME.findall(v.regex))  # this variant's own groups, in regex order
        own.append(groups)
        extract = (f"SELECT idx, off, regexp_extract(line, {lit(v.regex)}, [{', '.join(lit(g) for g in groups)}]) "  # nosec B608 # regex and group names quoted by lit(); columns checked against the schema
                   f"AS m FROM cls WHERE k = {k}")
        branches.append(_branch(k, v, groups, extract, table, columns, derived, tz, year, ref_epoch))
        captured.append(_branch(k, v, groups, f"SELECT idx, off, m FROM caps WHERE k = {k}", table, columns,  # nosec B608 # k is an integer index
                                derived, tz, year, ref_epoch))
    names = tuple(dict.fromkeys(g for groups in own for g in groups))
    return CompiledFormat(fmt, variants, classify_sql(fmt), tuple(branches), columns, tuple(captured), names,
                          tuple(own))


def _branch(k: int, v: Variant, groups: tuple[str, ...], extract: str, table: Any, columns: tuple[str, ...],
            derived: dict[str, Any], tz: str, year: int, ref_epoch: float) -> str:
    """The SELECT converting the captures of variant `k` (from `extract`: idx, off, m) into typed columns."""
    conv: list[str] = []
    bad: list[str] = []
    for name in columns:
        col = table.column(name)
        assert col is not None
        if name == "ts":
            conv.append(f"{time_expr(v.pattern.time, 'm.ts', tz, year, ref_epoch)} AS ts")
            bad.append("CASE WHEN ts IS NULL THEN 'bad ts' END")
        elif name in groups:
            conv.append(f"{convert_expr(col, f'm.{name}')} AS {name}")
            bad.append(f"CASE WHEN m.{name} <> '' AND {name} IS NULL THEN 'bad {name}' END")
        elif name in v.pattern.set:
            conv.append(f"CAST({lit(v.pattern.set[name])} AS {col.type}) AS {name}")
        elif name in derived:
            conv.append(f"CAST(NULL AS {col.type}) AS {name}")  # filled in the outer select
        else:
            conv.append(f"CAST(NULL AS {col.type}) AS {name}")
    inner = f"SELECT idx, off, m, {', '.join(conv)} FROM ({extract})"  # nosec B608 # conversions of schema columns, built in this module
    outer_cols = []
    for name in columns:
        d = derived.get(name)
        if d is None or name in groups or name in v.pattern.set:
            outer_cols.append(name)
            continue
        cases = " ".join(f"WHEN regexp_matches({d.source}, {lit(rx)}) THEN {lit(val)}" for rx, val in d.cases)
        outer_cols.append(f"CASE {cases} ELSE {lit(d.default)} END AS {name}")
    bad_sql = f"concat_ws(', ', {', '.join(bad)})" if bad else "''"
    return f"SELECT idx, off, {k} AS variant, {', '.join(outer_cols)}, {bad_sql} AS bad FROM ({inner})"  # nosec B608 # k an integer, columns checked against the schema
