"""Window arithmetic for the frame detectors (`fraudwatch.detect.windows.frame`): per-key aggregates over
(ts - period, ts] computed with sorts, as-of joins and rolling groups rather than a loop per key, and the names of
the columns the detectors add to the events they keep.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

import polars as pl

NEW = "_new"
VALUE = "_value"
COUNTED = "_counted"  # the event is already behind a match
OWNER = "_owner"  # time of the hot event an event is counted for
TAKEN = "_taken"
SEG = "_seg"
CODED = "_k_"  # prefix of a text column's 64-bit hash, which the frame path groups, sorts and joins on instead
UNIT_SCALE = {"us": 1, "ns": 1000}  # time units the small path compares as integers (per microsecond)


def period_text(seconds: float) -> str:
    return f"{round(seconds * 1_000_000)}us"


def delta(seconds: float) -> dt.timedelta:
    return dt.timedelta(microseconds=round(seconds * 1_000_000))


def micros(span: dt.timedelta) -> int:
    return span // dt.timedelta(microseconds=1)


def uncoded(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` without the hashes `WindowDetector._coded` added (the kept window holds the events as they came)."""
    return frame.drop([c for c in frame.columns if c.startswith(CODED)])


def gathered(column: pl.Series, groups: list[list[int]]) -> list[list[Any]]:
    """The values of `column` at each group of rows, fetched in one gather."""
    flat = [i for g in groups for i in g]
    values = column[flat].to_list() if flat else []  # indexing by a list: no query
    out, at = [], 0
    for g in groups:
        out.append(values[at:at + len(g)])
        at += len(g)
    return out


def rolling(frame: pl.DataFrame, keys: list[str], period: float, agg: pl.Expr) -> pl.DataFrame:
    """`agg` over (ts - period, ts] per key, joined back onto every event (events at one instant share it)."""
    rolled = (frame.rolling(index_column="ts", period=period_text(period), group_by=keys).agg(agg.alias(VALUE))
              .unique(subset=[*keys, "ts"], keep="last"))
    return frame.join(rolled, on=[*keys, "ts"], how="left", maintain_order="left")


def asof(frame: pl.DataFrame, keys: list[str], at: pl.Expr, running: pl.DataFrame) -> pl.Series:
    """Per row of `frame`, the last `_run` of `running` (sorted by `_t`) at or before `at` for the row's key —
    the last of equal times, i.e. the running total after all of them; 0 before the first."""
    left = frame.select(*keys, at.alias("_t"))
    got = left.join_asof(running, on="_t", by=keys, strategy="backward", check_sortedness=False)
    return got.get_column("_run").fill_null(0)


def scored_rows(frame: pl.DataFrame) -> pl.DataFrame:
    """The events of `frame` whose value is wanted: the new ones, the only ones that can be hot. The kept events
    still count in their windows, but are not scored again: in a long window they are most of the frame. A frame
    of new events only (a first batch, a window shorter than the gap between batches) is not copied."""
    new = frame.get_column(NEW)
    return frame if new.all() else frame.filter(new)


def with_value(frame: pl.DataFrame, values: pl.Series) -> pl.DataFrame:
    """`frame` with `_value`: `values` at the rows `scored_rows` gave, in order, and null at the others."""
    if values.len() == frame.height:
        return frame.with_columns(values.alias(VALUE))
    column = pl.repeat(None, frame.height, dtype=values.dtype, eager=True)
    column.scatter(frame.get_column(NEW).arg_true(), values)
    return frame.with_columns(column.alias(VALUE))


def covering(frame: pl.DataFrame, keys: list[str], spans: pl.DataFrame) -> pl.DataFrame:
    """`frame` (sorted by ts) with `_value`: per key, how many of the half-open spans [_a, _b) of `spans` hold
    the event's ts (for the new events: `with_value`). A sweep — +1 at each start, -1 at each end, a running
    sum per key read at each event time with an as-of join — so it costs a few sorts whatever the window holds."""
    steps = pl.concat([spans.select(*keys, pl.col("_a").alias("_t"), pl.lit(1, pl.Int64).alias("_d")),
                       spans.select(*keys, pl.col("_b").alias("_t"), pl.lit(-1, pl.Int64).alias("_d"))])
    running = steps.sort("_t").select(*keys, "_t", pl.col("_d").cum_sum().over(keys).alias("_run"))
    return with_value(frame, asof(scored_rows(frame), keys, pl.col("ts"), running))


def by_group(frame: pl.DataFrame, cols: list[str]) -> tuple[pl.DataFrame, pl.Expr]:
    """`frame` (sorted by ts) re-sorted by `cols` then ts, with `_i` its original row, and an expression true on
    the first row of each group: a sort, cheaper than `over` when the groups are many and small."""
    ordered = frame.with_row_index("_i").sort([*cols, "_i"])
    same = functools.reduce(lambda a, b: a & b, [pl.col(c).eq_missing(pl.col(c).shift(1)) for c in cols])
    return ordered, ~same.fill_null(False)


def running_count(frame: pl.DataFrame, keys: list[str]) -> pl.Series:
    """1, 2, 3 ... per key in ts order (`frame` sorted by ts)."""
    if len(keys) == 1:  # one column: a window expression is cheaper than a sort
        return frame.select(pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over(keys).alias("_run")).to_series()
    ordered, first = by_group(frame, keys)
    idx = pl.int_range(pl.len(), dtype=pl.Int64)
    start = pl.when(first).then(idx).forward_fill()
    return ordered.select("_i", (idx - start + 1).alias("_run")).sort("_i").get_column("_run")


def previous_time(frame: pl.DataFrame, cols: list[str]) -> pl.Series:
    """The ts of the previous event with the same `cols` values (null for the first), in `frame`'s order."""
    ordered, first = by_group(frame, cols)
    return ordered.select("_i", pl.when(~first).then(pl.col("ts").shift(1)).alias("_prev")).sort("_i") \
        .get_column("_prev")


def count_in_window(frame: pl.DataFrame, keys: list[str], period: float) -> pl.DataFrame:
    """Events per key in (ts - period, ts]: the key's running count at ts less its running count at ts - period
    (`frame` is sorted by ts; for the new events: `with_value`)."""
    running = frame.select(*keys, pl.col("ts").alias("_t")).with_columns(running_count(frame, keys).alias("_run"))
    scored = scored_rows(frame)
    upto = asof(scored, keys, pl.col("ts"), running)
    before = asof(scored, keys, pl.col("ts") - delta(period), running)
    return with_value(frame, upto - before)


def distinct_in_window(frame: pl.DataFrame, keys: list[str], period: float, field: str) -> pl.DataFrame:
    """Distinct non-null `field` values per key in (ts - period, ts]. An event is its value's first occurrence
    in the windows ending in [max(ts, previous occurrence + period), ts + period): count those spans."""
    w = delta(period)
    valued = frame.filter(pl.col(field).is_not_null())
    prev = previous_time(valued, [*keys, field])
    spans = valued.select(*keys, pl.max_horizontal(pl.col("ts"), prev + w).alias("_a"), (pl.col("ts") + w).alias("_b"))
    return covering(frame, keys, spans)
