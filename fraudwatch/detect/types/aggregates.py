"""Rule types that aggregate one field of the key's events in a sliding window: distinct and sum.

Their frame detectors (`WindowDetector` with the aggregate as its value) and incremental ones (the values kept
per key, with a running tally) are here with them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import polars as pl

from fraudwatch.detect.base import Context, check_columns, lowest_level
from fraudwatch.detect.filters import field_kind
from fraudwatch.detect.spec import Common, ParamError
from fraudwatch.detect.types.base import RuleType
from fraudwatch.detect.windows.arith import CODED, distinct_in_window, rolling
from fraudwatch.detect.windows.frame import WindowDetector
from fraudwatch.detect.windows.incremental import IncrementalDetector, KeyWindow


class FieldDetector(WindowDetector):
    """A window detector whose value aggregates one field of the events."""

    def __init__(self, common: Common, ctx: Context, columns: set[str], field: str) -> None:
        check_columns(columns, (), [field])
        super().__init__(common, ctx, columns)
        self.field = field

    def needed(self) -> list[str]:
        return [self.field]


class DistinctDetector(FieldDetector):
    """Distinct non-null values of the field in the window (never more than the events: `could_be_hot`)."""

    small = "distinct"

    def could_be_hot(self, most: int) -> bool:
        return most >= lowest_level(self.common)

    def score(self, frame: pl.DataFrame) -> pl.DataFrame:
        coded = CODED + self.field
        return distinct_in_window(frame, self.by, self.common.window, coded if coded in frame.columns else self.field)

    def fact_aggs(self) -> list[pl.Expr]:
        return [pl.col(self.field).drop_nulls().unique(maintain_order=True).head(20).alias(self.field)]

    def small_facts(self) -> dict[str, tuple[str, int, bool]]:
        return {self.field: (self.field, 20, False)}


class DistinctIncremental(IncrementalDetector):
    """Distinct non-null values of `field` in the window: the events' values, and a count per value."""

    valued = True

    def _add(self, st: KeyWindow, v: Any) -> None:
        st.values.append(v)
        if v is not None:
            if st.tally is None:
                st.tally = {}
            st.tally[v] = st.tally.get(v, 0) + 1

    def _trim(self, st: KeyWindow, cut: int) -> None:
        times, values, tally, h = st.times, st.values, st.tally, st.head
        while times[h] <= cut:
            v = values[h]
            if v is not None:
                if tally[v] == 1:
                    del tally[v]
                else:
                    tally[v] -= 1
            h += 1
        st.head = h

    def _measure(self, st: KeyWindow) -> float:
        return len(st.tally) if st.tally is not None else 0


@dataclass(frozen=True, eq=False)
class Distinct(RuleType):
    """Distinct values of `field` per key in a window (usernames per IP, destinations per account)."""

    field: str
    type_name: ClassVar[str] = "distinct"
    monotone: ClassVar[bool] = True

    def fields(self) -> tuple[str, ...]:
        return (self.field,)

    def frame_detector(self, ctx: Context, columns: set[str]) -> DistinctDetector:
        return DistinctDetector(self.common, ctx, columns, self.field)

    def incremental_detector(self, ctx: Context, columns: set[str]) -> DistinctIncremental:
        return DistinctIncremental(self.common, ctx, columns, field=self.field, fact=(self.field, 20, False))


class SumDetector(FieldDetector):
    """The sum of the numeric field in the window (nulls count 0)."""

    def score(self, frame: pl.DataFrame) -> pl.DataFrame:
        total = pl.col(self.field).cast(pl.Float64).fill_null(0).sum()
        return rolling(frame, self.by, self.common.window, total)


class SumIncremental(IncrementalDetector):
    """Sum of `field` in the window (nulls count 0): the events' amounts and a running total, summed exactly
    (`math.fsum`) when it nears a level, so rounding never decides an alert."""

    valued = True

    def _add(self, st: KeyWindow, v: Any) -> None:
        x = 0.0 if v is None else float(v)
        st.values.append(x)
        st.tally = (st.tally or 0.0) + x

    def _trim(self, st: KeyWindow, cut: int) -> None:
        times, values, h = st.times, st.values, st.head
        while times[h] <= cut:
            st.tally -= values[h]
            h += 1
        st.head = h

    def _measure(self, st: KeyWindow) -> float:
        total = float(st.tally)
        if total >= self.level - 1e-6 * max(1.0, abs(self.level)):
            total = math.fsum(st.values[st.head:])
        return total


@dataclass(frozen=True, eq=False)
class Sum(RuleType):
    """Sum of a numeric `field` per key in a window (spend per account, billed minutes). Not monotone for the
    early gates: a field may hold negative amounts."""

    field: str
    type_name: ClassVar[str] = "sum"

    def check(self) -> None:
        kind = field_kind(self.field)
        if kind is not None and kind != "number":
            raise ParamError("field", f"'field' must be a numeric column, and '{self.field}' is {kind}")

    def fields(self) -> tuple[str, ...]:
        return (self.field,)

    def frame_detector(self, ctx: Context, columns: set[str]) -> SumDetector:
        return SumDetector(self.common, ctx, columns, self.field)

    def incremental_detector(self, ctx: Context, columns: set[str]) -> SumIncremental:
        return SumIncremental(self.common, ctx, columns, field=self.field)
