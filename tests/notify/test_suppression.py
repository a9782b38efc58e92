"""Routing, realert suppression, severity-rise updates, digests under a 1,000-IP scan, silences and quiet hours.
No network: the outbox rows are the result."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

from fraudwatch.config.alerts import AlertsConfig, ChannelConfig, QuietHours, RouteConfig
from fraudwatch.notify import store as nstore
from fraudwatch.notify.notifier import Notifier
from fraudwatch.store.db import Store

from .conftest import Clock, make_alert

TAGS = {"scanner-user-agent": ("scanner",), "high-risk-spend-account": ("toll-fraud", "irsf"),
        "register-flood-ip": ("flood", "register")}
NOW = dt.datetime(2026, 11, 20, 3, 0, tzinfo=dt.UTC)
SCAN = "scanner-user-agent"


def _cfg(**kw: Any) -> AlertsConfig:
    channels = (ChannelConfig("hook", "json://127.0.0.1:9/a"), ChannelConfig("mail", "json://127.0.0.1:9/b"),
                ChannelConfig("chat", "json://127.0.0.1:9/c"))
    routes = (RouteConfig(("mail",), severity=("critical",), name="critical"),
              RouteConfig(("chat",), tags=("scanner", "flood"), digest=300.0, name="scans"),
              RouteConfig(("hook",), rules=("high-risk-*",), name="toll"))
    opts: dict[str, Any] = {"channels": channels, "routes": routes, "realert": 1800.0}
    opts.update(kw)
    return AlertsConfig(**opts)


def _rows(store: Store, since_id: int = 0) -> list[dict[str, Any]]:
    cur = store.con.execute("SELECT id, channel, kind, rule, severity, keys, title, body FROM notify_outbox "
                            "WHERE id > ? ORDER BY id", [since_id])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _scan(n: int, first_id: int = 1, **kw: Any) -> list[Any]:
    return [make_alert(first_id + i, key=f"203.0.{i // 256}.{i % 256}", count=5 + i % 97, **kw) for i in range(n)]


def test_1000_ip_scan_is_one_digest_and_repeats_are_suppressed(store: Store) -> None:
    clock = Clock(NOW)
    notifier = Notifier(store.con, _cfg(), clock=clock, tags=TAGS)
    t0 = time.perf_counter()
    assert notifier.on_alerts(_scan(1000), {}) == 0  # all into the scans digest, nothing to send yet
    assert time.perf_counter() - t0 < 2.0
    assert notifier.stats["digested"] == 1000
    clock.advance(299)
    assert notifier.tick(clock()) == 0
    clock.advance(1)
    assert notifier.tick(clock()) == 1
    [digest] = _rows(store)
    assert digest["channel"] == "chat" and digest["kind"] == "digest" and digest["keys"] == 1000
    assert digest["title"] == f"[WARNING] {SCAN}: 1,000 alert(s)"
    doc = json.loads(digest["body"])
    assert doc["keys"] == 1000 and doc["severities"] == {"warning": 1000}
    assert len(doc["rows"]) == 10 and [r["count"] for r in doc["rows"]] == [101] * 10  # top 10 by events
    assert "… and 990 more: fraudwatch alerts list --since 2026-11-20T03:00:00Z --rule scanner-user-agent" \
        in doc["text"]
    assert nstore.open_digests(store.con) == {}

    # the scan goes on: every alert updates within the realert interval -> nothing
    clock.advance(60)
    again = _scan(1000)  # the same alerts (ids and keys), updated
    for a in again:
        a.count += 10
    assert notifier.on_alerts(again, {}) == 0
    assert notifier.stats["suppressed"] == 1000
    clock.advance(600)
    assert notifier.tick(clock()) == 0
    assert len(_rows(store)) == 1

    # one key turns critical: an update right away (critical route), not held for the realert interval
    rise = make_alert(1, key="203.0.0.0", severity="critical", count=500)
    assert notifier.on_alerts([rise], {1: "banned 203.0.0.0 until 2026-11-21 03:00 UTC"}) == 1
    [update] = _rows(store, digest["id"])
    assert update["channel"] == "mail" and update["kind"] == "update" and update["severity"] == "critical"
    body = json.loads(update["body"])
    assert body["previous_severity"] == "warning" and body["held_back"] == 1
    assert "severity rose from warning to critical" in body["text"]
    # ... and the chat digest route gets it in its next digest (a route's digest is per route)
    clock.advance(300)
    assert notifier.tick(clock()) == 1
    assert _rows(store)[-1]["keys"] == 1

    # after the realert interval the ongoing scan is notified again, as one digest
    clock.advance(1800)
    assert notifier.on_alerts(again, {}) == 0
    clock.advance(300)
    assert notifier.tick(clock()) == 1
    last = _rows(store)[-1]
    assert last["keys"] == 1000
    assert json.loads(last["body"])["rows"][0]["count"] > 10


def test_state_and_open_digests_survive_a_restart(tmp_path: Any) -> None:
    path = tmp_path / "s.duckdb"
    clock = Clock(NOW)
    with Store(path) as st:
        n = Notifier(st.con, _cfg(), clock=clock, tags=TAGS)
        n.on_alerts(_scan(50), {})
        n.on_alerts([make_alert(900, rule="high-risk-spend-account", key_type="account", key="1001")], {})
        n.close()
    with Store(path) as st:
        n = Notifier(st.con, _cfg(), clock=clock, tags=TAGS)
        clock.advance(60)
        assert n.on_alerts(_scan(50), {}) == 0 and n.stats["suppressed"] == 50  # realert remembered
        assert n.on_alerts([make_alert(900, rule="high-risk-spend-account", key_type="account", key="1001")],
                           {}) == 0
        clock.advance(240)
        assert n.tick(clock()) == 1  # the digest opened before the restart
        assert [r["keys"] for r in _rows(st) if r["kind"] == "digest"] == [50]


def test_routes_severity_tags_rules_and_no_routes(store: Store) -> None:
    clock = Clock(NOW)
    n = Notifier(store.con, _cfg(), clock=clock, tags=TAGS)
    toll = make_alert(1, rule="high-risk-spend-account", key_type="account", key="1001", severity="critical")
    other = make_alert(2, rule="account-new-address", key_type="account", key="1002")  # no route matches
    assert n.on_alerts([toll, other], {}) == 2
    assert sorted(r["channel"] for r in _rows(store)) == ["hook", "mail"]
    assert n.stats["unrouted"] == 1

    everyone = Notifier(store.con, _cfg(routes=()), clock=clock, tags=TAGS)
    assert everyone.on_alerts([make_alert(3, rule="account-new-address", key_type="account", key="9")], {}) == 3


def test_realert_override_per_rule(store: Store) -> None:
    clock = Clock(NOW)
    cfg = _cfg(routes=(), channels=(ChannelConfig("hook", "json://127.0.0.1:9/a"),),
               realert=600.0, realert_rules=(("scanner-*", 7200.0),))
    n = Notifier(store.con, cfg, clock=clock, tags=TAGS)
    scan, flood = make_alert(1), make_alert(2, rule="register-flood-ip")
    assert n.on_alerts([scan, flood], {}) == 2
    clock.advance(601)
    assert n.on_alerts([scan, flood], {}) == 1  # the flood again (600 s), the scanner not (2 h)
    assert _rows(store)[-1]["kind"] == "update"
    clock.advance(7200)
    assert n.on_alerts([scan], {}) == 1


def test_silences(store: Store) -> None:
    clock = Clock(NOW)
    cfg = _cfg(routes=(), channels=(ChannelConfig("hook", "json://127.0.0.1:9/a"),))
    nstore.add_silence(store.con, "198.51.100.0/24", None, NOW + dt.timedelta(hours=2), "carrier", "noc", NOW)
    nstore.add_silence(store.con, "1001", "high-risk-spend-account", NOW + dt.timedelta(hours=2), None, None, NOW)
    n = Notifier(store.con, cfg, clock=clock, tags=TAGS)
    alerts = [make_alert(1, key="198.51.100.9|user"), make_alert(2, key="198.51.101.9"),
              make_alert(3, rule="high-risk-spend-account", key_type="account", key="1001"),
              make_alert(4, rule="auth-failures-account", key_type="account", key="1001")]
    assert n.on_alerts(alerts, {}) == 2
    assert n.stats["silenced"] == 2
    assert sorted(json.loads(r["body"])["id"] for r in _rows(store)) == [2, 4]
    assert nstore.end_silences(store.con, "1001", NOW) == [2]
    clock.advance(1)  # silences are re-read at most once a second
    assert n.on_alerts([alerts[2]], {}) == 1
    clock.advance(2 * 3600)  # the CIDR silence has run out
    assert n.on_alerts([make_alert(5, key="198.51.100.10")], {}) == 1


def test_quiet_hours_hold_warnings_until_morning_local_time(store: Store) -> None:
    # 23:30 in Shanghai is 15:30 UTC
    clock = Clock(dt.datetime(2026, 11, 20, 15, 30, tzinfo=dt.UTC))
    cfg = _cfg(routes=(), channels=(ChannelConfig("hook", "json://127.0.0.1:9/a"),), timezone="Asia/Shanghai",
               quiet_hours=QuietHours(dt.time(22, 0), dt.time(7, 0)))
    n = Notifier(store.con, cfg, clock=clock, tags=TAGS)
    assert n.on_alerts([make_alert(1), make_alert(2, rule="register-flood-ip")], {}) == 0
    assert n.on_alerts([make_alert(3, severity="critical")], {}) == 1  # criticals go out at night
    clock.now = dt.datetime(2026, 11, 20, 22, 59, tzinfo=dt.UTC)  # 06:59 local
    assert n.tick(clock()) == 0
    clock.now = dt.datetime(2026, 11, 20, 23, 0, tzinfo=dt.UTC)  # 07:00 local
    assert n.tick(clock()) == 1
    quiet = _rows(store)[-1]
    assert quiet["kind"] == "quiet" and quiet["keys"] == 2 and quiet["rule"] == "*"
    assert "warnings held back during quiet hours" in json.loads(quiet["body"])["text"]


def test_no_channels_means_nothing_queued(store: Store) -> None:
    n = Notifier(store.con, AlertsConfig(), tags=TAGS)
    assert n.on_alerts([make_alert(1)], {}) == 0
    assert _rows(store) == []


def test_severity_rise_inside_an_open_digest_replaces_the_row(store: Store) -> None:
    clock = Clock(NOW)
    cfg = _cfg(routes=(RouteConfig(("chat",), digest=300.0),))
    n = Notifier(store.con, cfg, clock=clock, tags=TAGS)
    n.on_alerts(_scan(3), {})
    clock.advance(60)
    assert n.on_alerts([make_alert(1, key="203.0.0.0", severity="critical", count=99)], {}) == 0
    clock.advance(240)
    assert n.tick(clock()) == 1
    [digest] = _rows(store)
    doc = json.loads(digest["body"])
    assert digest["keys"] == 3 and digest["severity"] == "critical"
    assert doc["severities"] == {"critical": 1, "warning": 2}
    assert doc["rows"][0]["id"] == 1 and doc["rows"][0]["severity"] == "critical"
