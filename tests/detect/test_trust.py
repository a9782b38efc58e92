"""Trust decides what may be done, not what may be seen (issue 23): the shipped account and CDR fraud rules look at
traffic from trusted networks, say so in the alert, and propose a lock for it only where the config allows; an
account taken over through its trunk shows in the CDRs alone, learned from a day of history, not a week."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from fraudwatch.config import load_config
from fraudwatch.detect.base import Context
from fraudwatch.detect.decide import Alert, AlertBook
from fraudwatch.detect.ruleset import load_rules
from fraudwatch.detect.runners.engine import Engine
from fraudwatch.errors import ConfigError
from fraudwatch.netaddr import parse_networks
from fraudwatch.rulesdir import shipped_rules_dir
from tests.detect.frames import events, split_every

TRUSTED = parse_networks(["203.0.113.0/25"])
RULES = load_rules().rules
HOUR = 3600.0


def _cdr(t: float, account: str, ip: str, callee: str, hold: int, fee: float) -> dict[str, Any]:
    return {"t": t, "customer_account": account, "caller_ip": ip, "callee_e164": callee, "hold_seconds": hold,
            "fee": fee, "customer_name": f"customer {account}"}


def _office(account: str, ip: str, hours: int, start: float = 0.0) -> Iterator[dict[str, Any]]:
    """An account's ordinary UK calls, one every two hours."""
    for h in range(0, hours, 2):
        yield _cdr(start + h * HOUR, account, ip, f"4412123456{h % 10}", 90, 0.02)


def _pumping(account: str, ip: str, start: float, calls: int = 40) -> Iterator[dict[str, Any]]:
    """Many short answered calls, a minute apart, to a Latvian premium range (traffic pumping)."""
    for i in range(calls):
        yield _cdr(start + 60 * i, account, ip, f"3719000{1000 + i % 7}", 45, 1.5)


def _replay(rows: list[dict[str, Any]], *, stream: bool = False, batch: int | None = None,
            trusted_accounts: tuple[str, ...] = (), lock_in_trusted: bool = False) -> list[Alert]:
    frame = events("cdrs", sorted(rows, key=lambda r: r["t"]))
    rules = list(RULES.values())
    engine = Engine(rules, Context(shipped_rules_dir() / "lists"), TRUSTED, stream=stream)
    book = AlertBook(RULES, TRUSTED, trusted_accounts, **({"lock_in_trusted": True} if lock_in_trusted else {}))
    alerts: dict[int, Alert] = {}
    for part in split_every(frame, batch) if batch else [frame]:
        for a in book.apply(engine.process("cdrs", part)):
            alerts[a.id] = a
    return sorted(alerts.values(), key=lambda a: a.id)


def _by_rule(alerts: list[Alert], key: str) -> dict[str, Alert]:
    return {a.rule: a for a in alerts if a.key.split("|")[0] == key}


HACKED_PBX = [*_office("10031", "203.0.113.40", 30), *_pumping("10031", "203.0.113.40", 30 * HOUR)]


@pytest.mark.parametrize(("stream", "batch"), [(False, None), (False, 7), (True, 5)])
def test_a_hacked_pbx_behind_a_trusted_trunk_alerts_and_says_so(stream: bool, batch: int | None) -> None:
    alerts = _by_rule(_replay(HACKED_PBX, stream=stream, batch=batch), "10031")
    assert {"high-risk-spend-account", "repeated-calls-number"} <= set(alerts), sorted(alerts)
    spend = alerts["high-risk-spend-account"]
    assert spend.severity == "critical"
    assert spend.evidence["trusted_sources"] == ["203.0.113.40"]
    assert "trusted network: 203.0.113.40" in spend.description
    assert spend.action == "alert" and not spend.trusted  # the account is not a trusted one; its traffic was


def test_locking_such_an_account_is_proposed_only_where_the_config_says_so() -> None:
    spend = _by_rule(_replay(HACKED_PBX, lock_in_trusted=True), "10031")["high-risk-spend-account"]
    assert spend.action == "lock_account" and spend.evidence["trusted_sources"] == ["203.0.113.40"]
    # a trusted account is never locked, whatever the setting
    spend = _by_rule(_replay(HACKED_PBX, lock_in_trusted=True, trusted_accounts=("10031",)),
                     "10031")["high-risk-spend-account"]
    assert spend.action == "alert" and spend.trusted


def test_the_same_fraud_from_outside_proposes_the_lock_and_names_no_trusted_network() -> None:
    rows = [*_office("10032", "198.51.100.32", 30), *_pumping("10032", "198.51.100.32", 30 * HOUR)]
    spend = _by_rule(_replay(rows), "10032")["high-risk-spend-account"]
    assert spend.action == "lock_account" and "trusted_sources" not in spend.evidence
    assert "trusted" not in spend.description


def test_trust_learned_after_an_alert_opened_takes_back_the_proposed_lock() -> None:
    """An alert that opened on outside traffic and then sees the account's trusted PBX at it too proposes no lock
    (the book's decision does not depend on which batch brought the trusted address)."""
    rows = [*_pumping("10033", "198.51.100.33", 0, calls=20), *_pumping("10033", "203.0.113.41", 20 * 60, calls=20)]
    for batch in (None, 5):
        spend = _by_rule(_replay(rows, batch=batch), "10033")["high-risk-spend-account"]
        assert spend.action == "alert" and spend.evidence["trusted_sources"] == ["203.0.113.41"], batch


def _takeover(account: str, home: str, attacker: str, history_hours: int) -> list[dict[str, Any]]:
    """An account's calls from its office, then calls to ordinary UK numbers from an address abroad (SE), in
    the CDRs only."""
    start = history_hours * HOUR
    return [*_office(account, home, history_hours),
            *(_cdr(start + 600 * i, account, attacker, f"44740091234{i}", 120, 0.05) for i in range(5))]


def test_a_takeover_seen_only_in_cdrs_alerts_after_a_day_of_history() -> None:
    alerts = _by_rule(_replay(_takeover("10034", "198.51.100.34", "89.160.20.112", 26)), "10034")
    new = alerts["account-cdr-new-address"]
    assert new.evidence["new_terms"] == [["89.160.20.112"]] and new.evidence["src_countries"] == ["SE"]
    assert new.first_seen == events("cdrs", [{"t": 26 * HOUR}]).item(0, "stop_time")


def test_a_new_country_from_cdrs_alerts_and_the_first_day_is_learned() -> None:
    alerts = _by_rule(_replay(_takeover("10035", "81.2.69.142", "89.160.20.112", 26)), "10035")
    assert alerts["account-cdr-new-country"].evidence["new_terms"] == [["SE"]]
    # within the account's first day the same calls are learned, not scored
    early = _by_rule(_replay(_takeover("10036", "81.2.69.142", "89.160.20.112", 12)), "10036")
    assert not {"account-cdr-new-country", "account-cdr-new-address"} & set(early)


def test_the_trusted_source_column_is_the_address_only_when_trusted() -> None:
    from fraudwatch.detect.enrich import Enricher

    frame = events("cdrs", [_cdr(0, "1", "203.0.113.5", "441212345678", 1, 0.1),
                            _cdr(1, "1", "198.51.100.5", "441212345678", 1, 0.1)])
    for height in (frame.height, 5000):  # the small (plain Python) and the frame path
        big = pl.concat([frame] * (height // frame.height))
        got = Enricher(TRUSTED)("cdrs", big).select("caller_ip", "trusted_source").unique().sort("caller_ip")
        assert got.rows() == [("198.51.100.5", None), ("203.0.113.5", "203.0.113.5")]


CONFIG = """\
[trusted]
networks = ["203.0.113.0/25"]
lock_accounts_in_networks = {value}
"""


def test_the_lock_setting_is_off_by_default_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "fraudwatch.toml"
    path.write_text('[trusted]\nnetworks = ["203.0.113.0/25"]\n', encoding="utf-8")
    assert load_config(path).lock_in_trusted is False
    path.write_text(CONFIG.format(value="true"), encoding="utf-8")
    assert load_config(path).lock_in_trusted is True
    path.write_text(CONFIG.format(value='"yes"'), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}:3: ") and "must be true or false" in str(info.value)


def test_learning_from_history_without_scoring_is_what_a_full_run_learns() -> None:
    """`learn_only` over the past, then the new events, gives the new events' matches of a run over everything
    (for every shipped new_term rule's samples whose matches all come after the cut)."""
    from fraudwatch.detect.enrich import Enricher
    from fraudwatch.detect.fields import columns_of
    from fraudwatch.detect.samples import SAMPLE_TRUSTED, expand

    compared = 0
    for rule in (r for r in RULES.values() if r.common.type == "new_term"):
        ctx, columns = Context(shipped_rules_dir() / "lists"), columns_of(rule.common.source)
        for sample in rule.common.samples:
            frame = Enricher(SAMPLE_TRUSTED)(rule.common.source, expand(rule.common.source, sample.events)[0])
            whole = rule.frame_detector(ctx, columns).process(frame)
            for cut in range(1, frame.height):
                past, new = frame.head(cut), frame.slice(cut)
                if any(m.first_seen <= past.get_column("ts").max() for m in whole):
                    continue
                learner = rule.frame_detector(ctx, columns)
                learner.learn_only(past)
                got = learner.process(new)
                assert [(m.key, m.severity, m.first_seen, m.evidence["new_terms"]) for m in got] == \
                    [(m.key, m.severity, m.first_seen, m.evidence["new_terms"]) for m in whole], (rule.common.id, cut)
                compared += 1
    assert compared > 50


def test_a_replay_of_a_range_learns_from_the_history_before_it(tmp_path: Path, formats: dict[str, Any]) -> None:
    """`detect --since`: the new-term rules learn the account's addresses from the stored days before the range,
    so its first call from elsewhere inside the range alerts (not learned silently as if the account were new)."""
    from fraudwatch.config import Config
    from fraudwatch.detect.runners.batch import run_detect
    from fraudwatch.ingest import Ingestor
    from fraudwatch.store.db import Store

    start = 1_762_000_000_000
    rows = [f"{i},{start + i * 7_200_000},{start + i * 7_200_000 + 60_000},60,0.25,10001,44121234{i:04d},"
            f"198.51.100.7\n" for i in range(20)]
    rows.append(f"99,{start + 41 * 3_600_000},{start + 41 * 3_600_000 + 60_000},60,0.25,10001,441212349999,"
                f"192.0.2.7\n")
    cdr = tmp_path / "e_cdr.csv"
    cdr.write_text("flowno,starttime,stoptime,holdtime,fee,customeraccount,calleee164,callerip\n" + "".join(rows),
                   encoding="utf-8")
    with Store(tmp_path / "s.duckdb") as store:
        Ingestor(store, formats).ingest(cdr, "vos3000-cdr")
    cfg = Config(path=None, store_path=tmp_path / "s.duckdb")
    since = dt.datetime.fromtimestamp((start + 40 * 3_600_000) / 1000, dt.UTC)
    result = run_detect(cfg, since, None, [], dry_run=True)
    assert [(a.rule, a.key, a.evidence["new_terms"]) for a in result.alerts
            if a.rule.startswith("account-cdr-new")] == [("account-cdr-new-address", "10001", [["192.0.2.7"]])]
