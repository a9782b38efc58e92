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
