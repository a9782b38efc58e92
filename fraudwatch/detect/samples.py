"""A rule's annotated samples: compact YAML events expanded into a typed frame of the rule's source, and run.

    samples:
      - name: flood
        expect: critical                      # none, warning or critical: the highest severity the rule gives
        events:
          - {repeat: 150, every: 0.05, event: request, method: REGISTER, src_ip: 192.0.2.7, username: "u{i}"}
          - {at: 600, event: reg_online, username: "1001", src_ip: 198.51.100.7}
          - {credit: {"10001": 25.0}}         # not an event: accounts' available credit, for credit_limit rules

An item is one event, or `repeat: N` events `every` seconds apart (default 1). It starts `at` seconds after the
sample's base time (BASE, a Monday 03:00 UTC); without `at` it starts `every` seconds after the previous item's
last event. `{i}` in a text value is replaced by the event's index within its item (0, 1, ...), e.g. distinct
usernames, and `{i%N}` by that index modulo N (N users taking turns). The generated time is the event's `ts`; for
CDRs its `stop_time` (`start_time` defaults to it minus `hold_seconds`). Other keys are columns of the source
table; a number given for a time column is seconds after BASE. Every column is present, typed as the store gives
it, and ids and line numbers count up. Samples run with SAMPLE_TRUSTED as the trusted networks.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import re
from collections.abc import Iterable, Sequence
from typing import Any

import polars as pl

from fraudwatch.detect.base import Context
from fraudwatch.detect.enrich import Enricher
from fraudwatch.detect.fields import columns_of
from fraudwatch.detect.spec import EventSample
from fraudwatch.detect.types import RuleType
from fraudwatch.netaddr import IPNetwork, parse_networks
from fraudwatch.store.schema import TABLES

BASE = dt.datetime(2026, 11, 2, 3, 0, tzinfo=dt.UTC)
SAMPLE_TRUSTED: tuple[IPNetwork, ...] = tuple(parse_networks(["203.0.113.0/25"]))  # trusted in every sample
SEVERITIES = ("none", "warning", "critical")
_ITEM_KEYS = {"repeat", "every", "at"}
_INDEX = re.compile(r"\{i(?:%([1-9][0-9]*))?\}")
POLARS_TYPES: dict[str, pl.DataType] = {
    "BIGINT": pl.Int64(), "INTEGER": pl.Int32(), "SMALLINT": pl.Int16(), "VARCHAR": pl.Utf8(),
    "TIMESTAMPTZ": pl.Datetime("us", "UTC"), "DECIMAL(18,4)": pl.Decimal(18, 4), "DOUBLE": pl.Float64(),
    "BOOLEAN": pl.Boolean(),
}


class SampleError(ValueError):
    """A sample that cannot be expanded (unknown column, bad value); the caller adds the rule and sample."""


def schema_of(source: str) -> dict[str, pl.DataType]:
    return {c.name: POLARS_TYPES[c.type] for c in TABLES[source].columns}


def _value(column: str, dtype: pl.DataType, raw: Any, i: int) -> Any:
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = _INDEX.sub(lambda m: str(i % int(m.group(1)) if m.group(1) else i), raw)
    try:
        if dtype == pl.Utf8:
            return str(raw)
        if isinstance(dtype, pl.Datetime):
            if isinstance(raw, int | float) and not isinstance(raw, bool):
                return BASE + dt.timedelta(seconds=raw)
            return dt.datetime.fromisoformat(str(raw)).astimezone(dt.UTC)
        if isinstance(dtype, pl.Decimal):
            return decimal.Decimal(str(raw))
        if dtype == pl.Boolean:
            if not isinstance(raw, bool):
                raise ValueError("not true or false")
            return raw
        if dtype == pl.Float64:
            return float(raw)
        return int(raw)
    except (ValueError, TypeError, decimal.InvalidOperation) as exc:
        raise SampleError(f"'{column}': bad value {raw!r} ({exc})") from None


def expand(source: str, items: Iterable[dict[str, Any]]) -> tuple[pl.DataFrame, dict[str, float]]:
    """The events of a sample as a frame of `source` (sorted by event time), and the credit it declares."""
    types = schema_of(source)
    time_col = "stop_time" if source == "cdrs" else "ts"
    rows: list[dict[str, Any]] = []
    credit: dict[str, float] = {}
    cursor: float | None = None  # seconds after BASE of the previous item's last event
    for item in items:
        if not isinstance(item, dict):
            raise SampleError("an event is a mapping of columns")
        if "credit" in item:
            if set(item) != {"credit"} or not isinstance(item["credit"], dict):
                raise SampleError("'credit' is an item of its own: {credit: {ACCOUNT: AMOUNT, ...}}")
            credit.update({str(k): float(v) for k, v in item["credit"].items()})
            continue
        unknown = set(item) - _ITEM_KEYS - set(types)
        if unknown:
            raise SampleError(f"not columns of {source}: {', '.join(sorted(unknown))}")
        try:
            repeat, every = int(item.get("repeat", 1)), float(item.get("every", 1))
            start = float(item["at"]) if "at" in item else (0.0 if cursor is None else cursor + every)
        except (TypeError, ValueError):
            raise SampleError("'repeat', 'every' and 'at' are numbers") from None
        if repeat < 1 or every < 0:
            raise SampleError("'repeat' must be at least 1 and 'every' not negative")
        fields = {k: v for k, v in item.items() if k not in _ITEM_KEYS}
        for i in range(repeat):
            offset = start + i * every
            row = {k: _value(k, types[k], v, i) for k, v in fields.items()}
            row.setdefault(time_col, BASE + dt.timedelta(seconds=offset))
            n = len(rows) + 1
            if source == "cdrs":
                hold = row.setdefault("hold_seconds", 0) or 0
                row.setdefault("start_time", row["stop_time"] - dt.timedelta(seconds=hold))
                row.setdefault("flowno", n)
                row.setdefault("fee", decimal.Decimal(0))
            else:
                row.setdefault("id", n)
                row.setdefault("byte_offset", 100 * n)
            row.setdefault("source", "sample")
            row.setdefault("line_no", n)
            rows.append(row)
        cursor = start + (repeat - 1) * every
    frame = pl.DataFrame(rows, schema=types) if rows else pl.DataFrame(schema=types)
    return frame.sort(time_col, maintain_order=True), credit


def run_sample(rule: RuleType, sample: EventSample, ctx: Context,
               trusted: Sequence[IPNetwork] = SAMPLE_TRUSTED) -> str:
    """The highest severity `rule` gives on the sample's events ("none", "warning" or "critical"): the events
    are enriched as the engine does and go to a fresh detector in one batch."""
    source = rule.common.source
    try:
        frame, credit = expand(source, sample.events)
    except SampleError as exc:
        raise SampleError(f"rule '{rule.common.id}', sample '{sample.name}': {exc}") from None
    if credit:
        ctx = dataclasses.replace(ctx, credit={**ctx.credit, **credit})
    detector = rule.frame_detector(ctx, columns_of(source))
    matches = detector.process(Enricher(trusted)(source, frame))
    return max((m.severity for m in matches), key=SEVERITIES.index, default="none")
