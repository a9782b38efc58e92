"""The notifier: incident changes or alerts in, outbox rows out — routing, silences, realert suppression, quiet
hours and digests.

`on_incidents` tells each channel about an incident at most three times: when it opens, once when it escalates,
and when it ends (what is told when: fraudwatch.notify.incidents; what a message says:
fraudwatch.notify.incident_messages; what was done, in words that never claim more than happened:
fraudwatch.notify.done). `on_alerts` is the per-alert path below, kept for callers that have no incidents.

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
from fraudwatch.detect.incident import ACTION_RANK, Incident, IncidentChange
from fraudwatch.notify.channels import Channel, open_channel
from fraudwatch.notify.done import Member
from fraudwatch.notify.incident_messages import incident_digest_doc, incident_doc, incident_facts
from fraudwatch.notify.incidents import MAX_TOLD, SETTLE, Memory, routes_for, row_id, silenced
from fraudwatch.notify.messages import alert_doc, digest_doc, facts, value_label
from fraudwatch.notify.render import Doc

if TYPE_CHECKING:
    from pathlib import Path

    from fraudwatch.detect.types.base import RuleType

Clock = Callable[[], dt.datetime]
NOTICE_KEPT = dt.timedelta(days=7)  # an incident not told about for this long is forgotten (see `_tick`)
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
                 wake: Callable[[], None] | None = None, firewall: str | None = None) -> None:
        """`rules`: the loaded rules by id (`RuleSet.rules`; default: the shipped ones), for routing by tag and
        for reading alert values; `tags`: rule id -> tags, instead of `rules`; `country`: IP -> country code,
        when a lookup is available; `wake`: called after rows were queued (e.g. `Dispatcher.wake`); `firewall`:
        the name of the backend the enforcer runs (`[firewall] backend`; None: no enforcer), so that a dry run
        is never said as a ban (fraudwatch.notify.done)."""
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
        self.firewall = firewall
        self.zone = cfg.zone
        self.channels: dict[str, Channel] = {c.name: open_channel(c, cfg.send_timeout) for c in cfg.channels}
        self.state = store.load_state(self.cur)
        self.digests = store.open_digests(self.cur)
        self.notices = store.load_notices(self.cur)  # incident id -> what its last message said
        self.memory = Memory()
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
            f = facts(alert, done, names, self.country, limit, self.labels.get(alert.rule, "peak value {v}"),
                      self.firewall)
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
            digest_rows.extend(self._join_digests(digests, now_channels, now, {
                "alert_id": alert.id, "rule": alert.rule, "severity": alert.severity, "count": int(alert.count),
                "row": json.dumps(dict(f), default=str)}))
        queued = len(outgoing)
        if outgoing or digest_rows or changed:
            changed = {**self._lazy, **changed}
            self._lazy = {}

            def work() -> None:
                store.enqueue(self.cur, outgoing, now)
                store.add_to_digest(self.cur, digest_rows)
                store.save_state(self.cur, changed)

            if not self._write(work, f"{len(alerts)} alert(s)"):
                self.state = store.load_state(self.cur)  # forget what was decided but not written
                return 0
        return self._counted(queued, len(digest_rows))

    # --- incidents (fraudwatch.notify.incidents says what is told when) -------------------------------------------

    def on_incidents(self, changes: Sequence[IncidentChange], done: Mapping[int, str]) -> int:
        """Queue the messages a step of the incident book calls for: one when an incident opens, one when it
        escalates (quick escalations folded into one), one summary when it ends; `grew` sends nothing. `done`
        maps alert id -> what the enforcer did about this step's alerts. Returns the outbox rows queued now
        (digest members and waiting messages are queued when due, by `tick`). No network I/O."""
        if not changes or not self.channels:
            return 0
        now = self.clock()
        for ch in changes:
            self.memory.note(ch.incident, ch.alerts, done)
        self._look_up_members([ch.incident for ch in changes])
        step = _Step(now, self._silences(now), store.names_of(self.cur, (
            a for ch in changes for a in ch.incident.accounts[:3])))
        for ch in changes:
            self._incident_change(ch, step)
        if step.outgoing or step.digest_rows or step.notices or step.drop:
            # a row rewritten twice in this step (a waiting message) is written once, as it was last
            rows = list({(r["grp"], r["kind"], r["channels"], r["alert_id"]): r for r in step.digest_rows}.values())

            def work() -> None:
                store.enqueue(self.cur, step.outgoing, now)
                store.add_to_digest(self.cur, rows)
                store.drop_holds(self.cur, step.drop)  # after: a hold made in this step may be folded in it too
                store.save_notices(self.cur, step.notices)

            if not self._write(work, f"{len(changes)} incident change(s)"):
                self.notices = store.load_notices(self.cur)  # forget what was decided but not written
                return 0
        return self._counted(len(step.outgoing), len([r for r in step.digest_rows if r["kind"] != store.HOLD]))

    def _write(self, work: Callable[[], None], what: str) -> bool:
        """Write one step's rows in one transaction (retried when the store is busy). On a store error: log it,
        reload the open digests and say False; the caller forgets the rest of what it decided. Never lets the
        store take the caller (the watcher) down."""
        try:
            store.retrying(self.cur, work)
        except duckdb.Error as exc:
            log.error("notifications for %s not queued: store error: %s", what, exc)
            self.stats["store_errors"] += 1
            self.digests = store.open_digests(self.cur)
            return False
        return True

    def _counted(self, queued: int, digested: int = 0) -> int:
        """Count rows queued (and digest members added), wake the dispatcher when there is something to send."""
        self.stats["queued"] += queued
        self.stats["digested"] += digested
        if queued and self.wake is not None:
            self.wake()
        return queued

    def _look_up_members(self, incidents: Sequence[Incident]) -> None:
        """Members no change showed (the notifier started while the incident was open): read from `alerts`."""
        owner: dict[int, str] = {}
        for inc in incidents:
            owner.update((i, inc.id) for i in self.memory.missing(inc))
        if not owner:
            return
        try:
            rows = store.member_alerts(self.cur, sorted(owner))
        except duckdb.Error as exc:
            log.warning("members of %d incident(s) not read: %s", len(incidents), exc)
            return
        for aid, rule, key_type, key, action, trusted, report_only in rows:
            self.memory.members.setdefault(owner[int(aid)], {}).setdefault(
                int(aid), Member(rule, key_type, key, action, bool(trusted), bool(report_only)))

    def _hold_of(self, inc_id: str) -> tuple[str, str, str] | None:
        return next((g for g in self.digests if g[0] == inc_id and g[1] == store.HOLD), None)

    def _incident_change(self, ch: IncidentChange, step: _Step) -> None:
        inc, now = ch.incident, step.now
        notice = self.notices.get(inc.id)
        if ch.change == "ended":
            into = inc.merged_into  # set by the incident book when it merges two incidents
            if into:
                self._incident_merged(inc, str(into), notice, step)
            else:
                self._incident_ended(inc, notice, step)
            return
        if notice is not None and notice.told == 1 and inc.state != "ended":
            hold = self._hold_of(inc.id)
            if hold is not None:  # its opening waits: it will say the incident as it is now
                self._rewrite_opening(inc, hold, notice, step)
                return
        if notice is not None and (ch.change != "escalated" or not _rose(inc, notice)):
            return  # grew, opened again, or not above what was told: nothing an operator must hear about now
        if inc.state == "ended" or inc.id in self.memory.ended:
            self.stats["after_end"] += 1  # a member alert updated after its incident ended: it does not reopen
            return
        members = list(self.memory.members.get(inc.id, {}).values())
        if silenced(members, step.silences, now):
            self.stats["silenced"] += 1
            return
        routes = routes_for(inc, self.cfg.routes, tuple(self.channels), self.tags)
        if not routes and not self.memory.told(inc.id):
            self.stats["unrouted"] += 1
            return
        if notice is None:  # its first message (an incident not told yet is told as it is now)
            f = self._incident_facts(inc, "opened", members, step)
            wait = None if inc.severity == "critical" else now + dt.timedelta(seconds=SETTLE)
            self._deliver(inc, f, routes, step, hold_until=wait)
            self.notices[inc.id] = step.notices[inc.id] = store.Notice(inc.severity, inc.action, now)
            return
        hold = self._hold_of(inc.id)
        before = (notice.severity, notice.action)
        if hold is not None or notice.told >= MAX_TOLD or (now - notice.notified_at).total_seconds() < SETTLE:
            notice.folded += 1
            step.notices[inc.id] = notice
            self.stats["folded"] += 1
            if hold is not None:  # the waiting escalation now says the incident as it is
                f = self._incident_facts(inc, "escalated", members, step, before, notice.folded)
                step.digest_rows.extend(self._join_digests({(hold[0], hold[1]): (self.digests[hold],
                                                                                  json.loads(hold[2]))},
                                                           (), now, self._row_fields(inc, f)))
            elif notice.told < MAX_TOLD:  # wait for the next ones, then one message
                f = self._incident_facts(inc, "escalated", members, step, before, notice.folded)
                self._deliver(inc, f, routes, step, hold_until=notice.notified_at + dt.timedelta(seconds=SETTLE))
                notice.told += 1
            return
        f = self._incident_facts(inc, "escalated", members, step, before, notice.folded + 1)
        self._deliver(inc, f, routes, step)
        notice.severity, notice.action, notice.notified_at = inc.severity, inc.action, now
        notice.told += 1
        notice.folded = 0
        step.notices[inc.id] = notice

    def _rewrite_opening(self, inc: Incident, hold: tuple[str, str, str], notice: store.Notice,
                         step: _Step) -> None:
        """The waiting opening message says the incident as it is now; a critical one goes at the next tick."""
        members = list(self.memory.members.get(inc.id, {}).values())
        f = self._incident_facts(inc, "opened", members, step)
        if inc.severity == "critical":
            self.digests[hold] = min(self.digests[hold], step.now)
        step.digest_rows.extend(self._join_digests({(hold[0], hold[1]): (self.digests[hold], json.loads(hold[2]))},
                                                   (), step.now, self._row_fields(inc, f)))
        notice.severity, notice.action = inc.severity, inc.action
        step.notices[inc.id] = notice

    def _incident_merged(self, inc: Incident, into: str, notice: store.Notice | None, step: _Step) -> None:
        """No message: what was told about `inc` (its notice, channels, members, a waiting escalation folded)
        becomes the surviving incident's, so the survivor is not told as new, and its next message names `inc`."""
        hold = self._hold_of(inc.id)
        if hold is not None:
            step.drop.append(inc.id)
            self.digests.pop(hold, None)
            if notice is not None and notice.told == 1:  # its opening never went: nothing was told about it
                step.notices[inc.id] = None
                self.notices.pop(inc.id, None)
                notice = None
            elif notice is not None:  # its waiting escalation was never sent: the survivor may send one
                notice.told -= 1
        if notice is not None:
            step.notices[inc.id] = None
            self.notices.pop(inc.id, None)
            kept = self.notices.get(into)
            if kept is None:
                kept = self.notices[into] = notice
            else:
                kept.told = max(kept.told, notice.told)
                kept.folded += notice.folded
                kept.notified_at = max(kept.notified_at, notice.notified_at)
            step.notices[into] = kept
        self.memory.move(inc.id, into, notice is not None)
        self.memory.end(inc.id)

    def _incident_ended(self, inc: Incident, notice: store.Notice | None, step: _Step) -> None:
        """The summary, to every channel told and every channel its routes pick now; a waiting escalation is
        folded into it. Nothing about an incident never told."""
        try:
            if notice is None:
                return
            members = list(self.memory.members.get(inc.id, {}).values())
            step.notices[inc.id] = None
            self.notices.pop(inc.id, None)
            hold = self._hold_of(inc.id)
            opened = hold is None or notice.told > 1  # False: its opening still waited, the summary says it all
            if hold is not None:
                step.drop.append(inc.id)
                self.digests.pop(hold, None)
            if silenced(members, step.silences, step.now):
                self.stats["silenced"] += 1
                return
            said = (notice.severity, notice.action)
            before = said if opened and said != (inc.severity, inc.action) else None
            f = self._incident_facts(inc, "ended", members, step, before, notice.folded if opened else 0)
            self._deliver(inc, f, routes_for(inc, self.cfg.routes, tuple(self.channels), self.tags), step)
        finally:
            self.memory.forget(inc.id)
            self.memory.end(inc.id)

    def _incident_facts(self, inc: Incident, change: str, members: list[Member], step: _Step,
                        before: tuple[str, str] | None = None, folded: int = 0) -> dict[str, Any]:
        return incident_facts(inc, change, members, step.names, self.country, self.cfg.max_field,
                              firewall=self.firewall, before=before, folded=max(folded, 0),
                              joined=self.memory.joined.get(inc.id, ()))

    @staticmethod
    def _row_fields(inc: Incident, f: Mapping[str, Any]) -> dict[str, Any]:
        return {"alert_id": row_id(inc), "rule": inc.id, "severity": inc.severity, "count": int(inc.count),
                "row": json.dumps(dict(f), default=str)}

    def _deliver(self, inc: Incident, f: Mapping[str, Any], routes: Sequence[RouteConfig], step: _Step,
                 hold_until: dt.datetime | None = None) -> None:
        """One message about the incident per channel: now, or (quiet hours, a route's digest) in a digest, or,
        with `hold_until`, waiting until then (a `store.HOLD` row). Channels told before hear about it too."""
        now, quiet = step.now, self.cfg.quiet_hours
        local = now.astimezone(self.zone)
        held = quiet is not None and inc.severity == "warning" and quiet.contains(local)
        told = self.memory.told(inc.id)
        now_channels: list[str] = []
        digests: dict[tuple[str, str], tuple[dt.datetime, list[str]]] = {}
        wanted: list[tuple[RouteConfig | None, list[str]]] = [
            (r, [c for c in r.channels if c in self.channels]) for r in routes]
        wanted.append((None, sorted(c for c in told if c in self.channels)))
        for route, chans in wanted:
            if held and quiet is not None:
                digests.setdefault(("*", "incident-quiet"), (quiet.end_after(local).astimezone(dt.UTC), []))[1] \
                    .extend(chans)
            elif route is not None and route.digest:
                digests.setdefault((route.name, "incident-digest"), (now + dt.timedelta(seconds=route.digest),
                                                                     []))[1].extend(chans)
            else:
                now_channels.extend(c for c in chans if c not in now_channels)
        fields = self._row_fields(inc, f)
        if now_channels and hold_until is not None:
            digests = {(inc.id, store.HOLD): (hold_until, now_channels), **digests}
        elif now_channels:
            doc = incident_doc(f, self.zone, self.cfg.max_field)
            step.outgoing.extend(self._render(doc, now_channels, f"incident-{f['change']}", inc.id, inc.severity,
                                              inc.alert_ids, max(len(inc.keys), 1)))
        rows = self._join_digests(digests, now_channels if hold_until is None else (), now, fields)
        step.digest_rows.extend(rows)
        told.update(now_channels)
        told.update(c for r in rows for c in json.loads(r["channels"]))

    def _join_digests(self, wanted: Mapping[tuple[str, str], tuple[dt.datetime, list[str]]], skip: Sequence[str],
                      now: dt.datetime, fields: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Digest rows of one alert or incident (`fields`: alert_id, rule, severity, count, row): one per (group,
        kind), for the channels not already messaged now. An open digest keeps its due time; a new one is due at
        the time `wanted` says."""
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
            rows.append({"grp": grp, "kind": kind, "channels": channels, "due_at": due_at, **fields,
                         "added_at": now})
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
        return self._counted(queued)

    def _tick(self, now: dt.datetime) -> int:
        if self._lazy and (now - self._lazy_written).total_seconds() >= 30:
            lazy, self._lazy, self._lazy_written = self._lazy, {}, now
            store.retrying(self.cur, functools.partial(store.save_state, self.cur, lazy))
        stale = {k: None for k, n in self.notices.items() if now - n.notified_at > NOTICE_KEPT}
        if stale:  # an incident whose end never came (its book was lost): told again as new if it goes on
            store.retrying(self.cur, functools.partial(store.save_notices, self.cur, stale))
            for k in stale:
                self.notices.pop(k, None)
        if not self.digests or min(self.digests.values()) > now:
            return 0
        queued = 0
        for group in store.digest_groups_due(self.cur, now):
            queued += store.retrying(self.cur, functools.partial(self._flush_group, group, self.clock()))
            self.digests.pop(group, None)
        return queued

    def _flush_group(self, group: tuple[str, str, str], now: dt.datetime) -> int:
        """One digest (or waiting escalation) into the outbox (inside the caller's transaction); the rows
        queued."""
        grp, kind, channels_json = group
        chans = [c for c in json.loads(channels_json) if c in self.channels]
        rows, total, sev, ids = store.digest_group(self.cur, group, self.cfg.digest_top)
        worst = "critical" if sev.get("critical") else "warning"
        if kind == store.HOLD:  # one incident's waiting opening or escalation, as it was at its last change
            f = rows[0]
            doc = incident_doc(f, self.zone, self.cfg.max_field)
            items = self._render(doc, chans, f"incident-{f['change']}", grp, str(f["severity"]), ids,
                                 max(int(f.get("key_count") or 1), 1))
            notice = self.notices.get(grp)
            if notice is not None:
                notice.severity, notice.action, notice.notified_at = str(f["severity"]), str(f["action"]), now
                notice.folded = 0
                store.save_notices(self.cur, {grp: notice})
        else:
            window = store.digest_window(self.cur, group)
            doc = incident_digest_doc(rows, total, sev, kind, window, self.zone, self.cfg.max_field) \
                if kind.startswith("incident-") else \
                digest_doc(rows, total, sev, kind, grp, window, self.zone, self.cfg.max_field)
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


def _rose(inc: Incident, notice: store.Notice) -> bool:
    """The incident's severity or action is above what its last message said."""
    return SEVERITY_RANK.get(inc.severity, 0) > SEVERITY_RANK.get(notice.severity, 0) or \
        ACTION_RANK.get(inc.action, 0) > ACTION_RANK.get(notice.action, 0)


class _Step:
    """What one `on_incidents` call decided, written in one transaction."""

    def __init__(self, now: dt.datetime, silences: list[store.Silence], names: dict[str, str]) -> None:
        self.now = now
        self.silences = silences
        self.names = names
        self.outgoing: list[store.Outgoing] = []
        self.digest_rows: list[dict[str, Any]] = []
        self.notices: dict[str, store.Notice | None] = {}  # None: the incident ended, its row goes
        self.drop: list[str] = []  # incidents whose waiting escalation is folded into their summary
