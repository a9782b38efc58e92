"""The credit_limit rule type: an account's spend against what it may spend (balance plus credit limit). Its
state is per account, so its frame detector serves replays and the watcher alike."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import ClassVar

import polars as pl

from fraudwatch.detect.base import Context, Match, evidence_of, severity_of, trust_evidence
from fraudwatch.detect.filters import Selection
from fraudwatch.detect.spec import Duration
from fraudwatch.detect.types.base import RuleType
from fraudwatch.detect.types.filtered import Filtered

NO_CREDIT = 100.0  # the value of any spend by an account with nothing available (finite, above any level)


class CreditDetector(Filtered):
    def __init__(self, rule: CreditLimit, ctx: Context, columns: set[str]) -> None:
        super().__init__(rule.common, ctx, columns, ["fee", "customer_account"])
        self.rule = rule
        self.available = ctx.credit
        self.spent: dict[str, float] = defaultdict(float)
        self.since: dict[str, dt.datetime] = {}  # account -> its first CDR: the spend behind an alert starts there
        self.recent: dict[str, deque[tuple[dt.datetime, float]]] = defaultdict(deque)

    def process(self, events: pl.DataFrame, selection: Selection | None = None) -> list[Match]:
        """One match per account with CDRs at or over a level in this batch: its events are those CDRs."""
        c = self.common
        sel = self.select(events, selection).filter(pl.col("customer_account").is_in(list(self.available)))
        out = []
        window = dt.timedelta(seconds=c.window)
        for (account_value,), rows in sel.group_by(["customer_account"], maintain_order=True):
            account = str(account_value)
            available = self.available[account]
            hot: list[int] = []
            peak = 0.0
            at_hot: tuple[float, float] = (0.0, 0.0)  # spent and burn per hour at the last hot CDR
            for i, (ts, fee) in enumerate(rows.select("ts", pl.col("fee").cast(pl.Float64).fill_null(0)).iter_rows()):
                self.since.setdefault(account, ts)
                self.spent[account] += fee
                recent = self.recent[account]
                recent.append((ts, fee))
                while recent and recent[0][0] <= ts - window:
                    recent.popleft()
                rate = sum(f for _, f in recent) / c.window  # per second
                projected = self.spent[account] + rate * self.rule.horizon
                used = self.spent[account] / available if available > 0 else NO_CREDIT * (self.spent[account] > 0)
                value = used if used >= 1 or projected < available else max(used, c.warning or 0.0)
                if severity_of(c, value):
                    hot.append(i)
                    peak = max(peak, value)
                    at_hot = (self.spent[account], rate * 3600)
            severity = severity_of(c, peak)
            if severity is None:
                continue
            hits = rows[hot]
            ev = evidence_of(hits)
            ev.update(trust_evidence(hits, c))
            # as at the match's last CDR, not the batch's: the same however the stream was cut
            ev.update({"spent": round(at_hot[0], 4), "available": available, "burn_per_hour": round(at_hot[1], 4)})
            out.append(Match(c.id, c.key_type, account, severity, self.since[account],
                             hits.get_column("ts").min(), hits.get_column("ts").max(),  # type: ignore[arg-type]
                             hits.height, peak, ev))
        return out


@dataclass(frozen=True, eq=False)
class CreditLimit(RuleType):
    """Spend per account (sum of CDR `fee`) against what it may spend: balance plus credit limit from
    `customers`, as of the start of the data. The value is spend / available (1.0 = limit reached); a warning
    also fires when the burn rate over `window` would reach the limit within `horizon`."""

    horizon: Duration
    type_name: ClassVar[str] = "credit_limit"

    def fields(self) -> tuple[str, ...]:
        return ("fee", "customer_account")

    def frame_detector(self, ctx: Context, columns: set[str]) -> CreditDetector:
        return CreditDetector(self, ctx, columns)
