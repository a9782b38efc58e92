"""Loading rule sets and running them: one engine for the watcher and for replays.

Shipped rules are rules/*.yaml; user folders come after and override a shipped rule with the same id (or turn
it off with `enabled: false`). The engine enriches each batch once per source and hands it to every detector of
that source, with one `Selection` per batch so that rules sharing conditions share their evaluation. A replay
reads only the columns its rules need (`rule_columns`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from fraudwatch.detect.base import EVIDENCE_COLUMNS, Context, Detector, Match
from fraudwatch.detect.enrich import ENRICHED, Enricher
from fraudwatch.detect.filters import Conjunct, FilterError, Selection, shared_conditions
from fraudwatch.detect.registry import TYPES
from fraudwatch.detect.spec import load_rule_file
from fraudwatch.errors import ConfigError, Location
from fraudwatch.netaddr import IPNetwork
from fraudwatch.rulesdir import shipped_rules_dir
from fraudwatch.store.schema import TABLES


def columns_of(source: str) -> set[str]:
    return set(TABLES[source].names) | set(ENRICHED[source]) | {"ts"}


# what enrichment reads (and evidence points back with EVIDENCE_COLUMNS)
ENRICH_INPUTS = {"sip_events": ("ts", "event", "status", "call_id", "src_ip"), "netfilter_events": ("ts", "src_ip"),
                 "cdrs": ("stop_time", "hold_seconds", "callee_e164", "caller_ip")}
_RULE_FIELDS = ("field", "terms")  # rule-type parameters that name columns
_TYPE_FIELDS = {"credit_limit": ("fee", "customer_account")}


def _where_fields(where: Any) -> set[str]:
    out: set[str] = set()
    if isinstance(where, dict):
        for k, v in where.items():
            out |= _where_fields(v) if k in ("any", "not") else {k}
    elif isinstance(where, list):
        for item in where:
            out |= _where_fields(item)
    return out


def rule_columns(rules: Iterable[Any], source: str) -> list[str]:
    """The stored columns of `source` that `rules` (of that source) read, with what enrichment and evidence
    need: a replay reads only these."""
    wanted = set(ENRICH_INPUTS[source]) | set(EVIDENCE_COLUMNS)
    for rule in rules:
        c = rule.common
        if c.source != source:
            continue
        wanted |= _where_fields(c.where) | _where_fields(getattr(rule, "learn_where", None)) | set(c.key) \
            | set(_TYPE_FIELDS.get(c.type, ()))
        for name in _RULE_FIELDS:
            value = getattr(rule, name, None)
            wanted |= {value} if isinstance(value, str) else set(value or ())
    return [n for n in TABLES[source].names if n in wanted]


@dataclass
class RuleSet:
    rules: dict[str, Any] = field(default_factory=dict)  # id -> rule object
    errors: list[ConfigError] = field(default_factory=list)
    disabled: set[str] = field(default_factory=set)


def rule_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.yaml") if p.is_file())


def load_rules(dirs: Iterable[Path] | None = None, collect: bool = False, shipped: bool = True,
               lists_dir: Path | None = None) -> RuleSet:
    """Shipped rules, then each folder in `dirs` (later wins by id). Each rule is also built into a detector
    once, so a `where:` or field mistake is a load error with its file and line, not a runtime one."""
    folders = ([shipped_rules_dir()] if shipped else []) + list(dirs or [])
    out = RuleSet()
    ctx = Context(lists_dir or shipped_rules_dir() / "lists")
    for folder in folders:
        if not folder.is_dir():
            err = ConfigError("rules folder does not exist", Location(folder))
            if not collect:
                raise err
            out.errors.append(err)
            continue
        for path in rule_files(folder):
            result = load_rule_file(path, TYPES, collect=collect)
            out.errors.extend(result.errors)
            for rid in result.disabled:  # `enabled: false` turns off a rule loaded before (a shipped one)
                out.rules.pop(rid, None)
                out.disabled.add(rid)
            for rule in result.rules:
                try:
                    rule.detector(ctx, columns_of(rule.common.source))
                    _check_action(rule.common)
                except (FilterError, ValueError) as exc:
                    err = ConfigError(f"rule '{rule.common.id}': {exc}", rule.common.location)
                    if not collect:
                        raise err from None
                    out.errors.append(err)
                    continue
                out.rules[rule.common.id] = rule
                out.disabled.discard(rule.common.id)
    return out


def _check_action(common: Any) -> None:
    if common.action == "ban_ip" and common.key_type != "ip":
        raise ValueError("action ban_ip needs an IP key (src_ip or caller_ip)")
    if common.action == "lock_account" and common.key_type != "account":
        raise ValueError("action lock_account needs an account key")


# Threads a replay runs the detectors on. Much of a detector's work is in polars, which releases the GIL, and the
# rest is Python, which holds it: on two threads one detector's polars work runs under another's Python. A replay
# of the flood of benchmarks/ingest_bench.py took 6.6-7.0 s instead of 7.1-8.1 s (3 alternated runs of
# benchmarks/detect_bench.py, same CPU). Not in the watcher, nor alongside an ingest before its last chunk is in:
# there the cores are busy already, and threads made the flood slower.
PARALLEL = max(1, min(4, os.cpu_count() or 1))
LONG_WINDOW = 300.0  # seconds: in a stream, rules keeping at least this much are kept incrementally


def _long(rule: Any) -> bool:
    """Whether a rule's window (or a spike's baseline) is long enough to keep incrementally in a stream.

    Measured in the watcher's soak (benchmarks/watch_soak.py): incremental windows cost a batch what it adds,
    but in Python, holding the GIL that the reader's thread needs; frame scoring re-reads the window but mostly
    in polars, without the GIL. Short windows hold little, so frames are cheaper there; long ones (minutes to
    hours) would grow a frame of a flood's every event and re-sort it per batch, so those are incremental."""
    return bool(max(rule.common.window, float(getattr(rule, "baseline", 0.0))) >= LONG_WINDOW)


class Engine:
    """Enrich once per source, then every detector of that source; returns the matches of the batch.

    `stream` builds the detectors for a stream of small batches (the watcher): long sliding windows are kept per
    key, incrementally (`fraudwatch.detect.incremental`), rather than scored as frames (see `_long`)."""

    def __init__(self, rules: Sequence[Any], ctx: Context, trusted: Sequence[IPNetwork] = (),
                 stream: bool = False) -> None:
        self.ctx = ctx
        self.enrich = Enricher(trusted)
        self.detectors: dict[str, list[Detector]] = {s: [] for s in ENRICHED}
        self.rules = list(rules)
        for rule in rules:
            source = rule.common.source
            self.detectors[source].append(rule.detector(ctx, columns_of(source), stream=stream and _long(rule)))
        # the cheap conditions of each source's rules, distinct: evaluated together, once per batch
        self.conditions: dict[str, list[Conjunct]] = {
            source: shared_conditions(getattr(d, name, None) or () for d in detectors
                                      for name in ("conjuncts", "learn_conjuncts"))
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
