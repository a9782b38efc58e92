"""Delivery over real loopback servers: SMTP (aiosmtpd) and a json:// webhook; a channel that is down gets its
message when it comes back, exactly once, also across a restart; a hanging channel never delays the caller."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from fraudwatch.config.alerts import AlertsConfig, ChannelConfig
from fraudwatch.notify.channels import Channel
from fraudwatch.notify.dispatch import Dispatcher
from fraudwatch.notify.notifier import Notifier
from fraudwatch.store.db import Store

from .conftest import HOSTILE, Mailbox, Receiver, make_alert

TAGS = {"scanner-user-agent": ("scanner",), "high-risk-spend-account": ("toll-fraud", "irsf")}


def _cfg(*channels: tuple[str, str], **kw: Any) -> AlertsConfig:
    opts: dict[str, Any] = {"send_timeout": 3.0, "retry_min": 0.05, "retry_max": 0.2, "timezone": "Asia/Shanghai"}
    opts.update(kw)
    return AlertsConfig(channels=tuple(ChannelConfig(n, u) for n, u in channels), **opts)


def _wait(pred: Any, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return bool(pred())


def _outbox(store: Store) -> list[tuple[Any, ...]]:
    return store.con.execute("SELECT id, channel, status, attempts, last_error FROM notify_outbox ORDER BY id") \
        .fetchall()


def test_alert_arrives_by_mail_and_webhook_with_its_facts_escaped(store: Store, smtp: Mailbox,
                                                                    http: Receiver) -> None:
    http.start()
    cfg = _cfg(("noc-mail", smtp.url()), ("noc-hook", http.url()))
    store.con.execute("INSERT INTO customers (account, name) VALUES ('10023', 'ACME <Ltd> & Co')")
    dispatcher = Dispatcher(store.con, cfg, poll=0.05)
    notifier = Notifier(store.con, cfg, tags=TAGS, wake=dispatcher.wake)
    dispatcher.start()
    try:
        ip_alert = make_alert(7, key="198.51.100.7|" + HOSTILE, severity="critical", count=4321)
        acct = make_alert(8, rule="high-risk-spend-account", key_type="account", key="10023", severity="critical",
                          action="lock_account", description="spend to high-risk destinations",
                          evidence={"ids": [1], "callee_prefix": ["252", "882"], "spend": 1234.5})
        queued = notifier.on_alerts([ip_alert, acct], {7: "banned 198.51.100.7 until 2026-11-20 15:00 UTC",
                                                        8: "locked account 10023"})
        assert queued == 4
        assert _wait(lambda: len(smtp.messages) == 2 and len(http.posts) == 2), (smtp.messages, http.posts)
    finally:
        assert dispatcher.stop(5.0)
    assert [r[2] for r in _outbox(store)] == ["sent"] * 4

    mails = {m["Subject"]: m for m in smtp.messages}
    subject = next(s for s in mails if "scanner-user-agent" in s)
    assert subject.startswith("[CRITICAL] scanner-user-agent: IP 198.51.100.7")
    body = Mailbox.html(mails[subject])
    assert "<script>" not in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    for text in ("scanner-user-agent", "CRITICAL", "4,321 events", "banned 198.51.100.7 until 2026-11-20 15:00 UTC",
                 "fraudwatch alerts show 7", "2026-11-20 03:00:00 UTC (11:00:00 Asia/Shanghai)"):
        assert text in body, text
    acct_mail = Mailbox.html(next(m for s, m in mails.items() if "high-risk" in s))
    assert "account 10023 — ACME &lt;Ltd&gt; &amp; Co" in acct_mail
    assert "proposed: lock account 10023 — not carried out" in acct_mail and "locked" not in acct_mail
    assert "callee_prefix: 252, 882" in acct_mail
    assert "spend: 1,234.50" in acct_mail

    hooks = {m["id"]: m for m in http.messages()}
    assert hooks[7]["rule"] == "scanner-user-agent" and hooks[7]["severity"] == "critical"
    assert hooks[7]["key"] == ("198.51.100.7|" + HOSTILE).replace("\n", "\ufffd")
    assert hooks[7]["count"] == 4321 and hooks[7]["done"].startswith("banned 198.51.100.7")
    assert hooks[7]["show"] == "fraudwatch alerts show 7"
    assert hooks[8]["who"] == "account 10023 — ACME <Ltd> & Co"  # JSON escapes it; the text is intact
    assert set(http.posts[0]) >= {"version", "title", "message", "type"}
    assert http.posts[0]["title"].startswith("[CRITICAL]")


def test_down_channel_gets_the_message_once_after_it_comes_back_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "store.duckdb"
    receiver = Receiver()  # not started: the channel is down when the alert fires
    cfg = _cfg(("noc-hook", receiver.url()))
    try:
        with Store(path) as st:
            notifier = Notifier(st.con, cfg, tags=TAGS)
            assert notifier.on_alerts([make_alert(1, severity="critical")], {1: "banned"}) == 1
            dispatcher = Dispatcher(st.con, cfg)
            assert dispatcher.run_once()["failed"] == 1
            time.sleep(0.1)  # past the first backoff (retry_min)
            again = dispatcher.run_once()
            assert again["failed"] == 1, again  # retried after the backoff, still down
            dispatcher.close()
            notifier.close()
            [(_, _, status, attempts, error)] = _outbox(st)
            assert status == "pending" and attempts == 2 and "127.0.0.1" in error
        # the process restarts; the channel is back
        receiver.start()
        time.sleep(0.25)  # past the row's next attempt time (retry_max)
        with Store(path) as st:
            dispatcher = Dispatcher(st.con, cfg)
            assert dispatcher.run_once()["sent"] == 1
            assert dispatcher.run_once()["sent"] == 0
            dispatcher.close()
            assert [r[2:4] for r in _outbox(st)] == [("sent", 3)]
        with Store(path) as st:  # and once more: nothing is sent twice
            dispatcher = Dispatcher(st.con, cfg, poll=0.05)
            dispatcher.start()
            time.sleep(0.3)
            assert dispatcher.stop(2.0)
        assert len(receiver.posts) == 1
        assert receiver.messages()[0]["id"] == 1
    finally:
        receiver.stop()


def test_channel_that_comes_back_while_running_is_retried_with_backoff(store: Store, http: Receiver) -> None:
    cfg = _cfg(("noc-hook", http.url()), ("noc-hook2", http.url()))
    dispatcher = Dispatcher(store.con, cfg, poll=0.05)
    notifier = Notifier(store.con, cfg, tags=TAGS, wake=dispatcher.wake)
    dispatcher.start()
    try:
        notifier.on_alerts([make_alert(1)], {})
        assert _wait(lambda: dispatcher.stats["failed"] >= 4)  # both channels failing, retried
        http.start()
        assert _wait(lambda: len(http.posts) == 2)
        time.sleep(0.3)
    finally:
        assert dispatcher.stop(2.0)
    assert len(http.posts) == 2
    assert sorted(r[1] for r in _outbox(store)) == ["noc-hook", "noc-hook2"]
    assert {r[2] for r in _outbox(store)} == {"sent"}


def test_failing_channel_does_not_hold_up_another(store: Store, smtp: Mailbox, http: Receiver) -> None:
    http.mode = "fail"
    http.start()
    cfg = _cfg(("noc-hook", http.url()), ("noc-mail", smtp.url()))
    notifier = Notifier(store.con, cfg, tags=TAGS)
    notifier.on_alerts([make_alert(i) for i in range(1, 4)], {})
    dispatcher = Dispatcher(store.con, cfg)
    result = dispatcher.run_once()
    dispatcher.close()
    assert result["sent"] == 3 and result["failed"] == 1 and result["deferred"] == 2  # the hook's queue waits
    assert len(smtp.messages) == 3


def test_hanging_webhook_never_delays_the_caller(store: Store, http: Receiver) -> None:
    """The watcher bans, then calls on_alerts in its main thread, while a send hangs for 30 s."""
    http.mode = "hang"
    http.start()
    cfg = _cfg(("noc-hook", http.url()), send_timeout=1.0)
    dispatcher = Dispatcher(store.con, cfg, poll=0.05)
    notifier = Notifier(store.con, cfg, tags=TAGS, wake=dispatcher.wake)
    dispatcher.start()
    banned: list[int] = []
    try:
        notifier.on_alerts([make_alert(1, severity="critical")], {1: "banned"})
        assert http.started.wait(5.0)  # the first send is now hanging
        for i in range(2, 5):  # the next incidents: ban, then notify, in the caller's thread
            t0 = time.perf_counter()
            banned.append(i)
            assert notifier.on_alerts([make_alert(i, severity="critical")], {i: "banned"}) == 1
            assert time.perf_counter() - t0 < 0.25
        t0 = time.perf_counter()
    finally:
        dispatcher.stop(timeout=2.0)
    assert time.perf_counter() - t0 < 2.5
    assert banned == [2, 3, 4]
    rows = _outbox(store)
    assert len(rows) == 4 and rows[0][2] == "pending"
    assert rows[0][4] is not None  # the hang is recorded as a failed attempt (apprise's read timeout or ours)


class _StuckPlugin:
    """A notifier that ignores every timeout: it returns after 30 s (or when released)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0

    def notify(self, **kw: Any) -> bool:
        self.calls += 1
        self.release.wait(30.0)
        return True


def test_send_stuck_for_30s_is_abandoned_and_stop_returns_within_its_timeout(store: Store) -> None:
    plugin = _StuckPlugin()
    cfg = _cfg(("stuck", "json://127.0.0.1:9/x"), send_timeout=30.0)
    channel = Channel("stuck", plugin, "text", True, 4000)
    dispatcher = Dispatcher(store.con, cfg, poll=0.05, channels={"stuck": channel})
    notifier = Notifier(store.con, cfg, tags=TAGS, wake=dispatcher.wake)
    dispatcher.start()
    try:
        t0 = time.perf_counter()
        assert notifier.on_alerts([make_alert(1, severity="critical")], {1: "banned"}) == 1
        assert time.perf_counter() - t0 < 0.25
        assert _wait(lambda: plugin.calls == 1, 5.0)
        t0 = time.perf_counter()
        assert notifier.on_alerts([make_alert(2, severity="critical")], {2: "banned"}) == 1
        assert time.perf_counter() - t0 < 0.25
        t0 = time.perf_counter()
        dispatcher.stop(timeout=0.5)
        assert time.perf_counter() - t0 < 1.0
    finally:
        plugin.release.set()
    assert [r[2] for r in _outbox(store)] == ["pending", "pending"]  # resent after a restart


def test_sent_rows_are_pruned_after_keep_sent(store: Store, http: Receiver) -> None:
    import datetime as dt

    from .conftest import Clock

    http.start()
    clock = Clock(dt.datetime.now(dt.UTC))
    cfg = _cfg(("noc-hook", http.url()), keep_sent=86400.0)
    notifier = Notifier(store.con, cfg, clock=clock, tags=TAGS)
    notifier.on_alerts([make_alert(1), make_alert(2)], {})
    dispatcher = Dispatcher(store.con, cfg, clock=clock)
    assert dispatcher.run_once()["sent"] == 2
    clock.advance(86400 + 3600)
    notifier.on_alerts([make_alert(3)], {})
    result = dispatcher.run_once()
    dispatcher.close()
    assert result["pruned"] == 2 and result["sent"] == 1
    assert [r[0] for r in _outbox(store)] == [3]


def test_start_notifier_is_one_actor_for_the_watcher(store: Store, http: Receiver) -> None:
    import datetime as dt

    from fraudwatch.notify import start_notifier

    http.start()
    notifier = start_notifier(store.con, _cfg(("noc-hook", http.url())), tags=TAGS)
    assert notifier.on_alerts([make_alert(1, severity="critical")], {1: "banned"}) == 1
    assert _wait(lambda: len(http.posts) == 1)
    notifier.tick(dt.datetime.now(dt.UTC))
    t0 = time.perf_counter()
    notifier.stop(dt.datetime.now(dt.UTC))
    assert time.perf_counter() - t0 < 2.0
    assert [r[2] for r in _outbox(store)] == ["sent"]
