"""Which rules a file's events would fire: the replay's engine and alert book, fed in memory.

The rows come from `lines.LineStage` chunk by chunk, in file order, each chunk sorted by time as a replay step
is; nothing is saved, no action is taken. What is kept is a tally per rule and one small record per alert
(no evidence beyond the line numbers behind it), so memory follows the alerts, not the lines.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import polars as pl
import pyarrow as pa

from fraudwatch.detect.base import Context
from fraudwatch.detect.decide import Alert, AlertBook
from fraudwatch.detect.runners.engine import Engine
from fraudwatch.detect.runners.replay import ORDER
from fraudwatch.detect.types import RuleType
from fraudwatch.netaddr import IPNetwork


@dataclass
class AlertView:
    """An alert a file would raise, as far as explain shows it."""

    id: int
    rule: str
    severity: str
    key_type: str
    key: str
    first_seen: dt.datetime
    last_seen: dt.datetime
    count: int
    action: str  # what it proposes: alert, ban_ip, lock_account (explain never acts)
    trusted: bool
    report_only: bool
    line_nos: list[int] = field(default_factory=list)  # lines of the file behind it (the first few)

    @classmethod
    def of(cls, a: Alert) -> AlertView:
        lines = [int(p[1]) for p in a.evidence.get("lines") or [] if len(p) > 1 and p[1] is not None]
        return cls(a.id, a.rule, a.severity, a.key_type, a.key, a.first_seen, a.last_seen, a.count, a.action,
                   a.trusted, a.report_only, lines)


@dataclass
class RuleTally:
    """One rule over the file: its matches (a key crossing the rule's level in a batch) and alerts."""

    rule: str
    source: str  # the table it reads
    description: str
    matches: int = 0
    alerts: list[AlertView] = field(default_factory=list)

    @property
    def keys(self) -> list[str]:
        return list(dict.fromkeys(a.key for a in self.alerts))


class RuleStage:
    """Runs `rules` over rows as `LineStage.rows` yields them; `tallies` holds the result, one per rule."""

    def __init__(self, rules: Sequence[RuleType], ctx: Context, trusted: Sequence[IPNetwork] = (),
                 trusted_accounts: Iterable[str] = ()) -> None:
        self.engine = Engine(rules, ctx, trusted)
        self.book = AlertBook({r.common.id: r for r in rules}, trusted, trusted_accounts)
        self.tallies = {r.common.id: RuleTally(r.common.id, r.common.source, r.common.description) for r in rules}
        self._alerts: dict[int, AlertView] = {}
        self.matches: Counter[str] = Counter()

    def feed(self, table: str, rows: pa.Table) -> None:
        if not rows.num_rows or table not in self.engine.sources:
            return
        frame = pl.from_arrow(rows.select(self.engine.columns(table)))
        assert isinstance(frame, pl.DataFrame)
        frame = frame.sort([c for c in ORDER[table].split(", ") if c in frame.columns], nulls_last=True)
        matches = self.engine.process(table, frame)
        for m in matches:
            self.tallies[m.rule].matches += 1
        for a in self.book.apply(matches):
            self._alerts[a.id] = AlertView.of(a)

    def finish(self) -> list[RuleTally]:
        """The tallies, each with its alerts in the order they opened."""
        for t in self.tallies.values():
            t.alerts = []
        for a in sorted(self._alerts.values(), key=lambda v: v.id):
            self.tallies[a.rule].alerts.append(a)
        return list(self.tallies.values())
