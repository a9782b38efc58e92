"""The CLI: alerts silence|unsilence|silences|outbox, notify test against loopback servers, config errors."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fraudwatch.config.alerts import AlertsConfig, ChannelConfig
from fraudwatch.notify.dispatch import Dispatcher
from fraudwatch.notify.notifier import Notifier
from fraudwatch.store.db import Store

from .conftest import Mailbox, Receiver, make_alert

Cli = Callable[..., Any]


def _config(tmp_path: Path, *channels: tuple[str, str], extra: str = "") -> Path:
    text = f'[store]\npath = "{tmp_path / "store.duckdb"}"\n\n[alerts]\nsend_timeout = "3s"\n{extra}\n'
    for name, url in channels:
        text += f'\n[[alerts.channels]]\nname = "{name}"\nurl = "{url}"\n'
    path = tmp_path / "fraudwatch.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_silence_silences_unsilence(cli: Cli, db: Path) -> None:
    Store(db).close()
    r = cli("alerts", "silence", "198.51.100.7", "--for", "2h", "--reason", "carrier maintenance", "--db", db)
    assert r.code == 0, r.err
    assert r.out.startswith("silence 1: 198.51.100.7 (every rule) until ")
    r = cli("alerts", "silence", "10.0.0.0/8", "--rule", "scanner-user-agent", "--for", "30m", "--db", db)
    assert r.code == 0 and "silence 2: 10.0.0.0/8 (rule scanner-user-agent)" in r.out
    r = cli("alerts", "silences", "--json", "--db", db)
    rows = json.loads(r.out)
    assert [(s["id"], s["key"], s["rule"], s["reason"]) for s in rows] == [
        (1, "198.51.100.7", None, "carrier maintenance"), (2, "10.0.0.0/8", "scanner-user-agent", None)]
    r = cli("alerts", "silences", "--db", db)
    assert "198.51.100.7" in r.out and "carrier maintenance" in r.out
    assert cli("alerts", "unsilence", "198.51.100.7", "--db", db).out.strip() == "ended silence 1"
    assert cli("alerts", "unsilence", "2", "--db", db).out.strip() == "ended silence 2"
    assert cli("alerts", "silences", "--db", db).out.strip() == "no silences in effect"
    assert len(json.loads(cli("alerts", "silences", "--all", "--json", "--db", db).out)) == 2
    r = cli("alerts", "unsilence", "198.51.100.7", "--db", db)
    assert r.code == 2 and "no active silence with id or key '198.51.100.7'" in r.err
    r = cli("alerts", "silence", "1.2.3.4", "--for", "soon", "--db", db)
    assert r.code == 2 and "--for: 'soon' is not a duration" in r.err
    r = cli("alerts", "silence", "2001:DB8::0001", "--for", "1h", "--db", db)
    assert r.out.startswith("silence 3: 2001:db8::1 (every rule)")
    r = cli("alerts", "silence", "1.2.3.4/99", "--for", "1h", "--db", db)
    assert r.code == 2 and "not a CIDR network" in r.err


def test_outbox_shows_pending_and_failed_and_retry(cli: Cli, db: Path) -> None:
    cfg = AlertsConfig(channels=(ChannelConfig("down", "json://127.0.0.1:9/x"),), send_timeout=2.0,
                       give_up_after=0.001)
    with Store(db) as st:
        Notifier(st.con, cfg, tags={}).on_alerts([make_alert(1), make_alert(2, severity="critical")], {})
    r = cli("alerts", "outbox", "--json", "--db", db)
    rows = json.loads(r.out)
    assert [(x["id"], x["status"], x["attempts"], x["alert_ids"]) for x in rows] == [
        (2, "pending", 0, [2]), (1, "pending", 0, [1])]
    with Store(db) as st:
        d = Dispatcher(st.con, cfg)
        assert d.run_once()["gave_up"] == 1  # give_up_after is tiny: the first failure is final
        d.close()
    r = cli("alerts", "outbox", "--db", db)
    assert r.code == 0 and "failed" in r.out and "down" in r.out and "pending" in r.out
    r = cli("alerts", "outbox", "--retry", "--db", db)
    assert r.out.startswith("1 failed notification(s) back to pending")
    assert {x["status"] for x in json.loads(cli("alerts", "outbox", "--json", "--db", db).out)} == {"pending"}
    assert cli("alerts", "outbox", "--all", "--json", "--db", db).code == 0


def test_empty_outbox(cli: Cli, db: Path) -> None:
    Store(db).close()
    assert cli("alerts", "outbox", "--db", db).out.strip() == "outbox empty: nothing pending or failed"


def test_notify_test_against_loopback_servers(cli: Cli, tmp_path: Path, smtp: Mailbox, http: Receiver) -> None:
    http.start()
    down = Receiver()  # never started
    cfg = _config(tmp_path, ("noc-mail", smtp.url()), ("noc-hook", http.url()), ("noc-down", down.url()))
    r = cli("notify", "test", "--config", cfg, "--channel", "noc-mail", "--channel", "noc-hook")
    assert r.code == 0, r.err
    assert r.out.splitlines() == ["noc-mail: sent", "noc-hook: sent"]
    assert smtp.messages[0]["Subject"] == "fraudwatch test message to noc-mail"
    assert "channel <b>noc-mail</b> reaches you" in Mailbox.html(smtp.messages[0])
    assert http.messages()[0]["kind"] == "test"
    r = cli("notify", "test", "--config", cfg, "--json")
    assert r.code == 1
    results = {x["channel"]: x for x in json.loads(r.out)}
    assert results["noc-mail"]["ok"] and results["noc-hook"]["ok"] and not results["noc-down"]["ok"]
    r = cli("notify", "test", "--config", cfg, "--channel", "noc-down")
    assert r.code == 1 and r.out.startswith("noc-down: FAILED: ")
    r = cli("notify", "test", "--config", cfg, "--channel", "nope")
    assert r.code == 2 and "unknown channel 'nope'" in r.err


def test_notify_test_with_unset_url_env_and_without_channels(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "fw.toml"
    path.write_text('[alerts]\n\n[[alerts.channels]]\nname = "wa"\nurl_env = "FW_TEST_UNSET_URL_X"\n')
    r = cli("notify", "test", "--config", path)
    assert r.code == 1 and "wa: FAILED: " in r.out and "FW_TEST_UNSET_URL_X is not set" in r.out
    path.write_text('[alerts]\ntimezone = "UTC"\n')
    r = cli("notify", "test", "--config", path)
    assert r.code == 2 and r.err.strip() == f"fraudwatch: {path}:1: no alert channels are configured " \
                                            "([[alerts.channels]])"


def test_bad_config_is_reported_with_file_and_line(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "fw.toml"
    path.write_text('[alerts]\n\n[[alerts.channels]]\nname = "mail"\nurl = "mailto://"\n')
    r = cli("notify", "test", "--config", path)
    assert r.code == 2
    assert r.err.strip() == (f"fraudwatch: {path}:5: channel 'mail': not a URL apprise can send to "
                             "(see https://appriseit.com/services/ for the URL of each service)")
    path.write_text('[alerts]\nquiet_hours = "nights"\n')
    r = cli("alerts", "outbox", "--config", path)
    assert r.code == 2 and f"{path}:2: 'quiet_hours' must be a table" in r.err


def test_detect_notify_sends_through_the_channels(cli: Cli, tmp_path: Path, http: Receiver) -> None:
    http.start()
    cfg = _config(tmp_path, ("noc-hook", http.url()))
    Store(tmp_path / "store.duckdb").close()
    r = cli("detect", "--notify", "--config", cfg)
    assert r.code == 0, r.err
    assert "--notify: 0 notification(s) queued, 0 sent" in r.err
    r = cli("detect", "--notify", "--dry-run", "--config", cfg)
    assert "--dry-run: nothing was saved, so nothing was sent" in r.err


def test_notify_alerts_behind_detect_notify(tmp_path: Path, http: Receiver) -> None:
    from fraudwatch.config import load_config
    from fraudwatch.notify.oneshot import notify_alerts

    http.start()
    cfg = load_config(_config(tmp_path, ("noc-hook", http.url()), ("noc-down", Receiver().url()),
                              extra='[[alerts.routes]]\nchannels = ["noc-hook", "noc-down"]\ndigest = "5m"\n'))
    alerts = [make_alert(i) for i in range(1, 21)]
    line = notify_alerts(cfg, alerts, {a.id: "none (replay)" for a in alerts})
    assert line == "2 notification(s) queued, 1 sent, 1 still pending (see `fraudwatch alerts outbox`)"
    [digest] = http.messages()
    assert digest["kind"] == "digest" and digest["keys"] == 20 and digest["rows"][0]["done"] == "none (replay)"
    again = notify_alerts(cfg, alerts, {})
    assert again.startswith("0 notification(s) queued, 0 sent, 20 alert(s) held back (realert or silence)")


def test_silence_while_the_watcher_holds_the_store_goes_through_its_socket(cli: Cli) -> None:
    import shutil
    import tempfile
    import types

    from fraudwatch.notify import store as nstore
    from fraudwatch.notify.ops import NAMES as OPS
    from fraudwatch.watch.control import ControlServer
    from fraudwatch.watch.ops import run_op

    short = Path(tempfile.mkdtemp(prefix="fw", dir="/tmp"))  # a Unix socket path must stay short
    db = short / "s.duckdb"
    held = Store(db)  # "the watcher": holds the store and answers on <store>.sock

    class FakeWatcher:
        cfg = types.SimpleNamespace(store_path=db)
        store = held

        def submit(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
            return run_op(self, name, args)  # type: ignore[arg-type]

    server = ControlServer(FakeWatcher())  # type: ignore[arg-type]
    server.start()
    try:
        assert len(OPS) == 3
        r = cli("alerts", "silence", "198.51.100.7", "--for", "1h", "--reason", "test", "--db", db)
        assert r.code == 0 and r.out.startswith("silence 1: 198.51.100.7 (every rule) until"), r.err
        assert [s.key for s in nstore.active_silences(held.con, dt.datetime.now(dt.UTC))] == ["198.51.100.7"]
        r = cli("alerts", "unsilence", "10.9.9.9", "--db", db)
        assert r.code == 2 and "no active silence with id or key '10.9.9.9'" in r.err
        assert cli("alerts", "unsilence", "1", "--db", db).out.strip() == "ended silence 1"
        assert cli("alerts", "outbox", "--retry", "--db", db).out.startswith("0 failed notification(s)")
    finally:
        server.stop()
        held.close()
        shutil.rmtree(short, ignore_errors=True)
