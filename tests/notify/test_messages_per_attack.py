"""Issue 23's must-show: at most 3 messages per labelled attack reach a channel, counted on a local webhook.

The simulator's days (the committed sample, and a second seed) are scored live-like: in 15-minute steps of event
time by the watcher's runner (LiveDetection), bans on the dry-run backend, the incident changes notified with the
wall clock at the step's end, and every message delivered to a real HTTP receiver on loopback. Each labelled
attack is matched to the incidents that hold it (fraudwatch.detect.incident_labels); the messages about them, and
about incidents merged into them, are counted.

It needs the incident book (`LiveDetection.take_changes`, `incident_labels`): it runs once both are merged.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import pytest

from fraudwatch.config import load_config
from fraudwatch.config.alerts import AlertsConfig, ChannelConfig
from fraudwatch.config.firewall import FirewallConfig
from fraudwatch.detect.base import Context
from fraudwatch.detect.ruleset import load_rules
from fraudwatch.enforce.enforcer import Enforcer
from fraudwatch.notify.dispatch import Dispatcher
from fraudwatch.notify.notifier import Notifier
from fraudwatch.rulesdir import shipped_rules_dir
from fraudwatch.store.db import Store

from .conftest import Receiver

labels_mod = pytest.importorskip("fraudwatch.detect.incident_labels")
live_mod = pytest.importorskip("fraudwatch.detect.runners.live")
replay_mod = pytest.importorskip("fraudwatch.detect.runners.replay")
store_incidents = pytest.importorskip("fraudwatch.store.incidents")
if not hasattr(live_mod.LiveDetection, "take_changes"):
    pytest.skip("needs the incident book's live runner", allow_module_level=True)

STEP = dt.timedelta(minutes=15)


@pytest.fixture(scope="module", params=["committed-sample", "seed-7"])
def folder(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fraudwatch.cli import main
    from fraudwatch.sim import simulate
    from tests.test_ingest_sample import copy_sample

    tmp = tmp_path_factory.mktemp(request.param)
    if request.param == "seed-7":
        simulate(tmp / "sim", days=2, accounts=80, seed=7)
        where = tmp / "sim"
    else:
        where = copy_sample(tmp)
    assert main(["--config", str(where / "fraudwatch.toml"), "ingest", "--quiet", "--json"]) == 0
    return where


def _run(where: Path, hook: Receiver) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(messages received, incidents stored) of a live-like run over the store's events."""
    cfg = load_config(where / "fraudwatch.toml")
    rules = list(load_rules(list(cfg.rule_dirs)).rules.values())
    alerts_cfg = AlertsConfig(channels=(ChannelConfig("hook", hook.url()),), send_timeout=5.0)
    clock = [dt.datetime(2000, 1, 1, tzinfo=dt.UTC)]
    time_column, order = replay_mod.TIME_COLUMN, replay_mod.ORDER
    with Store(cfg.store_path) as st:
        con = st.con
        credit, names = replay_mod.credit_context(con)
        live = live_mod.LiveDetection(con, rules, Context(shipped_rules_dir() / "lists", credit, names),
                                      cfg.trusted_networks, cfg.trusted_accounts, resave_seconds=0.0)
        enforcer = Enforcer(con.cursor(), FirewallConfig(), cfg.trusted_networks, host_addresses=[])
        enforcer.start(dt.datetime.now(dt.UTC))
        dispatcher = Dispatcher(con, alerts_cfg, poll=0.05, clock=lambda: clock[0])
        notifier = Notifier(con, alerts_cfg, clock=lambda: clock[0], rules={r.common.id: r for r in rules},
                            wake=dispatcher.wake, firewall=enforcer.backend.name)
        dispatcher.start()
        try:
            sources = sorted({r.common.source for r in rules} & set(time_column))
            lo, hi = con.execute("SELECT min(ts), max(ts) FROM sip_events").fetchall()[0]
            t = lo.replace(minute=0, second=0, microsecond=0)
            while t <= hi + dt.timedelta(hours=7):  # past the longest quiet spell: every incident ends
                t_next = clock[0] = t + STEP
                alerts = []
                for s in sources:
                    col = time_column[s]
                    frame = con.sql(f"SELECT * FROM {s} WHERE {col} >= ? AND {col} < ? ORDER BY {order[s]}",  # nosec B608 # names from the schema; values are parameters
                                    params=[t, t_next]).pl()
                    if frame.height:
                        alerts += live(s, frame)
                alerts += live.flush()
                done = enforcer.on_alerts(alerts, t_next) if alerts else {}
                notifier.on_incidents(live.take_changes(), done)
                notifier.tick(t_next)
                t = t_next
            live.flush(force=True)
            notifier.on_incidents(live.take_changes(), {})
            notifier.flush()
            queued = con.execute("SELECT count(*) FROM notify_outbox").fetchall()[0][0]
            end = time.monotonic() + 60
            while len(hook.posts) < queued and time.monotonic() < end:
                time.sleep(0.05)
            assert len(hook.posts) == queued
        finally:
            dispatcher.stop(5.0)
            notifier.close()
        incidents = store_incidents.list_incidents(con)
    return hook.messages(), incidents


def test_at_most_three_messages_per_labelled_attack(folder: Path, http: Receiver) -> None:
    messages, incidents = _run(folder, http.start())
    per_incident = collections.Counter(str(m["id"]) for m in messages)
    joined: dict[str, set[str]] = collections.defaultdict(set)
    for m in messages:
        joined[str(m["id"])].update(m.get("joined") or ())
    held = labels_mod.match(labels_mod.load_labels(folder / "labels.csv"), incidents)
    assert len(held) >= 11 and all(h.incidents for h in held)
    counts = {}
    for h in held:
        ids = set(h.incidents) | {j for i in h.incidents for j in joined[i]}
        counts[h.label.id] = sum(per_incident[i] for i in ids)
    assert max(counts.values()) <= 3, counts
    assert all(m["kind"].startswith("incident-") for m in messages)
    # a dry run never says banned; a lock is never said as done
    for m in messages:
        text = json.dumps(m["done"])
        assert "would have banned" in text or "banned" not in text, m["done"]
        assert "locked" not in text
