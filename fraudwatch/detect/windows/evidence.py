"""The matches of a window detector's episodes, with their evidence: one per episode of a key in a batch.

An episode continuing the key's alert (within `cooldown` of its last hot event, the alert book's test) carries no
event pointers once the alert holds all it keeps, so a flood of many keys over many batches does not convert and
merge lists no one keeps: `EpisodeMatches` remembers, per key, what its open episode has sent.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import polars as pl

from fraudwatch.detect.base import (
    EVIDENCE_IDS,
    EVIDENCE_KEPT,
    EVIDENCE_LINES,
    LINES_KEPT,
    TRUST_FACT,
    Match,
    severity_of,
)
from fraudwatch.detect.spec import Common
from fraudwatch.detect.windows.arith import delta


class EpisodeMatches:
    """Matches from episodes given as a frame (the frame path) or as lists by column (the small path), both with
    the columns `_key`, `_first`, `_crossing`, `_last`, `_count`, `_peak`, the `evidence_aggs` lists and the
    rule's facts, sorted by crossing."""

    def __init__(self, common: Common) -> None:
        self.common = common
        # key -> (last hot event, event ids and lines sent) of its open episode
        self.sent: dict[str, tuple[dt.datetime, int, int]] = {}

    def from_frame(self, episodes: pl.DataFrame, fact_names: list[str]) -> list[Match]:
        """The matches of the episodes of a frame."""
        names = set(episodes.columns)
        return self._assemble(lambda n: episodes.get_column(n).to_list(),
                              lambda n, rows: episodes.get_column(n).gather(rows).to_list(), names, fact_names)

    def from_lists(self, lists: dict[str, list[Any]], fact_names: list[str]) -> list[Match]:
        """`from_frame` for episodes as lists by column (the small path)."""
        return self._assemble(lambda n: lists[n], lambda n, rows: [lists[n][i] for i in rows], set(lists),
                              fact_names)

    def forget(self, newest: dt.datetime) -> None:
        """Drop the keys whose episode cannot continue after `newest` (the batch's newest event)."""
        horizon = newest - delta(self.common.window + self.common.cooldown)
        self.sent = {k: v for k, v in self.sent.items() if v[0] >= horizon}

    def _assemble(self, column: Callable[[str], list[Any]], gather: Callable[[str, list[int]], list[Any]],
                  names: set[str], fact_names: list[str]) -> list[Match]:
        c = self.common
        cooldown = delta(c.cooldown)
        keys, firsts, crossings, lasts, counts, peaks = (
            column(n) for n in ("_key", "_first", "_crossing", "_last", "_count", "_peak"))
        facts = {name: column(name) for name in fact_names}
        want_ids: list[int] = []
        want_lines: list[int] = []
        for i, key in enumerate(keys):
            last, sent_ids, sent_lines = self.sent.get(key, (None, 0, 0))
            if last is None or firsts[i] - last > cooldown:
                sent_ids = sent_lines = 0
            if sent_ids < EVIDENCE_KEPT:
                want_ids.append(i)
            if sent_lines < LINES_KEPT:
                want_lines.append(i)
            n = int(counts[i])
            self.sent[key] = (lasts[i] if last is None else max(last, lasts[i]),
                              sent_ids + min(n, EVIDENCE_IDS), sent_lines + min(n, EVIDENCE_LINES))
        evidence: list[dict[str, Any]] = [{} for _ in keys]
        for col, name in (("_ev_ids", "ids"), ("_ev_flownos", "flownos")):
            if col in names and want_ids:
                for i, values in zip(want_ids, gather(col, want_ids), strict=True):
                    evidence[i][name] = values
        if "_ev_sources" in names and want_lines:
            sources, line_nos = (gather(n, want_lines) for n in ("_ev_sources", "_ev_line_nos"))
            offsets = gather("_ev_offsets", want_lines) if "_ev_offsets" in names \
                else [[None] * len(x) for x in sources]
            for i, src, nos, offs in zip(want_lines, sources, line_nos, offsets, strict=True):
                evidence[i]["lines"] = [[a, b, o] for a, b, o in zip(src, nos, offs, strict=True)]
        out = []
        rule, key_type = c.id, c.key_type
        for i, key in enumerate(keys):
            peak = float(peaks[i])
            severity = severity_of(c, peak)
            assert severity is not None
            ev = evidence[i]
            for name in fact_names:
                if name != TRUST_FACT or facts[name][i]:  # trust is said only when there is some
                    ev[name] = facts[name][i]
            out.append(Match(rule, key_type, key, severity, firsts[i], crossings[i], lasts[i], int(counts[i]), peak,
                             ev))
        return out
