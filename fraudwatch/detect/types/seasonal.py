"""The seasonal rule type: a per-bucket metric against its own seasonal profile. Its state grows with keys and
buckets, so its frame detector serves replays and the watcher alike."""

from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any, ClassVar

import polars as pl

from fraudwatch.detect.base import Context, Match, key_text, severity_of
from fraudwatch.detect.filters import Selection
from fraudwatch.detect.spec import Duration
from fraudwatch.detect.types.base import RuleType
from fraudwatch.detect.types.filtered import Filtered


class SeasonalDetector(Filtered):
    def __init__(self, rule: Seasonal, ctx: Context, columns: set[str]) -> None:
        super().__init__(rule.common, ctx, columns, [rule.field] if rule.field else [])
        self.rule = rule
        self.size = dt.timedelta(seconds=rule.bucket)
        self.open: dict[str, dict[dt.datetime, set[Any] | list[int]]] = defaultdict(dict)  # key -> bucket -> tally
        self.closed: dict[str, deque[tuple[dt.datetime, float]]] = defaultdict(deque)
        self.clock: dt.datetime | None = None
        self.start: dt.datetime | None = None  # the profile's first bucket: the first event the rule saw

    def _bucket(self, ts: dt.datetime) -> dt.datetime:
        epoch = dt.datetime(1970, 1, 1, tzinfo=ts.tzinfo)
        n = (ts - epoch) // self.size
        return epoch + n * self.size

    def _empty(self) -> set[Any] | list[int]:
        return set() if self.rule.field else [0]

    def process(self, events: pl.DataFrame, selection: Selection | None = None) -> list[Match]:
        if events.height:
            oldest, newest = events.get_column("ts").min(), events.get_column("ts").max()
            if isinstance(newest, dt.datetime):
                self.clock = newest if self.clock is None else max(self.clock, newest)
            if self.start is None and isinstance(oldest, dt.datetime):
                self.start = self._bucket(oldest)
        sel = self.select(events, selection)
        fld = self.rule.field
        cols = ["ts", *self.keys] + ([fld] if fld else [])
        agg = pl.col(fld).drop_nulls().unique().alias("_v") if fld else pl.len().alias("_v")
        size = f"{round(self.rule.bucket * 1_000_000)}us"  # epoch-aligned, as _bucket
        grouped = sel.select(cols).with_columns(pl.col("ts").dt.truncate(size).alias("_b")) \
            .group_by([*self.keys, "_b"]).agg(agg) if sel.height else None
        if grouped is not None:
            for row in grouped.iter_rows(named=True):
                tally = self.open[key_text(row, self.common.key)].setdefault(row["_b"], self._empty())
                if isinstance(tally, set):
                    tally.update(row["_v"])
                else:
                    tally[0] += int(row["_v"])
        return self._close()

    def _close(self) -> list[Match]:
        """Score every bucket that ended before the current one, in order, each against the history before it
        (trimmed to `history` back from that bucket, so when buckets are closed does not matter)."""
        if self.clock is None:
            return []
        out = []
        current = self._bucket(self.clock)
        history = dt.timedelta(seconds=self.rule.history)
        for key in sorted(set(self.open) | set(self.closed)):
            series = self.closed[key]
            slots = self.open[key]
            # buckets without events are zeros, not gaps: that is what a drop looks like. A key first seen
            # after the profile began had zeros before (within the history kept).
            if series:
                b = series[-1][0] + self.size
            else:
                b = min(slots, default=current)
                if self.start is not None:
                    b = min(b, max(self.start, self._bucket(current - history)))
            while b < current:
                slots.setdefault(b, self._empty())
                b += self.size
            for b in sorted(x for x in slots if x < current):
                raw = slots.pop(b)
                value = float(len(raw)) if isinstance(raw, set) else float(raw[0])
                while series and series[0][0] < b - history:
                    series.popleft()
                match = self._score(key, b, value)
                series.append((b, value))
                if match:
                    out.append(match)
            while series and series[0][0] < current - history:
                series.popleft()
            if not slots:
                del self.open[key]
                if not any(v for _, v in series):  # all zeros: the same zeros come back if the key does
                    del self.closed[key]
        return out

    def _score(self, key: str, bucket: dt.datetime, value: float) -> Match | None:
        past = self.closed[key]
        week = dt.timedelta(days=7)
        day = dt.timedelta(days=1)
        same_week = [v for b, v in past if (bucket - b) % week == dt.timedelta(0)]
        same_day = [v for b, v in past if (bucket - b) % day == dt.timedelta(0)]
        recent = [v for _, v in list(past)[-12:]]
        candidates = ((same_week, "hour_of_week"), (same_day, "hour_of_day"), (recent, "recent"))
        chosen = next(((b, n) for b, n in candidates if len(b) >= self.rule.min_history), None)
        if chosen is None:
            return None
        basis, name = chosen
        med = statistics.median(basis)
        if med < self.rule.min_value:
            return None
        mad = statistics.median(abs(v - med) for v in basis)
        scale = max(1.4826 * mad, med ** 0.5, 1.0)
        z = (value - med) / scale
        direction = self.rule.direction
        signed = abs(z) if direction == "both" else (z if direction == "up" else -z)
        severity = severity_of(self.common, signed)
        if severity is None:
            return None
        c = self.common
        return Match(c.id, c.key_type, key, severity, bucket, bucket + self.size, bucket + self.size,
                     int(value), signed, {"bucket_value": value, "baseline_median": med, "baseline": name,
                                          "baseline_points": len(basis), "z": round(z, 2)})


@dataclass(frozen=True, eq=False)
class Seasonal(RuleType):
    """A per-bucket metric (event count, or distinct `field`) against its own seasonal profile: the same
    hour-of-week in past weeks, falling back to the same hour-of-day, then to the preceding buckets, when the
    history is short. The value is a robust z-score |x - median| / (1.4826 MAD, at least sqrt(median)), signed
    by `direction` (up, down or both). A bucket is scored when event time passes its end."""

    bucket: Duration
    history: Duration
    field: str | None = None
    direction: str = "both"
    min_history: int = 2
    min_value: float = 5.0  # a bucket whose baseline median is below this is not scored (too quiet to tell)
    type_name: ClassVar[str] = "seasonal"

    def check(self) -> None:
        if self.direction not in ("up", "down", "both"):
            raise ValueError("'direction' must be up, down or both")

    def fields(self) -> tuple[str, ...]:
        return (self.field,) if self.field else ()

    def frame_detector(self, ctx: Context, columns: set[str]) -> SeasonalDetector:
        return SeasonalDetector(self, ctx, columns)
