"""Dry-run and proposals said plainly: with the dry-run firewall backend a message never says "banned" (it says what
would have been banned), a report-only rule says it would, and `lock_account` — never carried out — is said as
proposed and not carried out, never "locked". The `done` words come from a real Enforcer on the dry-run backend."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from fraudwatch.config.alerts import AlertsConfig, ChannelConfig
from fraudwatch.config.firewall import FirewallConfig
from fraudwatch.detect.decide import Alert
from fraudwatch.detect.incident import Incident, IncidentChange
from fraudwatch.enforce.enforcer import Enforcer
from fraudwatch.notify.notifier import Notifier
from fraudwatch.store.db import Store

from .conftest import T0, make_alert

TAGS: dict[str, tuple[str, ...]] = {}
NOW = dt.datetime(2026, 11, 20, 3, 10, tzinfo=dt.UTC)
# "banned" as a claim: not "would have banned", not "not banned"
CLAIM = re.compile(r"(?<!would have )(?<!not )\bbanned\b|\blocked\b", re.IGNORECASE)


def _cfg() -> AlertsConfig:
    return AlertsConfig(channels=(ChannelConfig("hook", "json://127.0.0.1:9/a"),
                                  ChannelConfig("mail", "mailto://127.0.0.1:9?to=noc@example.com"),
                                  ChannelConfig("chat", "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#noc")))


def _messages(store: Store) -> list[str]:
    return [f"{t}\n{b}" for t, b in store.con.execute("SELECT title, body FROM notify_outbox ORDER BY id").fetchall()]


def _dry_run_done(store: Store, alerts: list[Alert]) -> dict[int, str]:
    """What the real enforcer says about the alerts on the dry-run backend (the default)."""
    enforcer = Enforcer(store.con.cursor(), FirewallConfig(), [], host_addresses=[])
    assert enforcer.backend.name == "dry-run"
    enforcer.start(NOW)
    return enforcer.on_alerts(alerts, NOW)


def _alerts() -> list[Alert]:
    return [make_alert(1, key="203.0.113.7", severity="critical"),
            make_alert(2, rule="high-risk-spend-account", key_type="account", key="10023", severity="critical",
                       action="lock_account", description="spend to high-risk destinations"),
            make_alert(3, key="203.0.113.8", report_only=True)]


def test_a_dry_run_alert_message_never_says_banned(store: Store) -> None:
    """On main the notifier passed the enforcer's words on: "Done: banned 203.0.113.7 until ..." under dry run; the
    message now says a dry run from the backend's name, not from the enforcer's English."""
    alerts = _alerts()
    done = _dry_run_done(store, alerts)
    assert "203.0.113.7" in done[1]  # whatever the enforcer's words, the message decides by the backend
    n = Notifier(store.con, _cfg(), tags=TAGS, firewall="dry-run")
    assert n.on_alerts(alerts, done) == 9
    for message in _messages(store):
        assert not CLAIM.search(message), message
    hooks = {json.loads(b)["id"]: json.loads(b) for (b,) in
             store.con.execute("SELECT body FROM notify_outbox WHERE channel = 'hook'").fetchall()}
    assert hooks[1]["done"] == "dry run: would have banned 203.0.113.7 (the firewall was not changed)"
    assert hooks[2]["done"] == "proposed: lock account 10023 — not carried out: fraudwatch does not lock accounts yet"
    assert hooks[3]["done"] == "nothing: the rule is report-only (would ban the IP)"


def test_a_real_backend_keeps_the_enforcers_words_but_a_lock_is_still_only_proposed(store: Store) -> None:
    alerts = _alerts()[:2]
    n = Notifier(store.con, _cfg(), tags=TAGS, firewall="nftables")
    n.on_alerts(alerts, {1: "banned 203.0.113.7 until 2026-11-21 03:10 UTC (level 1)", 2: "locked account 10023"})
    hooks = {json.loads(b)["id"]: json.loads(b) for (b,) in
             store.con.execute("SELECT body FROM notify_outbox WHERE channel = 'hook'").fetchall()}
    assert hooks[1]["done"] == "banned 203.0.113.7 until 2026-11-21 03:10 UTC (level 1)"
    assert hooks[2]["done"].startswith("proposed: lock account 10023 — not carried out")


def _incident(alerts: list[Alert], **kw: Any) -> Incident:
    fields: dict[str, Any] = {
        "id": "inc-dry", "kind": "attack", "title": "brute force and spend on account 10023", "severity": "critical",
        "action": "ban_ip", "state": "open", "first_seen": T0, "last_seen": T0 + dt.timedelta(minutes=5),
        "opened_at": T0, "alert_ids": [a.id for a in alerts], "rules": sorted({a.rule for a in alerts}),
        "ips": [a.key for a in alerts if a.key_type == "ip"],
        "accounts": [a.key for a in alerts if a.key_type == "account"],
        "keys": [f"{a.key_type}:{a.key}" for a in alerts], "members": len(alerts), "count": 30}
    fields.update(kw)
    return Incident(**fields)


def test_incident_messages_say_what_a_dry_run_would_have_done(store: Store) -> None:
    alerts = _alerts()
    done = _dry_run_done(store, alerts)
    n = Notifier(store.con, _cfg(), tags=TAGS, firewall="dry-run")
    inc = _incident(alerts)
    assert n.on_incidents([IncidentChange(inc, "opened", alerts=tuple(alerts))], done) == 3
    ended = _incident(alerts, state="ended", ended_at=T0 + dt.timedelta(minutes=40))
    assert n.on_incidents([IncidentChange(ended, "ended")], {}) == 3
    messages = _messages(store)
    assert len(messages) == 6
    for message in messages:
        assert not CLAIM.search(message), message
    hook = [json.loads(b) for (b,) in store.con.execute("SELECT body FROM notify_outbox WHERE channel = 'hook' "
                                                         "ORDER BY id").fetchall()]
    for doc in hook:
        assert doc["done"] == [
            "dry run: would have banned 1 IP: 203.0.113.7 (the firewall was not changed)",
            "proposed: lock account 10023 — not carried out: fraudwatch does not lock accounts yet"]


def test_report_only_and_trusted_incidents_say_nothing_was_done(store: Store) -> None:
    n = Notifier(store.con, _cfg(), tags=TAGS, firewall="nftables")
    trial = [make_alert(1, key="203.0.113.7", report_only=True)]
    trusted = [make_alert(2, key="192.0.2.10", trusted=True, action="alert")]
    n.on_incidents([IncidentChange(_incident(trial, id="t1", report_only=True), "opened", alerts=tuple(trial)),
                    IncidentChange(_incident(trusted, id="t2", trusted=True, action="alert"), "opened",
                                   alerts=tuple(trusted))], {1: "report-only: would ban 203.0.113.7 for 1h (level 1)"})
    hook = {d["id"]: d for d in (json.loads(b) for (b,) in
                                 store.con.execute("SELECT body FROM notify_outbox WHERE channel = 'hook'").fetchall())}
    assert hook["t1"]["done"] == ["nothing: its rules are report-only (would ban the IP)"]
    assert hook["t2"]["done"] == ["nothing: trusted network or account (alert only)"]
