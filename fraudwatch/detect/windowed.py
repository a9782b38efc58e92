"""Sliding-window rule types: threshold, distinct, sum, spike and list_match.

Each event is scored on the window ending at its own time, (ts - window, ts], per key — event time, so a replay
scores exactly as the live run did, and there is no midnight reset. Between batches a detector keeps only the
events still inside its longest window.

An event whose value reaches the rule's lowest level is *hot*. The events behind a match are the events in the
window of a hot event, each counted once (a flag carried with the kept events), so the counts of matches add up
to the same total however the stream was cut into batches. A key's hot events form one episode until the gap
between the episode's last hot event and the window of the next one exceeds the rule's `cooldown` — the same
test the alert book applies across batches, so one batch or many give the same alerts.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import ClassVar

import polars as pl

from fraudwatch.detect.base import (
    Context,
    Match,
    evidence_aggs,
    evidence_from_row,
    key_text,
    lowest_level,
    severity_of,
)
from fraudwatch.detect.filters import compile_where
from fraudwatch.detect.spec import Common, Duration

_NEW = "_new"
_VALUE = "_value"
_COUNTED = "_counted"  # the event is already behind a match
_OWNER = "_owner"  # time of the hot event an event is counted for
_TAKEN = "_taken"
_SEG = "_seg"


def _us(seconds: float) -> str:
    return f"{round(seconds * 1_000_000)}us"


def _delta(seconds: float) -> dt.timedelta:
    return dt.timedelta(microseconds=round(seconds * 1_000_000))


class WindowDetector:
    """Scores events on rolling per-key aggregates; subclasses say what the aggregate is."""

    history: float  # seconds of events to keep between batches

    def __init__(self, common: Common, ctx: Context, columns: set[str]) -> None:
        for k in common.key:
            if k not in columns:
                raise ValueError(f"unknown field '{k}' in 'key'")
        self.common = common
        self.where = compile_where(common.where, ctx.lists_dir, columns)
        self.keys = list(common.key) or ["_global"]
        self.history = common.window
        self.buffer: pl.DataFrame | None = None

    def needed(self) -> list[str]:
        """Columns this detector reads besides ts and the key."""
        return []

    def score(self, frame: pl.DataFrame) -> pl.DataFrame:
        """`frame` (sorted by ts) with a `_value` column: the metric at each event."""
        raise NotImplementedError

    def process(self, events: pl.DataFrame) -> list[Match]:
        sel = events.filter(self.where)
        if self.keys == ["_global"]:
            sel = sel.with_columns(pl.lit("*").alias("_global"))
        if self.keys != ["_global"]:
            sel = sel.filter(pl.all_horizontal(pl.col(k).is_not_null() for k in self.keys))
        keep = [c for c in dict.fromkeys(["ts", *self.keys, *self.needed(), "id", "flowno", "source", "line_no",
                                          "byte_offset"])
                if c in sel.columns]
        sel = sel.select(keep).with_columns(pl.lit(True).alias(_NEW), pl.lit(False).alias(_COUNTED))
        if self.buffer is not None and self.buffer.height:
            sel = pl.concat([self.buffer, sel], how="diagonal_relaxed")
        if not sel.height:
            return []
        sel = sel.sort("ts", maintain_order=True)
        scored, matches = self._matches(self.score(sel))
        newest: dt.datetime = scored.get_column("ts").max()  # type: ignore[assignment]
        cutoff = newest - dt.timedelta(seconds=self.history)
        self.buffer = scored.filter(pl.col("ts") > cutoff).drop(_VALUE).with_columns(pl.lit(False).alias(_NEW))
        return matches

    def _matches(self, scored: pl.DataFrame) -> tuple[pl.DataFrame, list[Match]]:
        """`scored` with the events now behind a match flagged, and one match per episode of a key in this
        batch — computed with joins, not a loop per key (a botnet brings thousands of keys into one batch)."""
        c, keys = self.common, self.keys
        is_hot = pl.col(_NEW) & (pl.col(_VALUE) >= lowest_level(c))
        if not scored.select(is_hot.any()).item():
            return scored, []
        # each event is counted for the next hot event of its key, when that is less than a window later
        owner = pl.when(is_hot).then(pl.col("ts")).backward_fill().over(keys)
        scored = scored.with_columns(owner.alias(_OWNER)).with_columns(
            (~pl.col(_COUNTED) & (pl.col(_OWNER) - pl.col("ts") < _delta(c.window))).fill_null(False).alias(_TAKEN))
        taken = scored.filter(_TAKEN)
        per_hot = taken.group_by([*keys, _OWNER]).agg(pl.col("ts").min().alias("_start"), pl.len().alias("_n"))
        hot = (scored.filter(is_hot).group_by([*keys, "ts"]).agg(pl.col(_VALUE).max())
               .join(per_hot, left_on=[*keys, "ts"], right_on=[*keys, _OWNER], how="left")
               .with_columns(pl.coalesce("_start", "ts").alias("_start"), pl.col("_n").fill_null(0))
               .sort("ts"))
        previous = pl.col("ts").shift(1).over(keys)
        opens = previous.is_null() | (pl.col("_start") - previous > _delta(c.cooldown))
        hot = hot.with_columns(opens.cast(pl.UInt32).alias(_SEG)).with_columns(pl.col(_SEG).cum_sum().over(keys))
        episodes = hot.group_by([*keys, _SEG]).agg(
            pl.col("_start").min().alias("_first"), pl.col("ts").min().alias("_crossing"),
            pl.col("ts").max().alias("_last"), pl.col("_n").sum().alias("_count"),
            pl.col(_VALUE).max().alias("_peak")).sort("_crossing")
        behind = taken.join(hot.select([*keys, "ts", _SEG]), left_on=[*keys, _OWNER], right_on=[*keys, "ts"])
        facts = self.fact_aggs()
        details = behind.sort("ts").group_by([*keys, _SEG]).agg(*evidence_aggs(behind.columns), *facts)
        episodes = episodes.join(details, on=[*keys, _SEG], how="left").sort("_crossing")
        fact_names = [f.meta.output_name() for f in facts]
        out = []
        for row in episodes.iter_rows(named=True):
            severity = severity_of(c, float(row["_peak"]))
            assert severity is not None
            evidence = evidence_from_row(row)
            evidence.update({name: row[name] for name in fact_names})
            out.append(Match(
                rule=c.id, key_type=c.key_type, key=key_text(row, c.key), severity=severity,
                first_seen=row["_first"], detected_at=row["_crossing"], last_seen=row["_last"],
                count=int(row["_count"]), value=float(row["_peak"]), evidence=evidence))
        counted = scored.with_columns(pl.col(_COUNTED) | pl.col(_TAKEN)).drop(_OWNER, _TAKEN)
        return counted, out

    def fact_aggs(self) -> list[pl.Expr]:
        """Rule-specific facts for the alert (e.g. the distinct values seen), as aggregations over the events
        behind it; each named after the evidence key it fills."""
        return []


def _rolling(frame: pl.DataFrame, keys: list[str], period: float, agg: pl.Expr) -> pl.DataFrame:
    """`agg` over (ts - period, ts] per key, joined back onto every event (events at one instant share it)."""
    rolled = (frame.rolling(index_column="ts", period=_us(period), group_by=keys).agg(agg.alias(_VALUE))
              .unique(subset=[*keys, "ts"], keep="last"))
    return frame.join(rolled, on=[*keys, "ts"], how="left", maintain_order="left")


@dataclass(frozen=True, eq=False)
class Threshold:
    """Count of matching events per key in a sliding window (REGISTER floods, 403 bursts, calls per minute)."""

    common: Common
    type_name: ClassVar[str] = "threshold"

    def detector(self, ctx: Context, columns: set[str]) -> WindowDetector:
        c = self.common

        class _D(WindowDetector):
            def score(self, frame: pl.DataFrame) -> pl.DataFrame:
                return _rolling(frame, self.keys, c.window, pl.len())

        return _D(c, ctx, columns)


class _FieldDetector(WindowDetector):
    """A window detector whose value aggregates one field of the events (distinct count, sum)."""

    def __init__(self, common: Common, ctx: Context, columns: set[str], field: str, agg: pl.Expr,
                 facts: list[pl.Expr] | None = None) -> None:
        if field not in columns:
            raise ValueError(f"unknown field '{field}'")
        super().__init__(common, ctx, columns)
        self.field, self.agg, self.facts = field, agg, facts or []

    def needed(self) -> list[str]:
        return [self.field]

    def score(self, frame: pl.DataFrame) -> pl.DataFrame:
        return _rolling(frame, self.keys, self.common.window, self.agg)

    def fact_aggs(self) -> list[pl.Expr]:
        return self.facts


@dataclass(frozen=True, eq=False)
class Distinct:
    """Distinct values of `field` per key in a window (usernames per IP, destinations per account)."""

    common: Common
    field: str
    type_name: ClassVar[str] = "distinct"

    def detector(self, ctx: Context, columns: set[str]) -> WindowDetector:
        fld = self.field
        return _FieldDetector(self.common, ctx, columns, fld, pl.col(fld).drop_nulls().n_unique(),
                              [pl.col(fld).drop_nulls().unique(maintain_order=True).head(20).alias(fld)])


@dataclass(frozen=True, eq=False)
class Sum:
    """Sum of a numeric `field` per key in a window (spend per account, billed minutes)."""

    common: Common
    field: str
    type_name: ClassVar[str] = "sum"

    def detector(self, ctx: Context, columns: set[str]) -> WindowDetector:
        fld = self.field
        return _FieldDetector(self.common, ctx, columns, fld, pl.col(fld).cast(pl.Float64).fill_null(0).sum())


@dataclass(frozen=True, eq=False)
class Spike:
    """Count in the window against the key's own recent rate: value = (count + 1) / (expected + 1), where
    expected is the count per window over the preceding `baseline`. `min_count` keeps quiet keys quiet."""

    common: Common
    baseline: Duration
    min_count: int = 10
    type_name: ClassVar[str] = "spike"

    def check(self) -> None:
        if self.baseline <= self.common.window:
            raise ValueError("'baseline' must be longer than 'window'")

    def detector(self, ctx: Context, columns: set[str]) -> WindowDetector:
        c, baseline, min_count = self.common, self.baseline, self.min_count

        class _D(WindowDetector):
            def score(self, frame: pl.DataFrame) -> pl.DataFrame:
                now = _rolling(frame, self.keys, c.window, pl.len()).rename({_VALUE: "_now"})
                both = _rolling(now, self.keys, baseline, pl.len()).rename({_VALUE: "_long"})
                expected = (pl.col("_long") - pl.col("_now")) * (c.window / (baseline - c.window))
                ratio = (pl.col("_now") + 1) / (expected + 1)
                value = pl.when(pl.col("_now") >= min_count).then(ratio).otherwise(0.0)
                return both.with_columns(value.alias(_VALUE)).drop("_now", "_long")

        d = _D(c, ctx, columns)
        d.history = baseline
        return d


@dataclass(frozen=True, eq=False)
class ListMatch:
    """Events whose `field` matches a shipped or user list (scanner user-agents, high-risk prefixes), counted
    per key in the window; `match` is contains (case-insensitive substring), prefix (numbers) or exact."""

    common: Common
    field: str
    list: str
    match: str = "contains"
    type_name: ClassVar[str] = "list_match"

    def check(self) -> None:
        if self.match not in ("contains", "prefix", "exact"):
            raise ValueError("'match' must be contains, prefix or exact")

    def detector(self, ctx: Context, columns: set[str]) -> WindowDetector:
        from fraudwatch.detect.filters import load_list

        op = {"contains": {"list": self.list}, "prefix": {"prefix_list": self.list},
              "exact": {"in": list(load_list(ctx.lists_dir, self.list))}}[self.match]
        c, fld = self.common, self.field

        class _D(WindowDetector):
            def needed(self) -> list[str]:
                return [fld]

            def score(self, frame: pl.DataFrame) -> pl.DataFrame:
                return _rolling(frame, self.keys, c.window, pl.len())

            def fact_aggs(self) -> list[pl.Expr]:
                return [pl.col(fld).unique(maintain_order=True).head(10).alias(fld)]

        d = _D(c, ctx, columns)
        d.where = d.where & compile_where({fld: op}, ctx.lists_dir, columns)  # the rule's own where, and the list
        return d
