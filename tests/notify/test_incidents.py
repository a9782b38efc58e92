"""Notifications per incident: one message when it opens, one when it escalates (quick escalations folded), one
summary when it ends — counted on a real loopback webhook; silences, routes, quiet hours and digests over an
incident's members; restarts; attacker text escaped in every markup."""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import json
import time
import zoneinfo
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fraudwatch.config.alerts import AlertsConfig, ChannelConfig, QuietHours, RouteConfig
from fraudwatch.detect.decide import Alert
from fraudwatch.detect.incident import Incident, IncidentChange, IncidentFeed
from fraudwatch.notify import store as nstore
from fraudwatch.notify.dispatch import Dispatcher
from fraudwatch.notify.done import Member
from fraudwatch.notify.incident_messages import incident_doc, incident_facts
from fraudwatch.notify.incidents import SETTLE
from fraudwatch.notify.notifier import Notifier
from fraudwatch.notify.render import render_body
from fraudwatch.store.db import Store

from .conftest import HOSTILE, T0, Clock, Receiver, make_alert

TAGS = {"brute-force-ip": ("bruteforce",), "register-flood-ip": ("flood",), "high-risk-spend-account": ("toll-fraud",),
        "auth-failures-account": ("bruteforce",)}
NOW = dt.datetime(2026, 11, 20, 3, 0, tzinfo=dt.UTC)


def _cfg(*channels: tuple[str, str], **kw: Any) -> AlertsConfig:
    chans = channels or (("hook", "json://127.0.0.1:9/a"),)
    opts: dict[str, Any] = {"send_timeout": 3.0, "retry_min": 0.05, "retry_max": 0.2}
    opts.update(kw)
    return AlertsConfig(channels=tuple(ChannelConfig(n, u) for n, u in chans), **opts)


def _incident(alerts: list[Alert], iid: str = "inc-7f3a", title: str = "brute force from 203.0.113.7",
              **kw: Any) -> Incident:
    sev = "critical" if any(a.severity == "critical" for a in alerts) else "warning"
    action = next((a.action for a in alerts if a.action != "alert" and not a.trusted), "alert")
    fields: dict[str, Any] = {
        "id": iid, "kind": "attack", "title": title, "severity": sev, "action": action, "state": "open",
        "first_seen": min(a.first_seen for a in alerts), "last_seen": max(a.last_seen for a in alerts),
        "opened_at": min(a.detected_at for a in alerts), "alert_ids": [a.id for a in alerts],
        "rules": list(dict.fromkeys(a.rule for a in alerts)),
        "ips": list(dict.fromkeys(a.key.split("|")[0] for a in alerts if a.key_type == "ip")),
        "accounts": list(dict.fromkeys(a.key for a in alerts if a.key_type == "account")),
        "keys": [f"{a.key_type}:{a.key}" for a in alerts], "members": len(alerts),
        "count": sum(a.count for a in alerts), "trusted": any(a.trusted for a in alerts),
        "report_only": all(a.report_only for a in alerts)}
    fields.update(kw)
    return Incident(**fields)


def _change(change: str, alerts: list[Alert], new: list[Alert] | None = None, **kw: Any) -> IncidentChange:
    inc = _incident(alerts, **kw)
    if change == "ended":
        inc.state, inc.ended_at = "ended", inc.last_seen + dt.timedelta(minutes=30)
    return IncidentChange(inc, change, alerts=tuple(alerts if new is None else new))  # type: ignore[arg-type]


def _brute(i: int, severity: str = "warning", action: str = "alert", ip: str = "203.0.113.7", **kw: Any) -> Alert:
    return make_alert(i, rule="brute-force-ip", severity=severity, key=ip, action=action,
                      description="SIP brute force", **kw)


def _rows(store: Store) -> list[dict[str, Any]]:
    cur = store.con.execute("SELECT id, channel, kind, rule, severity, keys, title, body FROM notify_outbox "
                            "ORDER BY id")
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _wait(pred: Any, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return bool(pred())


def test_an_attack_is_three_messages_on_a_real_webhook(store: Store, http: Receiver) -> None:
    """Open, two quick escalations and a later one, many growths, the end: opened + one escalation + summary."""
    http.start()
    clock = Clock(NOW)
    cfg = _cfg(("noc-hook", http.url()), timezone="Asia/Shanghai")
    dispatcher = Dispatcher(store.con, cfg, poll=0.05, clock=clock)
    notifier = Notifier(store.con, cfg, clock=clock, tags=TAGS, wake=dispatcher.wake, firewall="nftables")
    dispatcher.start()
    try:
        a1 = _brute(1)
        assert notifier.on_incidents([_change("opened", [a1])], {}) == 0  # a warning's opening waits ...
        clock.advance(60)
        assert notifier.on_incidents([_change("grew", [a1])], {}) == 0
        clock.advance(SETTLE - 60)
        assert notifier.tick(clock()) == 1  # ... then says the incident as it is
        clock.advance(20)
        a1c = _brute(1, "warning", "ban_ip", count=300)
        done = {1: "banned 203.0.113.7 until 2026-11-21 03:00 UTC (level 1)"}
        assert notifier.on_incidents([_change("escalated", [a1c])], done) == 0  # waits: quick ones fold
        clock.advance(10)
        a2 = make_alert(2, rule="register-flood-ip", key="203.0.113.7", count=900)
        for _ in range(50):  # the attack goes on: growth is not news
            assert notifier.on_incidents([_change("grew", [a1c, a2], new=[a2])], {}) == 0
        assert notifier.on_incidents([_change("escalated", [a1c, a2], new=[a2])], {}) == 0
        clock.advance(SETTLE - 30 - 1)
        assert notifier.tick(clock()) == 0
        clock.advance(1)
        assert notifier.tick(clock()) == 1  # the one escalation, as the incident is by now
        clock.advance(3600)
        a3 = make_alert(3, rule="brute-force-ip", severity="critical", key="203.0.113.7|admin", count=50)
        # an escalation not above what was told (e.g. after a restart of the book) is not news
        assert notifier.on_incidents([_change("escalated", [a1c, a2], new=[])], {}) == 0
        assert notifier.on_incidents([_change("escalated", [a1c, a2, a3], new=[a3])], {}) == 0  # folded: told
        clock.advance(600)
        assert notifier.on_incidents([_change("ended", [a1c, a2, a3], new=[])], {}) == 1
        assert _wait(lambda: len(http.posts) == 3), http.posts
        time.sleep(0.2)
    finally:
        assert dispatcher.stop(5.0)
    assert len(http.posts) == 3
    opened, escalated, ended = http.messages()
    assert [m["kind"] for m in (opened, escalated, ended)] == ["incident-opened", "incident-escalated",
                                                               "incident-ended"]
    assert http.posts[0]["title"] == "[WARNING] new incident inc-7f3a: brute force from 203.0.113.7"
    assert http.posts[1]["title"] == "[WARNING] incident inc-7f3a escalated: brute force from 203.0.113.7"
    assert http.posts[2]["title"] == "[ENDED CRITICAL] incident inc-7f3a: brute force from 203.0.113.7"
    assert escalated["before"] == {"severity": "warning", "action": "alert"}
    assert escalated["rules"] == ["brute-force-ip", "register-flood-ip"] and escalated["count"] == 1200
    assert "Escalated: action alert only → ban the IP" in escalated["text"]
    assert "2 escalations since the last message, told in this one" in escalated["text"]
    for m in (opened, escalated, ended):
        assert m["show"] == "fraudwatch incidents show inc-7f3a"
        assert "More: fraudwatch incidents show inc-7f3a" in m["text"]
        assert "Who: IP 203.0.113.7" in m["text"]
        assert "Since: 2026-11-20 03:00:00 UTC (11:00:00 Asia/Shanghai)" in m["text"]
    assert "Done: banned 203.0.113.7 until 2026-11-21 03:00 UTC (level 1)" in ended["text"]
    assert "Done: nothing: alert only" in opened["text"]
    assert "Ended: no event since 2026-11-20 03:05:00 UTC" in ended["text"] and "it lasted 35m" in ended["text"]
    assert "How much: 1,250 events in 3 alert(s)" in ended["text"]
    assert "Escalated since the last message: severity warning → critical" in ended["text"]
    assert ended["folded"] == 1 and "1 escalation(s) since the last message, told only in this summary" in \
        ended["text"]
    assert [r["kind"] for r in _rows(store)] == ["incident-opened", "incident-escalated", "incident-ended"]
    assert nstore.load_notices(store.con) == {}  # an ended incident leaves nothing behind
    assert store.con.execute("SELECT count(*) FROM notify_digest").fetchall() == [(0,)]


def test_an_incident_that_ends_while_its_opening_waits_is_one_summary(store: Store) -> None:
    """A replay brings an incident's whole life in one call; live, a short attack ends within minutes: the
    summary says it all (the escalation included), nothing else is sent."""
    clock = Clock(NOW)
    n = Notifier(store.con, _cfg(), clock=clock, tags=TAGS)
    a1, a1c = _brute(1), _brute(1, "critical", "ban_ip")
    assert n.on_incidents([_change("opened", [a1]), _change("escalated", [a1c]), _change("grew", [a1c]),
                           _change("ended", [a1c])], {}) == 1
    [ended] = (json.loads(r["body"]) for r in _rows(store))
    assert ended["change"] == "ended" and ended["severity"] == "critical" and ended["folded"] == 0
    assert ended["before"] is None and "Escalated" not in ended["text"]
    clock.advance(3 * SETTLE)
    assert n.tick(clock()) == 0  # the waiting opening went with the summary


def test_a_waiting_opening_says_the_incident_as_it_is_and_a_critical_goes_at_once(store: Store) -> None:
    clock = Clock(NOW)
    n = Notifier(store.con, _cfg(), clock=clock, tags=TAGS)
    assert n.on_incidents([_change("opened", [_brute(1)], iid="w")], {}) == 0
    assert n.on_incidents([_change("opened", [_brute(2, "critical", ip="198.51.100.2")], iid="c")], {}) == 1
    clock.advance(30)
    b = _brute(3, ip="198.51.100.3")
    assert n.on_incidents([_change("grew", [_brute(1), b], new=[b], iid="w")], {}) == 0
    clock.advance(1)
    assert n.on_incidents([_change("escalated", [_brute(1, "critical"), b], new=[], iid="w")], {}) == 0
    assert n.tick(clock()) == 1  # critical now: the next tick sends it, as it is
    opening = json.loads(_rows(store)[-1]["body"])
    assert (opening["id"], opening["change"], opening["severity"], opening["ip_count"]) == ("w", "opened",
                                                                                            "critical", 2)
    clock.advance(SETTLE)
    assert n.tick(clock()) == 0 and len(_rows(store)) == 2


def test_at_most_three_messages_per_channel_whatever_the_sequence(store: Store) -> None:
    routes = (RouteConfig(("a",)), RouteConfig(("b",), severity=("critical",)))
    cfg = _cfg(("a", "json://127.0.0.1:9/a"), ("b", "json://127.0.0.1:9/b"), routes=routes)

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.lists(st.tuples(st.sampled_from(["escalated", "grew"]), st.integers(0, 400),
                              st.sampled_from(["warning", "critical"]), st.sampled_from(["alert", "ban_ip"])),
                    max_size=12), st.booleans())
    def check(steps: list[tuple[str, int, str, str]], ends: bool) -> None:
        for table in ("notify_outbox", "notify_state", "notify_digest"):
            store.con.execute(f"DELETE FROM {table}")
        clock = Clock(NOW)
        n = Notifier(store.con, cfg, clock=clock, tags=TAGS)
        n.on_incidents([_change("opened", [_brute(1)])], {})
        for change, wait, sev, action in steps:
            clock.advance(wait)
            n.tick(clock())
            n.on_incidents([_change(change, [_brute(1, sev, action)])], {})
        clock.advance(1000)
        n.tick(clock())
        if ends:
            n.on_incidents([_change("ended", [_brute(1, "critical")])], {})
        n.flush()
        n.close()
        per_channel = store.con.execute("SELECT channel, count(*) FROM notify_outbox GROUP BY 1").fetchall()
        assert all(c <= 3 for _, c in per_channel), (per_channel, steps)
        kinds = [r[0] for r in store.con.execute("SELECT kind FROM notify_outbox WHERE channel = 'a' "
                                                 "ORDER BY id").fetchall()]
        assert kinds[0] in ("incident-opened", "incident-ended") and kinds.count("incident-escalated") <= 1
        assert (kinds[-1] == "incident-ended") == ends

    check()


def test_silences_apply_to_every_member(store: Store) -> None:
    clock = Clock(NOW)
    nstore.add_silence(store.con, "203.0.113.0/24", None, NOW + dt.timedelta(hours=2), "pen test", "noc", NOW)
    n = Notifier(store.con, _cfg(), clock=clock, tags=TAGS)
    inside, outside = _brute(1, "critical"), _brute(2, "critical", ip="198.51.100.9")
    # every member silenced: not told, not its growth, not its end
    assert n.on_incidents([_change("opened", [inside], iid="quiet")], {}) == 0
    assert n.on_incidents([_change("escalated", [_brute(1, "critical")], iid="quiet")], {}) == 0
    assert n.stats["silenced"] == 2
    # one member not silenced: told
    assert n.on_incidents([_change("opened", [inside, outside], iid="mixed")], {}) == 1
    # a silenced incident that gains a member nobody silenced is told then, as it is
    assert n.on_incidents([_change("grew", [inside, outside], new=[outside], iid="quiet")], {}) == 1
    assert n.on_incidents([_change("ended", [inside], iid="never")], {}) == 0  # never told: no summary
    assert [json.loads(r["body"])["id"] for r in _rows(store)] == ["mixed", "quiet"]
    # a silence for one rule covers only that rule's members
    nstore.add_silence(store.con, "10023", "high-risk-spend-account", NOW + dt.timedelta(hours=2), None, None, NOW)
    clock.advance(1)
    spend = make_alert(5, rule="high-risk-spend-account", key_type="account", key="10023", action="lock_account",
                       severity="critical")
    auth = make_alert(6, rule="auth-failures-account", key_type="account", key="10023", severity="critical")
    assert n.on_incidents([_change("opened", [spend], iid="acct-1")], {}) == 0
    assert n.on_incidents([_change("opened", [spend, auth], iid="acct-2")], {}) == 1


def test_routes_match_over_the_members_and_follow_the_incident(store: Store) -> None:
    clock = Clock(NOW)
    routes = (RouteConfig(("mail",), severity=("critical",), name="critical"),
              RouteConfig(("chat",), tags=("flood",), name="floods"),
              RouteConfig(("tickets",), rules=("high-risk-*",), name="toll"))
    cfg = _cfg(("mail", "json://127.0.0.1:9/m"), ("chat", "json://127.0.0.1:9/c"),
               ("tickets", "json://127.0.0.1:9/t"), routes=routes)
    n = Notifier(store.con, cfg, clock=clock, tags=TAGS)
    brute = _brute(1)
    assert n.on_incidents([_change("opened", [brute])], {}) == 0 and n.stats["unrouted"] == 1
    flood = make_alert(2, rule="register-flood-ip", key="203.0.113.7")
    # a member of a routed rule joins: the incident is told (to the flood route's channel; a warning waits)
    assert n.on_incidents([_change("grew", [brute, flood], new=[flood])], {}) == 0
    clock.advance(SETTLE)
    assert n.tick(clock()) == 1
    clock.advance(SETTLE)
    # critical: the critical route picks it too; the channel told before hears the escalation
    assert n.on_incidents([_change("escalated", [brute, dataclasses.replace(flood, severity="critical")])],
                          {}) == 2
    assert n.on_incidents([_change("ended", [brute, flood])], {}) == 2  # told channels and routes now
    assert sorted((r["kind"], r["channel"]) for r in _rows(store)) == [
        ("incident-ended", "chat"), ("incident-ended", "mail"), ("incident-escalated", "chat"),
        ("incident-escalated", "mail"), ("incident-opened", "chat")]
    assert all(r["rule"] == "inc-7f3a" for r in _rows(store))
    acct = make_alert(9, rule="high-risk-spend-account", key_type="account", key="10023", severity="critical")
    assert n.on_incidents([_change("opened", [acct], iid="toll")], {}) == 2
    assert sorted(r["channel"] for r in _rows(store)[-2:]) == ["mail", "tickets"]


def test_quiet_hours_hold_warning_incidents_and_criticals_go_out(store: Store) -> None:
    clock = Clock(dt.datetime(2026, 11, 20, 15, 30, tzinfo=dt.UTC))  # 23:30 in Shanghai
    cfg = _cfg(timezone="Asia/Shanghai", quiet_hours=QuietHours(dt.time(22, 0), dt.time(7, 0)))
    n = Notifier(store.con, cfg, clock=clock, tags=TAGS)
    assert n.on_incidents([_change("opened", [_brute(1)], iid="w1"),
                           _change("opened", [_brute(2, ip="198.51.100.2")], iid="w2", title="scan")], {}) == 0
    assert n.on_incidents([_change("opened", [_brute(3, "critical", ip="198.51.100.3")], iid="c1")], {}) == 1
    clock.advance(3600)
    assert n.on_incidents([_change("ended", [_brute(2, ip="198.51.100.2")], iid="w2", title="scan")], {}) == 0
    clock.now = dt.datetime(2026, 11, 20, 23, 0, tzinfo=dt.UTC)  # 07:00 local
    assert n.tick(clock()) == 1
    quiet = _rows(store)[-1]
    doc = json.loads(quiet["body"])
    assert quiet["kind"] == "incident-quiet" and quiet["keys"] == 2
    assert quiet["title"] == "[WARNING] 2 incident(s) held through quiet hours"
    assert sorted((r["id"], r["change"]) for r in doc["rows"]) == [("w1", "opened"), ("w2", "ended")]
    assert "fraudwatch incidents show ID" in doc["text"]


def test_a_digest_route_sends_incidents_as_one_message(store: Store) -> None:
    clock = Clock(NOW)
    cfg = _cfg(("chat", "json://127.0.0.1:9/c"), routes=(RouteConfig(("chat",), digest=300.0, name="scans"),))
    n = Notifier(store.con, cfg, clock=clock, tags=TAGS)
    changes = [_change("opened", [_brute(i, ip=f"198.51.100.{i}")], iid=f"i{i}", title=f"scan {i}")
               for i in range(1, 13)]
    assert n.on_incidents(changes, {}) == 0
    clock.advance(300)
    assert n.tick(clock()) == 1
    [row] = _rows(store)
    doc = json.loads(row["body"])
    assert row["kind"] == "incident-digest" and doc["incidents"] == 12 and len(doc["rows"]) == 10
    assert "… and 2 more: fraudwatch incidents list" in doc["text"]


def test_notices_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    clock = Clock(NOW)
    a1 = _brute(1, "critical")
    with Store(path) as st:
        n = Notifier(st.con, _cfg(), clock=clock, tags=TAGS)
        assert n.on_incidents([_change("opened", [a1])], {}) == 1
        clock.advance(10)
        assert n.on_incidents([_change("escalated", [_brute(1, "critical", "ban_ip")])], {}) == 0  # waits
        n.close()
    with Store(path) as st:
        st.con.execute("INSERT INTO alerts (id, rule, severity, key_type, key, action, trusted, report_only) "
                       "VALUES (1, 'brute-force-ip', 'critical', 'ip', '203.0.113.7', 'ban_ip', false, false)")
        n = Notifier(st.con, _cfg(), clock=clock, tags=TAGS, firewall="dry-run")
        assert n.on_incidents([_change("opened", [a1], new=[])], {}) == 0  # told already
        clock.advance(SETTLE)
        assert n.tick(clock()) == 1  # the waiting escalation was in the store
        assert n.on_incidents([_change("ended", [_brute(1, "critical", "ban_ip")], new=[])], {}) == 1
        ended = json.loads(_rows(st)[-1]["body"])
        # the member was read back from the store: the summary says what a dry run would have done
        assert ended["done"] == ["dry run: would have banned 1 IP: 203.0.113.7 (the firewall was not changed)"]
        assert [r["kind"] for r in _rows(st)] == ["incident-opened", "incident-escalated", "incident-ended"]


def test_attacker_text_is_escaped_in_every_markup(store: Store) -> None:
    alert = make_alert(7, rule="brute-force-ip", key="198.51.100.7|" + HOSTILE, severity="critical")
    change = _change("opened", [alert], title="brute force by " + HOSTILE)
    n = Notifier(store.con, _cfg(), tags=TAGS)
    n.on_incidents([change], {7: HOSTILE})
    [row] = _rows(store)
    doc = json.loads(row["body"])  # a json channel: the encoder escapes; no control character survives
    assert "\n" not in row["title"] and "\nFAKE" not in doc["text"] and "FAKE: line" in doc["text"]
    f = incident_facts(change.incident, "opened", [Member.of(alert, {7: HOSTILE})], {}, None, 120)
    d = incident_doc(f, zoneinfo.ZoneInfo("UTC"), 120)
    body = render_body(d, "html")
    assert "<script>" not in body and html.escape("<script>alert(1)</script>") in body
    md = render_body(d, "markdown")
    assert r"\<script\>" in md and r"\*bold\*" in md and r"\[link\](http://evil)" in md
    assert "**Who:** " in md
    wa = render_body(d, "whatsapp")
    assert "*bold*" not in wa and "\u200b*bold\u200b*" in wa


class _Script:
    """Hand-built changes in the shape of the incident book (an IncidentFeed): what `apply` returns for each batch
    of alerts, and the incidents `close_quiet` ends once the event time passed their quiet spell."""

    def __init__(self, steps: list[list[IncidentChange]], ending: list[IncidentChange], quiet: dt.timedelta) -> None:
        self.steps, self.ending, self.quiet = steps, ending, quiet

    def apply(self, alerts: Sequence[Alert]) -> list[IncidentChange]:
        step = self.steps.pop(0)
        assert {a.id for c in step for a in c.alerts} <= {a.id for a in alerts}
        return step

    def close_quiet(self, now: dt.datetime) -> list[IncidentChange]:
        due = [c for c in self.ending if c.incident.last_seen + self.quiet <= now]
        self.ending = [c for c in self.ending if c not in due]
        return due


def _watch(feed: IncidentFeed, notifier: Notifier, batches: list[list[Alert]], now: dt.datetime,
           clock: Clock) -> int:
    """The watcher's calls, as they will be: each batch's changes with what the enforcer did, a tick a minute
    later, then the ends."""
    queued = 0
    for alerts in batches:
        queued += notifier.on_incidents(feed.apply(alerts), {a.id: f"banned {a.key} until tomorrow" for a in alerts})
        clock.advance(60)
        queued += notifier.tick(clock())
    return queued + notifier.on_incidents(feed.close_quiet(now), {})


def test_a_campaign_of_40_addresses_is_one_opening_and_one_summary(store: Store) -> None:
    clock = Clock(NOW)
    n = Notifier(store.con, _cfg(), clock=clock, tags=TAGS, firewall="ipset")
    batches = [[_brute(i * 10 + j + 1, action="ban_ip", ip=f"198.51.100.{i * 10 + j + 1}") for j in range(10)]
               for i in range(4)]
    seen: list[Alert] = []
    steps = []
    for i, batch in enumerate(batches):
        seen += batch
        steps.append([_change("opened" if i == 0 else "grew", list(seen), new=batch, iid="camp",
                              kind="campaign", title="distributed brute force from 40 addresses")])
    feed = _Script(steps, [_change("ended", list(seen), new=[], iid="camp", kind="campaign",
                                   title="distributed brute force from 40 addresses")], dt.timedelta(minutes=15))
    assert _watch(feed, n, batches, T0 + dt.timedelta(minutes=10), clock) == 1  # not quiet long enough yet
    assert n.on_incidents(feed.close_quiet(T0 + dt.timedelta(minutes=20)), {}) == 1
    opened, ended = (json.loads(r["body"]) for r in _rows(store))
    assert opened["who"] == "20 IPs: 198.51.100.1, 198.51.100.2, 198.51.100.3, …"  # as it was 2 minutes in
    assert ended["who"] == "40 IPs: 198.51.100.1, 198.51.100.2, 198.51.100.3, …" and ended["ip_count"] == 40
    assert ended["done"] == ["banned 198.51.100.1 until tomorrow, banned 198.51.100.2 until tomorrow, banned "
                             "198.51.100.3 until tomorrow (+37 more)"]
    assert _rows(store)[-1]["keys"] == 40


def test_a_replays_incidents_are_sent_once_behind_detect_notify(tmp_path: Path, http: Receiver) -> None:
    """`notify_incidents` (for `detect --notify`): each replayed incident is its opening and its summary, at
    most."""
    from fraudwatch.config import load_config
    from fraudwatch.notify.oneshot import notify_incidents, replay_done

    http.start()
    path = tmp_path / "fraudwatch.toml"
    path.write_text(f'[store]\npath = "{tmp_path / "store.duckdb"}"\n\n[alerts]\nsend_timeout = "3s"\n\n'
                    f'[[alerts.channels]]\nname = "noc-hook"\nurl = "{http.url()}"\n', encoding="utf-8")
    cfg = load_config(path)
    a, b = _brute(1, "critical", "ban_ip"), _brute(2, ip="198.51.100.2", action="ban_ip")
    changes = [_change("opened", [a], iid="r1"), _change("opened", [b], iid="r2"),
               _change("escalated", [dataclasses.replace(b, severity="critical")], iid="r2"),
               _change("ended", [a], iid="r1"), _change("ended", [b], iid="r2")]
    line = notify_incidents(cfg, changes, replay_done([a, b]))
    # r1 (critical) is told at once; r2's opening (a warning) waits, and its summary says it all
    assert line == "3 notification(s) queued, 3 sent"
    assert [(m["id"], m["change"]) for m in http.messages()] == [("r1", "opened"), ("r1", "ended"), ("r2", "ended")]
    assert http.messages()[1]["done"] == ["replay: nothing done (live, the watcher would ban the IP)"]


def _merged(alerts: list[Alert], iid: str, into: str) -> IncidentChange:
    """The book's `ended` for an incident merged into another (`merged_into`)."""
    change = _change("ended", alerts, new=[], iid=iid)
    change.incident.merged_into = into
    return change


def test_a_merged_incident_sends_nothing_and_its_survivor_is_not_told_as_new(store: Store) -> None:
    """The book merges incidents it finds one attack: no summary of the merged one, no opening of the survivor
    under a new id (the book re-founds an incident on an earlier alert that came late); the survivor names it."""
    clock = Clock(NOW)
    n = Notifier(store.con, _cfg(), clock=clock, tags=TAGS)
    a, b = _brute(5, "critical"), _brute(6, "critical", ip="198.51.100.6")
    assert n.on_incidents([_change("opened", [a], iid="A")], {}) == 1
    clock.advance(10)
    assert n.on_incidents([_change("escalated", [_brute(5, "critical", "ban_ip")], iid="A")], {}) == 0  # waits
    early = _brute(1, "critical", ip="198.51.100.6")  # an earlier alert came late: it founds the incident, as "N"
    assert n.on_incidents([_merged([a], "A", into="N"), _change("grew", [early, a, b], new=[early, b], iid="N")],
                          {}) == 0
    clock.advance(SETTLE)
    assert n.tick(clock()) == 0  # A's waiting escalation went with it
    assert n.on_incidents([_change("escalated", [early, _brute(5, "critical", "ban_ip"), b], new=[], iid="N")],
                          {}) == 1
    assert n.on_incidents([_change("ended", [early, a, b], new=[], iid="N")], {}) == 1
    rows = [json.loads(r["body"]) for r in _rows(store)]
    assert [(r["id"], r["change"]) for r in rows] == [("A", "opened"), ("N", "escalated"), ("N", "ended")]
    assert rows[1]["joined"] == ["A"] and "Joined: incident A (told before) turned out part of this one" in \
        rows[1]["text"]
    assert rows[2]["members"] == 3 and rows[2]["ip_count"] == 2
    assert nstore.load_notices(store.con) == {}


def test_nothing_after_the_end(store: Store) -> None:
    """An incident does not reopen: a member alert updated after its end (the book still knows whose it is) is no
    news, even as an escalation."""
    n = Notifier(store.con, _cfg(), clock=Clock(NOW), tags=TAGS)
    assert n.on_incidents([_change("opened", [_brute(1)]), _change("ended", [_brute(1)])], {}) == 1
    later = _change("escalated", [_brute(1, "critical", "ban_ip")])
    later.incident.state = "ended"
    assert n.on_incidents([later], {}) == 0
    assert n.on_incidents([_change("grew", [_brute(1)]), _change("escalated", [_brute(1, "critical")])], {}) == 0
    assert n.stats["after_end"] == 3


def test_an_incident_merged_while_its_opening_waits_was_never_told(store: Store) -> None:
    clock = Clock(NOW)
    n = Notifier(store.con, _cfg(), clock=clock, tags=TAGS)
    a, b = _brute(5), _brute(6, ip="198.51.100.6")
    assert n.on_incidents([_change("opened", [a], iid="A")], {}) == 0  # a warning: its opening waits
    clock.advance(30)
    assert n.on_incidents([_merged([a], "A", into="B"), _change("opened", [a, b], new=[b], iid="B")], {}) == 0
    clock.advance(SETTLE)
    assert n.tick(clock()) == 1
    [opened] = (json.loads(r["body"]) for r in _rows(store))
    assert (opened["id"], opened["change"], opened["joined"], opened["ip_count"]) == ("B", "opened", [], 2)
    assert set(nstore.load_notices(store.con)) == {"B"}
