"""What detectors share: the match they produce, the context they are built with, and the evidence they keep.

Detectors are pure: a time-ordered polars frame of canonical (enriched) events goes in, matches come out. They
keep their windows in memory between batches and never read files, the store or the clock, so the same code
runs in the watcher and in `fraudwatch detect` replays, and batch boundaries do not change the result.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import polars as pl

from fraudwatch.detect.spec import Common

EVIDENCE_IDS = 20  # event ids kept per match
EVIDENCE_LINES = 5  # (source, line) pointers kept per match


@dataclass(frozen=True)
class Context:
    """What rules may depend on besides events: shipped lists, and account limits."""

    lists_dir: Path
    credit: dict[str, float] = field(default_factory=dict)  # account -> money + limit_money (available)
    names: dict[str, str] = field(default_factory=dict)  # account -> name


@dataclass(frozen=True)
class Match:
    """A rule's finding for one key in one batch; the decision layer merges matches into alerts."""

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

    def process(self, events: pl.DataFrame) -> list[Match]:
        """Events of this rule's source, sorted by ts (a batch); matches for the events in this batch."""
        ...


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


def evidence_aggs(columns: list[str]) -> list[pl.Expr]:
    """The evidence of `evidence_of` as per-group aggregations (for many matches at once)."""
    aggs = []
    if "id" in columns:
        aggs.append(pl.col("id").head(EVIDENCE_IDS).alias("_ev_ids"))
    if "flowno" in columns:
        aggs.append(pl.col("flowno").head(EVIDENCE_IDS).alias("_ev_flownos"))
    if {"source", "line_no", "byte_offset"} <= set(columns):
        aggs.append(pl.struct("source", "line_no", "byte_offset").head(EVIDENCE_LINES).alias("_ev_lines"))
    return aggs


def evidence_from_row(row: dict[str, Any]) -> dict[str, Any]:
    """The evidence dict from a row that carries the `evidence_aggs` columns."""
    out: dict[str, Any] = {}
    if row.get("_ev_ids") is not None:
        out["ids"] = row["_ev_ids"]
    if row.get("_ev_flownos") is not None:
        out["flownos"] = row["_ev_flownos"]
    if row.get("_ev_lines") is not None:
        out["lines"] = [[e["source"], e["line_no"], e["byte_offset"]] for e in row["_ev_lines"]]
    return out


def evidence_of(frame: pl.DataFrame) -> dict[str, Any]:
    """Ids and line pointers of (up to a bound) events of one match."""
    out: dict[str, Any] = {}
    if "id" in frame.columns:
        out["ids"] = frame.get_column("id").head(EVIDENCE_IDS).to_list()
    if "flowno" in frame.columns:
        out["flownos"] = frame.get_column("flowno").head(EVIDENCE_IDS).to_list()
    if {"source", "line_no", "byte_offset"} <= set(frame.columns):
        out["lines"] = [list(r) for r in frame.select("source", "line_no", "byte_offset").head(EVIDENCE_LINES)
                        .iter_rows()]
    elif {"source", "line_no"} <= set(frame.columns):
        out["lines"] = [[s, n, None] for s, n in frame.select("source", "line_no").head(EVIDENCE_LINES).iter_rows()]
    return out
