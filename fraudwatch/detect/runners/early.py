"""Early bans: the ban-proposing rules evaluated on lines as they are written, for the firewall only.

The watcher's rules run on what it has stored, in batches that a flood makes a second or more long; an attacker's
burst waits for the batch it lands in. Early bans run the rules that propose a ban on the log's newest lines
(`fraudwatch.watch.sentry` tails the files in a process of its own) and hand the firewall a decision the moment
a key reaches the level its rule bans at. They keep nothing else: no evidence, no alert. The alert still comes
from the watcher's rules, and the ban it proposes finds the address banned already (the enforcer links the two).

Why this never bans what the watcher would not: an early gate is the rule's own window (the same incremental
window code: the rule type's row-wise detector, `RuleType.row_detector`) over a subset of the rule's events —
those written since the sentry started, minus any it skipped to keep up, minus a decided key's events until it
is re-armed. Only rule types whose value cannot fall when events are added are gated (`RuleType.monotone`, listed
in `MONOTONE`: counts, distinct counts, list matches counted), so a subset reaches a level only if the whole
stream does: the watcher's alert for that key reaches it too. Spikes are not gated (fewer baseline events make a
spike look bigger), nor are report-only rules.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import compress, pairwise
from typing import Any

import polars as pl

from fraudwatch.detect.base import Context, lowest_level, severity_of
from fraudwatch.detect.decide import key_trusted, proposed_action
from fraudwatch.detect.enrich import Enricher
from fraudwatch.detect.fields import ENRICHED, ENRICHED_TYPES, columns_of
from fraudwatch.detect.filters import Conjunct
from fraudwatch.detect.rows import Conditions, Rows
from fraudwatch.detect.ruleset import rule_columns
from fraudwatch.detect.samples import POLARS_TYPES, schema_of
from fraudwatch.detect.types import TYPES, RuleType
from fraudwatch.detect.windows.incremental import KeyWindow
from fraudwatch.netaddr import IPNetwork

MONOTONE = frozenset(name for name, cls in TYPES.items() if cls.monotone)  # the rule types gated
LINE_SOURCES = ("sip_events", "netfilter_events")  # what the sentry reads: log lines, not CSV exports
DECIDED_KEPT = 200_000  # decided keys remembered at most (a botnet's); the oldest are re-armed first


def early_rules(rules: Sequence[RuleType]) -> list[RuleType]:
    """The rules an early gate can stand in for: they propose a ban, on log lines, with a monotone value."""
    return [r for r in rules if r.common.action == "ban_ip" and r.monotone
            and not r.common.report_only and r.common.source in LINE_SOURCES]


@dataclass(frozen=True)
class Decision:
    """A key reached the level its rule bans at (the enforcer reads it as it reads an alert)."""

    rule: str
    key: str
    severity: str
    value: float
    at: dt.datetime  # event time of the line that decided it
    description: str
    key_type: str = "ip"
    action: str = "ban_ip"
    report_only: bool = False
    id: int | None = None  # no alert yet
    applied: bool = False  # the sentry put the address in the kernel itself (fraudwatch.enforce.early)


class Gate:
    """One rule's window, kept only until a key reaches the rule's ban level; that key's events are then skipped
    for the rule's window and cooldown (`rearm`), after which it starts again from nothing."""

    def __init__(self, rule: RuleType, ctx: Context, columns: set[str], trusted: Sequence[IPNetwork]) -> None:
        det = rule.row_detector(ctx, columns)
        if det is None:
            raise TypeError(f"rule '{rule.common.id}': no incremental window to gate")
        c = self.common = rule.common
        self.rule, self.det = rule, det
        self.conjuncts: list[Conjunct] = det.conjuncts  # what the source's shared conditions come from
        critical = c.critical if c.act_on == "critical" else None  # the rule has that level when it acts on it
        self.level = float(critical) if critical is not None else lowest_level(c)
        self.rearm = round((c.window + c.cooldown) * 1_000_000)
        self.trusted = tuple(trusted)
        self.decided: dict[str, int] = {}  # key -> event time (us) until which its events are skipped

    def process(self, rows: Rows, masks: dict[str, list[bool]], conditions: Conditions) -> list[Decision]:
        """The decisions on a batch (`masks`: the batch's conditions met, shared by the source's gates)."""
        det = self.det
        checks = []
        for c in self.conjuncts:
            mask = masks.get(c.key)
            if mask is None:
                mask = masks[c.key] = conditions.mask(c, rows)
            checks.append(mask)
        stamps, keyed = rows.columns["ts"], [rows.column(k) for k in det.keys]
        checks += [[v is not None for v in column] for column in (stamps, *keyed)]
        picked = list(compress(range(rows.height), map(all, zip(*checks, strict=True))))
        if not picked:
            return []
        times: list[int] = [stamps[i] for i in picked]
        if any(a > b for a, b in pairwise(times)):
            picked.sort(key=stamps.__getitem__)  # stable: the rows' order within an instant
            times = [stamps[i] for i in picked]
        values: list[Any] = [rows.columns[det.field][i] for i in picked] if det.field else []
        if len(keyed) == 1:
            texts = [v if isinstance(v, str) else str(v) for v in (keyed[0][i] for i in picked)]
        else:  # `key_text`'s text (the frame path's `key_expr`)
            texts = ["|".join(str(c[i]) for c in keyed) for i in picked] if keyed else ["*"] * len(picked)
        decided, state, level = self.decided, det.state, self.level
        valued, add, value_of = det.valued, det._add, det._value
        out: list[Decision] = []
        touched: set[str] = set()
        for j, k in enumerate(texts):
            t = times[j]
            until = decided.get(k)
            if until is not None:
                if t < until:
                    continue
                del decided[k]
            st = state.get(k)
            if st is None:
                st = state[k] = KeyWindow()
            st.times.append(t)
            if valued:
                add(st, values[j])
            st.last = t
            v = value_of(st, t)
            if v < level:
                touched.add(k)
                continue
            del state[k]  # decided: counted afresh once re-armed
            touched.discard(k)
            decided[k] = t + self.rearm
            severity = severity_of(self.common, v) or "critical"
            if proposed_action(self.common, severity, key_trusted("ip", k, self.trusted, ())) == "ban_ip":
                at = dt.datetime.fromtimestamp(t / 1_000_000, dt.UTC)
                out.append(Decision(self.common.id, k, severity, v, at, self.common.description))
        for k in touched:
            state[k].compact()
        det._after(times[-1], len(times))  # forget idle keys now and then (and bound what is kept)
        if len(decided) > DECIDED_KEPT:
            newest = times[-1]
            self.decided = {k: u for k, u in decided.items() if u > newest}
            if len(self.decided) > DECIDED_KEPT:
                self.decided = dict(sorted(self.decided.items(), key=lambda kv: kv[1])[-DECIDED_KEPT // 2:])
        return out


class EarlyBans:
    """The early gates of a rule set: enrich a batch of new lines once per source (only with what the gates
    read), then every gate of it. Batches are `Rows` (the sentry's) or frames (turned into rows)."""

    def __init__(self, rules: Sequence[RuleType], ctx: Context, trusted: Sequence[IPNetwork] = ()) -> None:
        self.enrich = Enricher(trusted)
        self.gates: dict[str, list[Gate]] = {s: [] for s in ENRICHED}
        for rule in early_rules(rules):
            source = rule.common.source
            self.gates[source].append(Gate(rule, ctx, columns_of(source), trusted))
        self.derived = {s: [f for f in ENRICHED[s] if any(f in c.reads for g in gates for c in g.conjuncts)]
                        for s, gates in self.gates.items()}
        self.conditions = {s: Conditions({**schema_of(s), **{f: POLARS_TYPES[ENRICHED_TYPES[f]] for f in ENRICHED[s]}})
                           for s in self.gates}

    @property
    def rules(self) -> list[str]:
        return [g.common.id for gates in self.gates.values() for g in gates]

    def columns(self, source: str) -> list[str]:
        """The stored columns the gates of `source` read."""
        return rule_columns([g.rule for g in self.gates[source]], source)

    def process(self, source: str, events: pl.DataFrame | Rows) -> list[Decision]:
        gates = self.gates.get(source)
        if not gates or not events.height:
            return []
        rows = events if isinstance(events, Rows) else Rows.from_frame(events)
        self.enrich.rows(source, rows, self.derived[source])
        masks: dict[str, list[bool]] = {}
        out: list[Decision] = []
        for g in gates:
            out.extend(g.process(rows, masks, self.conditions[source]))
        return out
