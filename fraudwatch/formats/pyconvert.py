"""Typing captured fields without DuckDB, for small batches (ingest's and the sentry's): the rows the ingest SQL
would give, for the values whose reading is beyond doubt, and the rest left to that SQL.

The conversion SQL costs DuckDB a fixed time per batch whatever its size (binding and planning a few hundred
expressions), which a tick of a few hundred lines cannot afford (figures: benchmarks/RESULTS.md, "Small batches
typed without DuckDB"). Here (column by column, in polars and Arrow) a row is typed only when every one of its
values has a shape whose SQL reading is certain: a timestamp that fully matches the strict shape of the pattern's
*first* time format (4-digit year, 2-digit fields, a fraction of the length the code takes) in a zone where the
local time is unambiguous; integers of plain ASCII digits; addresses through `canonical_ip`, the function behind
the SQL's `fw_ip` (its IPv4 check before it only spares calls that would return the text unchanged); text as
captured. Anything else — another time format, a zone in the format, an inferred year, a derived column, a sign, a
space, a non-ASCII digit — sends the row to the SQL, so the two paths cannot disagree on it.
tests/formats/test_capture.py holds them to the same rows on every known line.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import compress
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa

from fraudwatch.formats.compile import IP_COLUMNS, PORT_COLUMNS, CompiledFormat
from fraudwatch.netaddr import canonical_ip, canonical_ip_array
from fraudwatch.sqltext import lit
from fraudwatch.store.schema import ARROW_TYPES, TABLES

# strict shapes (ASCII digits only: the same in every regex engine), and chrono's reading of each code
_CODES = {"%Y": ("[0-9]{4}", "%Y"), "%m": ("[0-9]{2}", "%m"), "%d": ("[0-9]{2}", "%d"), "%H": ("[0-9]{2}", "%H"),
          "%M": ("[0-9]{2}", "%M"), "%S": ("[0-9]{2}", "%S"), "%g": ("[0-9]{1,3}", "%.f"), "%f": ("[0-9]{1,6}", "%.f")}
_RANGES = {"SMALLINT": 1 << 15, "INTEGER": 1 << 31, "BIGINT": 1 << 63}
_TYPES = {"VARCHAR": pl.String, "SMALLINT": pl.Int16, "INTEGER": pl.Int32, "BIGINT": pl.Int64}
_DIGITS = "^[0-9]{1,18}$"
STAMPS_KEPT = 65_536  # time stamps (and their seconds) whose reading `rows` remembers
Capture = tuple[int, int, int, tuple[str, ...]]  # idx, off, variant, its groups in regex order


_CASTS = threading.Lock()


@functools.lru_cache(maxsize=1024)
def _cast(literal: str, sql_type: str) -> Any:
    """What the SQL's CAST makes of a format's constant (asked of DuckDB once: its casts are the reference)."""
    with _CASTS:
        con = duckdb.connect(":memory:")
        try:
            return con.execute(f"SELECT CAST({literal} AS {sql_type})").fetchall()[0][0]
        finally:
            con.close()


@dataclass(frozen=True)
class _Time:
    shape: str  # the strict shape, anchored
    chrono: str  # the same format for polars' strptime
    python: re.Pattern[str]  # the same shape for `re.fullmatch`, the fraction's digits (if any) its group 1


def _time_reader(formats: Sequence[str]) -> _Time | None:
    """The strict shape of the first format, when all its codes are ones read here (a fraction only after a
    dot: chrono reads the dot with it)."""
    shape: list[str] = []
    chrono: list[str] = []
    python: list[str] = []
    seen: set[str] = set()
    i, f = 0, formats[0]
    while i < len(f):
        if f[i] == "%":
            code = f[i:i + 2]
            if code not in _CODES or code in seen:
                return None
            if code in ("%g", "%f"):
                if not shape or shape[-1] != re.escape(".") or seen & {"%g", "%f"}:
                    return None
                shape[-1], chrono[-1] = r"\.", ""
            seen.add(code)
            shape.append(_CODES[code][0])
            chrono.append(_CODES[code][1])
            python.append(f"({_CODES[code][0]})" if code in ("%g", "%f") else _CODES[code][0])
            i += 2
        else:
            if not f[i].isascii():
                return None
            shape.append(re.escape(f[i]))
            chrono.append(f[i])
            python.append(re.escape(f[i]))
            i += 1
    if not {"%Y", "%m", "%d"} <= seen:
        return None
    return _Time("^" + "".join(shape) + "$", "".join(chrono), re.compile("".join(python), re.ASCII))


@dataclass(frozen=True)
class _Plan:
    """One variant: its time reader, the groups it reads, and the select typing them."""

    time: _Time
    used: tuple[str, ...]  # the groups it reads besides ts: the output ones, and those only checked
    exprs: tuple[pl.Expr, ...]  # the select that types them (see `_exprs`)
    ts_at: int  # where ts is among the variant's groups
    # per output column after ts, then per column only checked: (its group's position, or -1 for a constant;
    # how it is typed, _TEXT, _IP or _INT; the constant, or for _INT the bound it must stay under)
    cells: tuple[tuple[int, int, Any], ...]
    shown: int  # how many of `cells` are output columns


_TEXT, _IP, _INT = 0, 1, 2


def _by_variant(rows: Sequence[Capture]) -> dict[int, list[int]]:
    """The positions of the rows of each variant, in order."""
    out: dict[int, list[int]] = {}
    for pos, row in enumerate(rows):
        out.setdefault(row[2], []).append(pos)
    return out


class CaptureConverter:
    """Types the captures of one compiled format; see the module docstring for what it leaves to the SQL.

    `columns` narrows the output to what the caller reads (ts always); a row is still left out, or left to the
    SQL, for its other values exactly as for the output ones, so it is kept or rejected as ingest would."""

    def __init__(self, compiled: CompiledFormat, tz: str, columns: Sequence[str] | None = None) -> None:
        table = TABLES[compiled.fmt.table]
        self.types = {c: table.column(c).type for c in compiled.columns}  # type: ignore[union-attr]
        self.order = list(compiled.columns)
        wanted = set(columns) if columns is not None else set(compiled.columns)
        self.columns = [c for c in compiled.columns if c in wanted or c == "ts"]
        self.tz = tz
        self.variant_groups = compiled.variant_groups
        derived = {d.column for d in compiled.fmt.derives}
        self.plans: list[_Plan | None] = []  # None: the variant is left to the SQL
        for k, v in enumerate(compiled.variants):
            spec = v.pattern.time
            reader = None if spec.has_zone or spec.infer_year else _time_reader(spec.formats)
            groups = set(compiled.variant_groups[k])
            if reader is None or "ts" not in groups \
                    or any(c in derived and c not in groups and c not in v.pattern.set for c in compiled.columns) \
                    or any(self.types[c] not in _TYPES for c in groups if c != "ts"):
                self.plans.append(None)
                continue
            # what the SQL's CAST makes of each constant the output has, asked once
            constants = {c: _cast(lit(v.pattern.set[c]), self.types[c]) for c in self.columns
                         if c in v.pattern.set and c not in groups}
            checked = [c for c in compiled.columns if c in groups and c != "ts" and c not in wanted
                       and (c in IP_COLUMNS or self.types[c] != "VARCHAR")]  # a bad value still rejects the row
            used = [c for c in self.columns if c in groups and c != "ts"] + checked
            at = {g: j for j, g in enumerate(compiled.variant_groups[k])}
            cells = [self._cell(c, at.get(c, -1), constants.get(c)) for c in self.columns if c != "ts"]
            cells += [self._cell(c, at[c], None) for c in checked]
            self.plans.append(_Plan(reader, tuple(used), self._exprs(k, reader, constants, used), at["ts"],
                                    tuple(cells), len(cells) - len(checked)))
        self.row_names = ("idx", "off", "ts", *(c for c in self.columns if c != "ts"))  # what `rows` gives
        # per time reader: stamp, and stamp of a whole second -> epoch us (None: the SQL's)
        self.stamps: dict[_Time, dict[str, int | None]] = {}
        self.seconds: dict[_Time, dict[str, int | None]] = {}
        self.schema = pa.schema([("idx", pa.int64()), ("off", pa.int64()), ("variant", pa.int32()),
                                 *((c, ARROW_TYPES[self.types[c]]) for c in self.columns), ("bad", pa.string())])

    def convert(self, rows: Sequence[Capture]) -> tuple[pa.Table, list[int]]:
        """`conv` for the rows (idx, off, k, captures) read here, and the positions of those left to the SQL."""
        by_variant = _by_variant(rows)
        parts: list[pl.DataFrame] = []
        left: list[int] = []
        for k, positions in by_variant.items():
            plan = self.plans[k]
            if plan is None:
                left += positions
                continue
            frame, ok = self._variant(k, plan, [rows[p] for p in positions])
            left += [p for p, good in zip(positions, ok, strict=True) if not good]
            parts.append(frame)
        if not parts:
            return self.schema.empty_table(), left
        done = pl.concat(parts).sort("idx").to_arrow()
        return done.cast(self.schema), sorted(left)

    def _variant(self, k: int, plan: _Plan, rows: list[tuple[int, int, int, tuple[str, ...]]]) \
            -> tuple[pl.DataFrame, list[bool]]:
        """The typed rows of one variant that are read here, and for each row whether it is: one polars query,
        its expressions built once per variant (`_exprs`)."""
        idx, offs, _, groups = zip(*rows, strict=True)
        raw: dict[str, Any] = dict(zip(self.variant_groups[k], zip(*groups, strict=True), strict=True))
        data: dict[str, pl.Series] = {"idx": pl.Series(idx, dtype=pl.Int64), "off": pl.Series(offs, dtype=pl.Int64)}
        for c in ("ts", *plan.used):
            data[c] = pl.Series(c, raw[c], dtype=pl.String)
        for c in plan.used:
            if c in IP_COLUMNS:  # the SQL's ip_expr: its IPv4 check only spares fw_ip, the same function, calls
                data[f"_ip_{c}"] = pl.Series(canonical_ip_array(data[c].to_arrow()), dtype=pl.String)
        frame = pl.DataFrame(data).select(plan.exprs)
        keep = frame.get_column("_ok").to_list()
        return frame.filter(pl.col("_ok")).drop("_ok"), keep

    def _time_exprs(self, time: _Time) -> tuple[pl.Expr, pl.Expr]:
        """The typed `ts`, and whether it is read here (its strict shape, and a local time that exists once)."""
        ts = (pl.col("ts").str.strptime(pl.Datetime("us"), time.chrono, strict=False)
              .dt.replace_time_zone(self.tz, ambiguous="null", non_existent="null").dt.convert_time_zone("UTC"))
        return ts, pl.col("ts").str.contains(time.shape) & ts.is_not_null()

    def _cell(self, column: str, at: int, constant: Any) -> tuple[int, int, Any]:
        if at < 0:
            return at, _TEXT, constant
        if column in IP_COLUMNS:
            return at, _IP, None
        kind = self.types[column]
        if kind == "VARCHAR":
            return at, _TEXT, None
        return at, _INT, 65536 if column in PORT_COLUMNS else _RANGES[kind]

    def rows(self, rows: Sequence[Capture]) -> tuple[dict[str, list[Any]], list[int]]:
        """`convert` in plain Python lists, for the sentry's ticks (a few hundred lines, which a polars query per
        variant would cost more than they do): the good rows column by column (`row_names`), in line order, ts
        in epoch microseconds; a row with a bad value is left out (the sentry has no use for it); and the
        positions of the rows left to the SQL, as `convert` leaves them.

        The same checks as `_exprs`: text as captured, addresses through `canonical_ip` (the function behind
        `canonical_ip_array`), integers of 1 to 18 ASCII digits under the type's bound, and the times by
        `_exprs`' own expressions, once per distinct second (`_stamps`). tests/formats/test_capture.py holds
        it to `convert` on every known line."""
        by_variant = _by_variant(rows)
        left: list[int] = []
        kept: list[int] = []
        columns: list[list[Any]] = [[] for _ in self.row_names]
        for k, positions in by_variant.items():
            plan = self.plans[k]
            if plan is None:
                left += positions
                continue
            part, sql, bad = self._variant_rows(plan, [rows[p] for p in positions])
            left += [p for p, s in zip(positions, sql, strict=True) if s]
            good = [not (s or b) for s, b in zip(sql, bad, strict=True)]
            kept += compress(positions, good)
            for column, values in zip(columns, part, strict=True):
                column += compress(values, good)
        if len(by_variant) > 1:  # variants were typed apart: back to line order
            order = sorted(range(len(kept)), key=kept.__getitem__)
            columns = [[c[i] for i in order] for c in columns]
        return dict(zip(self.row_names, columns, strict=True)), sorted(left)

    def _variant_rows(self, plan: _Plan, rows: list[Capture]) -> tuple[list[list[Any]], list[bool], list[bool]]:
        """One variant's rows typed: the `row_names` columns, and for each row whether the SQL must read it
        and whether a value is bad."""
        n = len(rows)
        idx, offs, _, groups = zip(*rows, strict=True)
        captured = list(zip(*groups, strict=True))
        ts = self._stamps(plan.time, captured[plan.ts_at])
        sql: list[list[bool]] = [[t is None for t in ts]]
        bad: list[list[bool]] = []
        out: list[list[Any]] = [list(idx), list(offs), ts]
        for j, (at, kind, arg) in enumerate(plan.cells):
            if at < 0:
                values: list[Any] = [arg] * n
            elif kind == _TEXT:
                values = [v or None for v in captured[at]]
            elif kind == _IP:
                texts = captured[at]
                values = [canonical_ip(v) if v else None for v in texts]
                bad.append([c is None and v != "" for v, c in zip(texts, values, strict=True)])
            else:  # digits only: a sign, a space, another digit is the SQL's to read
                texts = captured[at]
                plain = [not v or (len(v) <= 18 and v.isascii() and v.isdigit()) for v in texts]
                sql.append([not p for p in plain])
                numbers = [int(v) if v and p else None for v, p in zip(texts, plain, strict=True)]
                bad.append([m is not None and m >= arg for m in numbers])
                values = [None if m is not None and m >= arg else m for m in numbers]
            if j < plan.shown:
                out.append(values)
        return out, [any(f) for f in zip(*sql, strict=True)], \
            [any(f) for f in zip(*bad, strict=True)] if bad else [False] * n

    def _stamps(self, time: _Time, stamps: Sequence[str]) -> list[int | None]:
        """Each stamp in epoch microseconds (None: the SQL reads it). `_time_exprs` reads each distinct second
        once, on the stamp with its fraction zero; the fraction's digits are then added here (chrono's `%.f`:
        '.5' is 500 ms). A local time is ambiguous, or skipped, for a whole second or not at all."""
        known = self.stamps.setdefault(time, {})
        new = set(stamps).difference(known)
        if new:
            if len(known) + len(new) > STAMPS_KEPT:
                known.clear()
                new = set(stamps)
            seconds = self.seconds.setdefault(time, {})
            split: dict[str, tuple[str, int] | None] = {}
            for stamp in new:
                m = time.python.fullmatch(stamp)
                if m is None:
                    split[stamp] = None
                elif m.lastindex:
                    split[stamp] = (stamp[:m.start(1)] + "0" + stamp[m.end(1):], int(m.group(1).ljust(6, "0")))
                else:
                    split[stamp] = (stamp, 0)
            whole = {s[0] for s in split.values() if s is not None}.difference(seconds)
            if whole:
                if len(seconds) + len(whole) > STAMPS_KEPT:
                    seconds.clear()
                    whole = {s[0] for s in split.values() if s is not None}
                ts, ok = self._time_exprs(time)
                read = pl.DataFrame({"ts": list(whole)}, schema={"ts": pl.String}).select(
                    pl.col("ts").alias("stamp"), pl.when(ok).then(ts.dt.epoch("us")).alias("us"))
                seconds.update(zip(read.get_column("stamp").to_list(), read.get_column("us").to_list(), strict=True))
            for stamp, parts in split.items():
                base = None if parts is None else seconds[parts[0]]
                known[stamp] = None if base is None or parts is None else base + parts[1]
        return [known[s] for s in stamps]

    def _exprs(self, k: int, time: _Time, constants: dict[str, Any], used: list[str]) -> tuple[pl.Expr, ...]:
        """The select typing variant `k`'s captures: the output columns (the others constants or null), `bad`
        and `_ok` (read here)."""
        ts, ok = self._time_exprs(time)
        values: dict[str, pl.Expr] = {}
        flags: list[pl.Expr] = []
        for c in sorted(used, key=self.order.index):
            kind, empty = self.types[c], pl.col(c) == ""
            if c in IP_COLUMNS:
                value = pl.col(f"_ip_{c}")
            elif kind == "VARCHAR":
                values[c] = pl.when(~empty).then(pl.col(c))  # text is never bad
                continue
            else:
                ok = ok & (pl.col(c).str.contains(_DIGITS) | empty)  # anything but plain digits: the SQL reads it
                number = pl.col(c).cast(pl.Int64, strict=False)
                top = 65536 if c in PORT_COLUMNS else _RANGES[kind]
                value = pl.when(number < top).then(number).cast(_TYPES[kind])
            values[c] = pl.when(~empty).then(value)
            flags.append(pl.when(~empty & values[c].is_null()).then(pl.lit(f"bad {c}")))
        bad = pl.concat_str(flags, separator=", ", ignore_nulls=True).fill_null("") if flags else pl.lit("")
        select = [pl.col("idx"), pl.col("off"), pl.lit(k, pl.Int32).alias("variant")]
        for c in self.columns:
            if c == "ts":
                select.append(ts.alias("ts"))
            elif c in values:
                select.append(values[c].alias(c))
            else:
                select.append(pl.lit(constants.get(c), _TYPES[self.types[c]]).alias(c))
        return (*select, bad.alias("bad"), ok.alias("_ok"))
