"""What detectors share: the match they produce, the context they are built with, and the evidence they keep.

Detectors are pure: a time-ordered polars frame of canonical (enriched) events goes in, matches come out. They
keep their windows in memory between batches and never read files, the store or the clock, so the same code
runs in the watcher and in `fraudwatch detect` replays, and batch boundaries do not change the result.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import polars as pl

from fraudwatch.detect.filters import Conjunct, Selection
from fraudwatch.detect.spec import Common

EVIDENCE_IDS = 20  # event ids kept per match
EVIDENCE_LINES = 5  # (source, line) pointers kept per match
EVIDENCE_KEPT = 50  # ids (and fact values) an alert keeps, over all its matches
LINES_KEPT = 10  # (source, line) pointers an alert keeps: a few raw lines to show
EVIDENCE_COLUMNS = ("id", "flowno", "source", "line_no", "byte_offset")  # what a match points back with
# Trust in the evidence: the source address of each event behind a match when it is in a trusted network
# (`TRUST_COLUMN`, from enrichment), kept as the distinct addresses (up to TRUST_KEPT) under `TRUST_FACT`, and only
# when there is one: the decision layer reads it to say, and to decide, that an account's traffic came from a
# trusted network (never locked unless the config says so). IP keys need none: their key says it.
TRUST_COLUMN = "trusted_source"
TRUST_FACT = "trusted_sources"
TRUST_KEPT = 5


@dataclass(frozen=True)
class Context:
    """What rules may depend on besides events: shipped lists, and account limits."""

    lists_dir: Path
    credit: dict[str, float] = field(default_factory=dict)  # account -> money + limit_money (available)
    names: dict[str, str] = field(default_factory=dict)  # account -> name


@dataclass(slots=True)
class Match:
    """A rule's finding for one key in one batch; the decision layer merges matches into alerts. Not frozen: a
    flood makes one per key, rule and batch, and a frozen dataclass, with or without slots, is much slower to make
    (figures: benchmarks/RESULTS.md, "Matches as plain slotted dataclasses"). Nothing changes a match once made."""

    rule: str
    key_type: str
    key: str
    severity: str  # warning | critical
    first_seen: dt.datetime  # first event of the episode's window
    detected_at: dt.datetime  # event time at which the level was crossed
    last_seen: dt.datetime
    count: int  # matching events behind this match
    value: float  # the measured value (count, distinct, sum, ratio, z-score ...)
    evidence: dict[str, Any]  # ids, a few (source, line_no) pointers, and rule-specific facts


class Detector(Protocol):
    common: Common

    def process(self, events: pl.DataFrame, selection: Selection | None = None) -> list[Match]:
        """Events of this rule's source, sorted by ts (a batch); matches for the events in this batch.
        `selection`, when given, is the batch's shared memo of filtered events (`Selection(events)`)."""
        ...

    def conditions(self) -> list[list[Conjunct]]:
        """The lists of conditions it selects a batch's events with: the engine evaluates the cheap ones of all
        its detectors together, once per batch (`Selection.prime`)."""
        ...


def check_columns(columns: set[str], key: Iterable[str], fields: Iterable[str] = ()) -> None:
    """A rule's fields, then its key, must be columns of its source: a load error naming the field, not a
    runtime one."""
    for f in fields:
        if f not in columns:
            raise ValueError(f"unknown field '{f}'")
    for k in key:
        if k not in columns:
            raise ValueError(f"unknown field '{k}' in 'key'")


def severity_of(common: Common, value: float) -> str | None:
    if common.critical is not None and value >= common.critical:
        return "critical"
    if common.warning is not None and value >= common.warning:
        return "warning"
    return None


def lowest_level(common: Common) -> float:
    levels = [v for v in (common.warning, common.critical) if v is not None]
    return min(levels)


def key_text(row: dict[str, Any], key: tuple[str, ...]) -> str:
    return "|".join("" if row.get(k) is None else str(row[k]) for k in key) if key else "*"


def key_expr(key: tuple[str, ...]) -> pl.Expr:
    """`key_text` as a polars expression (the same text), for whole frames of keys."""
    if not key:
        return pl.lit("*")
    return pl.concat_str([pl.col(k).cast(pl.Utf8).fill_null("") for k in key], separator="|")


def evidence_aggs(columns: list[str]) -> list[pl.Expr]:
    """Aggregations collecting a match's evidence — event ids and (source, line, offset) pointers, up to bounds —
    per group (`group_by(...).agg`); `evidence_from_row` turns a result row into the evidence dict."""
    aggs = []
    if "id" in columns:
        aggs.append(pl.col("id").head(EVIDENCE_IDS).alias("_ev_ids"))
    if "flowno" in columns:
        aggs.append(pl.col("flowno").head(EVIDENCE_IDS).alias("_ev_flownos"))
    if {"source", "line_no"} <= set(columns):
        aggs += [pl.col("source").head(EVIDENCE_LINES).alias("_ev_sources"),
                 pl.col("line_no").head(EVIDENCE_LINES).alias("_ev_line_nos")]
        if "byte_offset" in columns:
            aggs.append(pl.col("byte_offset").head(EVIDENCE_LINES).alias("_ev_offsets"))
    return aggs


def evidence_from_row(row: dict[str, Any]) -> dict[str, Any]:
    """The evidence dict from a row that carries the `evidence_aggs` columns."""
    out: dict[str, Any] = {}
    if row.get("_ev_ids") is not None:
        out["ids"] = row["_ev_ids"]
    if row.get("_ev_flownos") is not None:
        out["flownos"] = row["_ev_flownos"]
    if row.get("_ev_sources") is not None:
        offsets = row.get("_ev_offsets") or [None] * len(row["_ev_sources"])
        out["lines"] = [list(t) for t in zip(row["_ev_sources"], row["_ev_line_nos"], offsets, strict=True)]
    return out


def evidence_of(frame: pl.DataFrame) -> dict[str, Any]:
    """The evidence of one match's events (the whole frame)."""
    aggs = evidence_aggs(frame.columns)
    if not aggs:
        return {}
    return evidence_from_row(frame.select(a.implode() for a in aggs).row(0, named=True))


def wants_trust(common: Common) -> bool:
    """Whether a rule's matches carry `TRUST_FACT`: every key but an address, which is trusted or not itself."""
    return common.key_type != "ip"


def first_distinct(values: Iterable[Any], most: int = TRUST_KEPT) -> list[Any]:
    """The distinct non-null values, in order of first appearance, up to `most`."""
    return list(dict.fromkeys(v for v in values if v is not None))[:most]


def trust_evidence(frame: pl.DataFrame, common: Common) -> dict[str, Any]:
    """`TRUST_FACT` of one match's events (the whole frame), when the rule wants it and any was trusted."""
    if not wants_trust(common) or TRUST_COLUMN not in frame.columns:
        return {}
    found = first_distinct(frame.get_column(TRUST_COLUMN).to_list())
    return {TRUST_FACT: found} if found else {}


def column_rows(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts, converted column by column (much faster than `iter_rows` on list columns)."""
    names = frame.columns
    return [dict(zip(names, values, strict=True)) for values in zip(*(frame.get_column(n).to_list() for n in names),
                                                                       strict=True)]
