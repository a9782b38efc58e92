"""The notifier: alerts in, outbox rows out — routing, silences, realert suppression, quiet hours and digests.

`on_alerts` does no network I/O: it decides, renders and writes pending rows to the outbox in one transaction,
and returns. The `Dispatcher` (dispatch.py) sends them. Decisions, per alert:

1. silenced (`fraudwatch alerts silence`)? counted, not notified;
2. realert: at most one notification per (rule, key) per the rule's realert interval, except that a rise in
   severity always goes out as an update; held-back updates are counted and said in the next message;
3. routes: every route whose severity / rule / tag matchers match names channels (no routes: every channel);
4. a warning during quiet hours joins the quiet digest, sent when quiet hours end; a route with `digest` adds
   the alert to that rule's open digest, sent `digest` after it opened; otherwise a message per channel now.

Wall-clock time (`clock`) drives realert, quiet hours and digests: they are about people, not event time.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import duckdb

import fraudwatch.notify.store as store
from fraudwatch.config.alerts import AlertsConfig, RouteConfig
from fraudwatch.detect.decide import SEVERITY_RANK, Alert
from fraudwatch.notify.channels import Channel, open_channel
from fraudwatch.notify.messages import alert_doc, digest_doc, facts, value_label
from fraudwatch.notify.render import Doc

if TYPE_CHECKING:
    from pathlib import Path

    from fraudwatch.detect.types.base import RuleType

Clock = Callable[[], dt.datetime]
log = logging.getLogger("fraudwatch.notify")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def load_rule_set(rule_dirs: Sequence[Path] = ()) -> dict[str, RuleType]:
    """The rules (shipped, then `rule_dirs`) by id: their tags route alerts, their types label values."""
    from fraudwatch.detect.ruleset import load_rules

    return dict(load_rules(list(rule_dirs)).rules)


class Notifier:
    def __init__(self, con: duckdb.DuckDBPyConnection, cfg: AlertsConfig, *, clock: Clock = utcnow,
                 rules: Mapping[str, RuleType] | None = None, tags: Mapping[str, Sequence[str]] | None = None,
                 country: Callable[[str], str | None] | None = None,
                 wake: Callable[[], None] | None = None) -> None:
        """`rules`: the loaded rules by id (`RuleSet.rules`; default: the shipped ones), for routing by tag and
        for reading alert values; `tags`: rule id -> tags, instead of `rules`; `country`: IP -> country code,
        when a lookup is available; `wake`: called after rows were queued (e.g. `Dispatcher.wake`)."""
        self.cur = con.cursor()
        self.cfg = cfg
        self.clock = clock
        if rules is None and tags is None:
            rules = load_rule_set()
        self.tags = {k: tuple(v) for k, v in tags.items()} if tags is not None else \
            {rid: tuple(r.common.tags) for rid, r in (rules or {}).items()}
        self.labels = {rid: value_label(r) for rid, r in (rules or {}).items()}
        self.country = country
        self.wake = wake
        self.zone = cfg.zone
        self.channels: dict[str, Channel] = {c.name: open_channel(c, cfg.send_timeout) for c in cfg.channels}
        self.state = store.load_state(self.cur)
        self.digests = store.open_digests(self.cur)
        self.stats: Counter[str] = Counter()
        self._lazy: dict[tuple[str, str], store.State] = {}  # held-back counts not yet written
        self._lazy_written = clock()
        self._silence_cache: tuple[dt.datetime, list[store.Silence]] | None = None
        self.dispatcher: Any = None  # the Dispatcher `stop` stops too (see dispatch.start_notifier)

    def _silences(self, now: dt.datetime) -> list[store.Silence]:
        """Active silences, read from the store at most once a second."""
        cached = self._silence_cache
        if cached is None or not dt.timedelta(0) <= now - cached[0] < dt.timedelta(seconds=1):
            cached = self._silence_cache = (now, store.active_silences(self.cur, now))
        return cached[1]

    # --- routing ----------------------------------------------------------------------------------------------

    def _routes(self, alert: Alert) -> list[RouteConfig]:
        if not self.cfg.routes:
            return [RouteConfig(tuple(self.channels))] if self.channels else []
        tags = self.tags.get(alert.rule, ())
        return [r for r in self.cfg.routes if r.matches(alert.rule, alert.severity, tags)]

    def _decide(self, alert: Alert, now: dt.datetime, changed: dict[tuple[str, str], store.State]) \
            -> tuple[str, str | None, int] | None:
        """(kind, previous severity, held-back count) when the alert is to be notified, else None (suppressed)."""
        slot = (alert.rule, alert.key)
        prev = self.state.get(slot)
        if prev is None:
            kind, previous, held = "alert", None, 0
        elif SEVERITY_RANK.get(alert.severity, 0) > SEVERITY_RANK.get(prev.severity, 0):
            kind, previous, held = "update", prev.severity, prev.suppressed
        elif (now - prev.notified_at).total_seconds() >= self.cfg.realert_for(alert.rule):
            same = prev.alert_id == alert.id
            kind, previous, held = ("update" if same else "alert"), prev.severity, prev.suppressed
        else:
            prev.suppressed += 1
            self._lazy[slot] = prev  # written with the next write, or by tick: no commit for a held-back update
            return None
        severity = alert.severity
        if prev is not None and prev.alert_id == alert.id and \
                SEVERITY_RANK.get(prev.severity, 0) > SEVERITY_RANK.get(severity, 0):
            severity = prev.severity
        state = store.State(severity, now, alert.id, 0)
        self.state[slot] = state
        changed[slot] = state
        return kind, previous, held

    # --- the watcher's calls ----------------------------------------------------------------------------------

    def on_alerts(self, alerts: Sequence[Alert], done: Mapping[int, str]) -> int:
        """Queue notifications for new or changed alerts; `done` maps alert id -> what the enforcer did. Returns
        the outbox rows queued now (digest members are queued when their digest is due). No network I/O."""
        if not alerts or not self.channels:
            return 0
        now = self.clock()
        limit = self.cfg.max_field
        silences = self._silences(now)
        names = store.names_of(self.cur, (a.key.split("|", 1)[0] for a in alerts if a.key_type == "account"))
        quiet = self.cfg.quiet_hours
        local = now.astimezone(self.zone)
        in_quiet = quiet is not None and quiet.contains(local)
        changed: dict[tuple[str, str], store.State] = {}
        outgoing: list[store.Outgoing] = []
        digest_rows: list[dict[str, Any]] = []
        for alert in alerts:
            if any(s.until > now and s.matches(alert.rule, alert.key) for s in silences):
                self.stats["silenced"] += 1
                continue
            routes = self._routes(alert)
            if not routes:
                self.stats["unrouted"] += 1
                continue
            decision = self._decide(alert, now, changed)
            if decision is None:
                self.stats["suppressed"] += 1
                continue
            kind, previous, held = decision
            f = facts(alert, done, names, self.country, limit, self.labels.get(alert.rule, "peak value {v}"))
            now_channels: list[str] = []
            digests: dict[tuple[str, str], tuple[dt.datetime, list[str]]] = {}
            for route in routes:
                chans = [c for c in route.channels if c in self.channels]
                if in_quiet and alert.severity == "warning" and quiet is not None:
                    digests.setdefault(("*", "quiet"), (quiet.end_after(local).astimezone(dt.UTC), []))[1] \
                        .extend(chans)
                elif route.digest:
                    digests.setdefault((alert.rule, "digest"), (now + dt.timedelta(seconds=route.digest), []))[1] \
                        .extend(chans)
                else:
                    now_channels.extend(c for c in chans if c not in now_channels)
            if now_channels:
                doc = alert_doc(f, kind, self.zone, limit, previous=previous, held=held)
                outgoing.extend(self._render(doc, now_channels, kind, alert.rule, alert.severity, [alert.id], 1))
            digest_rows.extend(self._join_digests(alert, f, digests, now_channels, now))
        queued = len(outgoing)
        if outgoing or digest_rows or changed:
            changed = {**self._lazy, **changed}
            self._lazy = {}

            def work() -> None:
                store.enqueue(self.cur, outgoing, now)
                store.add_to_digest(self.cur, digest_rows)
                store.save_state(self.cur, changed)

            try:
                store.retrying(self.cur, work)
            except duckdb.Error as exc:  # never let the store take the caller (the watcher) down
                log.error("notifications for %d alert(s) not queued: store error: %s", len(alerts), exc)
                self.stats["store_errors"] += 1
                self.state = store.load_state(self.cur)  # forget what was decided but not written
                self.digests = store.open_digests(self.cur)
                return 0
        self.stats["queued"] += queued
        self.stats["digested"] += len(digest_rows)
        if queued and self.wake is not None:
            self.wake()
        return queued

    def _join_digests(self, alert: Alert, f: Mapping[str, Any],
                      wanted: Mapping[tuple[str, str], tuple[dt.datetime, list[str]]], skip: Sequence[str],
                      now: dt.datetime) -> list[dict[str, Any]]:
        """Digest rows for `alert`: one per (group, kind), for the channels not already messaged now. An open
        digest keeps its due time; a new one is due at the time `wanted` says."""
        rows = []
        for (grp, kind), (when, chans) in wanted.items():
            keep = sorted({c for c in chans if c not in skip})
            if not keep:
                continue
            channels = json.dumps(keep)
            slot = (grp, kind, channels)
            due_at = self.digests.get(slot)
            if due_at is None:
                due_at = self.digests[slot] = when
            rows.append({"grp": grp, "kind": kind, "channels": channels, "due_at": due_at, "alert_id": alert.id,
                         "rule": alert.rule, "severity": alert.severity, "count": int(alert.count),
                         "row": json.dumps(dict(f), default=str), "added_at": now})
        return rows

    def _render(self, doc: Doc, channels: Sequence[str], kind: str, rule: str, severity: str, ids: Sequence[int],
                keys: int) -> list[store.Outgoing]:
        out = []
        for name in channels:
            ch = self.channels[name]
            title, body, body_format = ch.message(doc)
            out.append(store.Outgoing(name, kind, rule, severity, tuple(ids), keys, title, body, body_format))
        return out

    def tick(self, now: dt.datetime | None = None) -> int:
        """Flush every digest due at `now` into the outbox (and write held-back counts every 30 s); the rows
        queued. Store errors are logged, not raised (what was not done is retried on the next tick)."""
        now = now or self.clock()
        queued = 0
        try:
            queued = self._tick(now)
        except duckdb.Error as exc:
            log.error("notification tick: store error: %s", exc)
            self.stats["store_errors"] += 1
        self.stats["queued"] += queued
        if queued and self.wake is not None:
            self.wake()
        return queued

    def _tick(self, now: dt.datetime) -> int:
        if self._lazy and (now - self._lazy_written).total_seconds() >= 30:
            lazy, self._lazy, self._lazy_written = self._lazy, {}, now
            store.retrying(self.cur, functools.partial(store.save_state, self.cur, lazy))
        if not self.digests or min(self.digests.values()) > now:
            return 0
        queued = 0
        for group in store.digest_groups_due(self.cur, now):
            queued += store.retrying(self.cur, functools.partial(self._flush_group, group, self.clock()))
            self.digests.pop(group, None)
        return queued

    def _flush_group(self, group: tuple[str, str, str], now: dt.datetime) -> int:
        """One digest into the outbox (inside the caller's transaction); the rows queued."""
        grp, kind, channels_json = group
        chans = [c for c in json.loads(channels_json) if c in self.channels]
        rows, total, sev, ids = store.digest_group(self.cur, group, self.cfg.digest_top)
        window = store.digest_window(self.cur, group)
        doc = digest_doc(rows, total, sev, kind, grp, window, self.zone, self.cfg.max_field)
        worst = "critical" if sev.get("critical") else "warning"
        items = self._render(doc, chans, kind, grp, worst, ids, total)
        store.enqueue(self.cur, items, now)
        store.drop_digest(self.cur, group)
        return len(items)

    def flush(self) -> int:
        """Send every open digest now (a one-shot command's end)."""
        far = self.clock() + dt.timedelta(days=3650)
        return self.tick(far)

    def stop(self, now: dt.datetime | None = None, timeout: float = 5.0) -> None:
        """Stop the attached dispatcher (within `timeout`), write what is only in memory and close."""
        if self.dispatcher is not None:
            self.dispatcher.stop(timeout)
        self.close()

    def close(self) -> None:
        """Write what is still only in memory (held-back counts) and close the cursor."""
        if self._lazy:
            lazy, self._lazy = self._lazy, {}
            store.retrying(self.cur, functools.partial(store.save_state, self.cur, lazy))
        self.cur.close()
