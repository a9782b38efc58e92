"""Events held as plain Python lists, for the sentry's ticks, and the rules' conditions evaluated on them.

A tick brings a few hundred lines. Frames cost a polars query per step whatever the rows, and dozens of steps a
tick, at 50 ticks a second under a flood, add up to more than the sentry can spend. Lists cost what the rows cost
(figures: benchmarks/RESULTS.md, "Sentry's rows as plain lists").

`Conditions` answers a `where:` condition with the condition's own polars expression (`filters.Conjunct.expr`),
evaluated once per distinct combination of the values it reads and remembered: the frame path's answer by
construction, at the price of a dict lookup per row once a flood's few combinations (event, method, status,
user-agent ...) are known.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl

if TYPE_CHECKING:
    from fraudwatch.detect.filters import Conjunct

CONDITIONS_KEPT = 1 << 16  # distinct combinations remembered per condition (a new username per line ...)


@dataclass
class Rows:
    """Events column by column, as lists; `ts` in epoch microseconds (UTC)."""

    columns: dict[str, list[Any]]
    height: int

    @classmethod
    def from_frame(cls, frame: pl.DataFrame) -> Rows:
        columns = {n: (s.dt.epoch("us") if n == "ts" and s.dtype == pl.Datetime else s).to_list()
                   for n, s in zip(frame.columns, frame.get_columns(), strict=True)}
        return cls(columns, frame.height)

    def column(self, name: str) -> list[Any]:
        """The column, or nulls when the rows have none of it."""
        got = self.columns.get(name)
        return [None] * self.height if got is None else got


class Conditions:
    """Which rows meet a condition (`mask`), for one source's columns (`schema`: their polars types)."""

    def __init__(self, schema: dict[str, pl.DataType]) -> None:
        self.schema = schema
        self.known: dict[str, dict[Any, bool]] = {}  # condition -> combination of its values -> met

    def mask(self, c: Conjunct, rows: Rows) -> list[bool]:
        columns = [rows.column(f) for f in c.reads]
        keys: list[Any] = columns[0] if len(columns) == 1 else list(zip(*columns, strict=True))
        known = self.known.setdefault(c.key, {})
        new = set(keys).difference(known)
        if new:
            if len(known) + len(new) > CONDITIONS_KEPT:
                known.clear()
            self._learn(c, known, list(new))
        return [known[k] for k in keys]

    def _learn(self, c: Conjunct, known: dict[Any, bool], keys: list[Any]) -> None:
        """Evaluate `c` on each new combination, one query for all of them."""
        single = len(c.reads) == 1
        data = []
        for j, f in enumerate(c.reads):
            values = keys if single else [k[j] for k in keys]
            if f == "ts":  # microseconds here, a time in frames
                data.append(pl.Series(f, values, dtype=pl.Int64).cast(pl.Datetime("us", "UTC")))
            else:
                data.append(pl.Series(f, values, dtype=self.schema.get(f)))
        frame = pl.DataFrame(data)
        met = frame.select(c.expr.fill_null(False).alias("_met")).to_series().to_list()
        known.update(zip(keys, met, strict=True))
