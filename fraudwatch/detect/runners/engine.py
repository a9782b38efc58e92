"""Running rule sets: one engine for the watcher and for replays.

The engine enriches each batch once per source and hands it to every detector of that source, with one
`Selection` per batch so that rules sharing conditions share their evaluation. A replay reads only the columns
its rules need (`fraudwatch.detect.ruleset.rule_columns`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import polars as pl

from fraudwatch.detect.base import Context, Detector, Match
from fraudwatch.detect.enrich import Enricher
from fraudwatch.detect.fields import ENRICHED, columns_of
from fraudwatch.detect.filters import Conjunct, Selection, shared_conditions
from fraudwatch.detect.ruleset import rule_columns
from fraudwatch.detect.types import RuleType
from fraudwatch.netaddr import IPNetwork

# Threads a replay runs the detectors on. Much of a detector's work is in polars, which releases the GIL, and the
# rest is Python, which holds it: on two threads one detector's polars work runs under another's Python, and a
# replay is faster at the same CPU. Not in the watcher, nor alongside an ingest before its last chunk is in: there
# the cores are busy already, and threads made the flood slower (figures: benchmarks/RESULTS.md, "Replay detectors
# on threads").
PARALLEL = max(1, min(4, os.cpu_count() or 1))
LONG_WINDOW = 300.0  # seconds: in a stream, rules keeping at least this much are kept incrementally


def _long(rule: RuleType) -> bool:
    """Whether a rule's window (or a spike's baseline) is long enough to keep incrementally in a stream.

    Measured in the watcher's soak (benchmarks/watch_soak.py): incremental windows cost a batch what it adds,
    but in Python, holding the GIL that the reader's thread needs; frame scoring re-reads the window but mostly
    in polars, without the GIL. Short windows hold little, so frames are cheaper there; long ones (minutes to
    hours) would grow a frame of a flood's every event and re-sort it per batch, so those are incremental."""
    return rule.lookback() >= LONG_WINDOW


class Engine:
    """Enrich once per source, then every detector of that source; returns the matches of the batch.

    `stream` builds the detectors for a stream of small batches (the watcher): long sliding windows are kept per
    key, incrementally (the rule's incremental detector, when it has one), rather than scored as frames (see
    `_long`)."""

    def __init__(self, rules: Sequence[RuleType], ctx: Context, trusted: Sequence[IPNetwork] = (),
                 stream: bool = False) -> None:
        self.ctx = ctx
        self.enrich = Enricher(trusted)
        self.detectors: dict[str, list[Detector]] = {s: [] for s in ENRICHED}
        self.rules = list(rules)
        for rule in rules:
            source = rule.common.source
            columns = columns_of(source)
            detector = rule.incremental_detector(ctx, columns) if stream and _long(rule) else None
            self.detectors[source].append(detector if detector is not None else rule.frame_detector(ctx, columns))
        # the cheap conditions of each source's rules, distinct: evaluated together, once per batch
        self.conditions: dict[str, list[Conjunct]] = {
            source: shared_conditions(conjuncts for d in detectors for conjuncts in d.conditions())
            for source, detectors in self.detectors.items()}

    def columns(self, source: str) -> list[str]:
        """The stored columns this engine's rules of `source` need (what a replay reads)."""
        return rule_columns(self.rules, source)

    def update_credit(self, credit: dict[str, float], names: dict[str, str]) -> None:
        """New balances and limits for the credit-limit rules (the detectors share the context's dicts)."""
        self.ctx.credit.clear()
        self.ctx.credit.update(credit)
        self.ctx.names.clear()
        self.ctx.names.update(names)

    @property
    def sources(self) -> list[str]:
        return [s for s, ds in self.detectors.items() if ds]

    def process(self, source: str, events: pl.DataFrame, threads: int = 1) -> list[Match]:
        """The matches of a batch of `source`, in the order of the detectors. With `threads` > 1 the detectors
        run on that many threads (see PARALLEL): for replays, where nothing else wants the cores."""
        if not self.detectors.get(source):
            return []
        # one chunk per column: on a frame of many chunks (DuckDB hands over one per vector batch) every polars
        # operation pays a per-chunk toll that, over all rules, cost more than the rules' own work
        frame = self.enrich(source, events.rechunk()).rechunk()
        selection = Selection(frame)
        selection.prime(self.conditions[source])
        out: list[Match] = []
        detectors = self.detectors[source]
        if threads > 1 and len(detectors) > 1:
            # detectors keep their own state and share only the batch's memo of masks, which a second thread
            # at worst computes again; `map` keeps their order, which the alert book's ties depend on
            with ThreadPoolExecutor(min(threads, len(detectors)), thread_name_prefix="fraudwatch-rules") as pool:
                for matches in pool.map(lambda d: d.process(frame, selection), detectors):
                    out.extend(matches)
            return out
        for d in detectors:
            out.extend(d.process(frame, selection))
        return out
