"""Rule types that count events per key in a sliding window: threshold, list_match and spike.

Their frame detectors (`WindowDetector` with the window's count as its value) and incremental ones (the base
`IncrementalDetector` counts events; a spike compares the count with its baseline) are here with them.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from typing import ClassVar

import polars as pl

from fraudwatch.detect.base import Context, lowest_level
from fraudwatch.detect.filters import Conjunct, compile_conjuncts, load_list
from fraudwatch.detect.spec import Common, Duration
from fraudwatch.detect.types.base import RuleType
from fraudwatch.detect.windows.arith import VALUE, count_in_window
from fraudwatch.detect.windows.frame import WindowDetector
from fraudwatch.detect.windows.incremental import IncrementalDetector, KeyWindow, to_micros


class CountDetector(WindowDetector):
    """The count of the key's events in the window."""

    small = "count"

    def score(self, frame: pl.DataFrame) -> pl.DataFrame:
        return count_in_window(frame, self.by, self.common.window)

    def could_be_hot(self, most: int) -> bool:  # the value is a count of events
        return most >= lowest_level(self.common)


@dataclass(frozen=True, eq=False)
class Threshold(RuleType):
    """Count of matching events per key in a sliding window (REGISTER floods, 403 bursts, calls per minute)."""

    type_name: ClassVar[str] = "threshold"
    monotone: ClassVar[bool] = True

    def frame_detector(self, ctx: Context, columns: set[str]) -> CountDetector:
        return CountDetector(self.common, ctx, columns)

    def incremental_detector(self, ctx: Context, columns: set[str]) -> IncrementalDetector:
        return IncrementalDetector(self.common, ctx, columns)


class ListMatchDetector(CountDetector):
    """The count of the key's events whose `field` matches the list (part of `conjuncts`), with the distinct
    values seen as a fact."""

    def __init__(self, common: Common, ctx: Context, columns: set[str], conjuncts: list[Conjunct], field: str) -> None:
        super().__init__(common, ctx, columns, conjuncts)
        self.field = field

    def needed(self) -> list[str]:
        return [self.field]

    def fact_aggs(self) -> list[pl.Expr]:
        return [pl.col(self.field).unique(maintain_order=True).head(10).alias(self.field)]

    def small_facts(self) -> dict[str, tuple[str, int, bool]]:
        return {self.field: (self.field, 10, True)}


@dataclass(frozen=True, eq=False)
class ListMatch(RuleType):
    """Events whose `field` matches a shipped or user list (scanner user-agents, high-risk prefixes), counted
    per key in the window; `match` is contains (case-insensitive substring), prefix (numbers) or exact."""

    field: str
    list: str
    match: str = "contains"
    type_name: ClassVar[str] = "list_match"
    monotone: ClassVar[bool] = True

    def check(self) -> None:
        if self.match not in ("contains", "prefix", "exact"):
            raise ValueError("'match' must be contains, prefix or exact")

    def fields(self) -> tuple[str, ...]:
        return (self.field,)

    def conjuncts(self, ctx: Context, columns: set[str]) -> builtins.list[Conjunct]:
        """The rule's own `where` and the list."""
        op = {"contains": {"list": self.list}, "prefix": {"prefix_list": self.list},
              "exact": {"in": list(load_list(ctx.lists_dir, self.list))}}[self.match]
        c = self.common
        return sorted([*compile_conjuncts(c.where, ctx.lists_dir, columns),
                       *compile_conjuncts({self.field: op}, ctx.lists_dir, columns)], key=lambda x: (x.costly, x.key))

    def frame_detector(self, ctx: Context, columns: set[str]) -> ListMatchDetector:
        return ListMatchDetector(self.common, ctx, columns, self.conjuncts(ctx, columns), self.field)

    def incremental_detector(self, ctx: Context, columns: set[str]) -> IncrementalDetector:
        return IncrementalDetector(self.common, ctx, columns, conjuncts=self.conjuncts(ctx, columns),
                                   fact=(self.field, 10, True))


class SpikeDetector(WindowDetector):
    """The window's count against the key's rate over the preceding `baseline` (see `Spike`)."""

    def __init__(self, common: Common, ctx: Context, columns: set[str], baseline: float, min_count: int) -> None:
        super().__init__(common, ctx, columns, history=baseline)
        self.baseline, self.min_count = baseline, min_count

    def score(self, frame: pl.DataFrame) -> pl.DataFrame:
        c, baseline = self.common, self.baseline
        now = count_in_window(frame, self.by, c.window).rename({VALUE: "_now"})
        both = count_in_window(now, self.by, baseline).rename({VALUE: "_long"})
        expected = (pl.col("_long") - pl.col("_now")) * (c.window / (baseline - c.window))
        ratio = (pl.col("_now") + 1) / (expected + 1)
        value = pl.when(pl.col("_now") >= self.min_count).then(ratio).otherwise(0.0)
        return both.with_columns(value.alias(VALUE)).drop("_now", "_long")

    def could_be_hot(self, most: int) -> bool:
        # below min_count the value is 0; above, (now + 1) / (expected + 1) <= now + 1 (expected >= 0)
        level = lowest_level(self.common)
        return level <= 0 or (most >= self.min_count and most + 1 >= level)


class SpikeIncremental(IncrementalDetector):
    """The window's count against the key's own rate over the preceding `baseline`: the times of the baseline,
    and where the window starts among them (`win`)."""

    def __init__(self, common: Common, ctx: Context, columns: set[str], baseline: float, min_count: int) -> None:
        super().__init__(common, ctx, columns)
        self.history, self.baseline, self.min_count = baseline, to_micros(baseline), min_count
        self.factor = common.window / (baseline - common.window)

    def _value(self, st: KeyWindow, t: int) -> float:
        self._trim(st, t - self.baseline)
        times, cut = st.times, t - self.window
        r = max(st.win, st.head)
        while times[r] <= cut:
            r += 1
        st.win = r
        now, long = len(times) - r, len(times) - st.head
        if now < self.min_count:
            return 0.0
        return (now + 1) / ((long - now) * self.factor + 1)


@dataclass(frozen=True, eq=False)
class Spike(RuleType):
    """Count in the window against the key's own recent rate: value = (count + 1) / (expected + 1), where
    expected is the count per window over the preceding `baseline`. `min_count` keeps quiet keys quiet. Not
    monotone: fewer baseline events make a spike look bigger."""

    baseline: Duration
    min_count: int = 10
    type_name: ClassVar[str] = "spike"

    def check(self) -> None:
        if self.baseline <= self.common.window:
            raise ValueError("'baseline' must be longer than 'window'")

    def lookback(self) -> float:
        return float(self.baseline)

    def frame_detector(self, ctx: Context, columns: set[str]) -> SpikeDetector:
        return SpikeDetector(self.common, ctx, columns, self.baseline, self.min_count)

    def incremental_detector(self, ctx: Context, columns: set[str]) -> SpikeIncremental:
        return SpikeIncremental(self.common, ctx, columns, self.baseline, self.min_count)
