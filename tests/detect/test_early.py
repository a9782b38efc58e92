"""Early bans (fraudwatch.detect.runners.early): the gates decide exactly what the rules would ban, never more.

* every sample of every gated rule: a decision exactly when the rule's own sample reaches its ban severity;
* a simulated day: over the whole stream, the gates decide the same (rule, key) pairs as the replay's alerts that
  propose a ban; over any suffix of it, cut into random batches, a subset of them (the sentry starts late, and
  skips lines when it falls behind);
* a decision comes with the line that crossed the level, and a decided key is counted afresh once re-armed.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from fraudwatch.detect.base import Context
from fraudwatch.detect.decide import SEVERITY_RANK
from fraudwatch.detect.ruleset import load_rules
from fraudwatch.detect.runners.early import LINE_SOURCES, MONOTONE, EarlyBans, early_rules
from fraudwatch.detect.samples import BASE, SAMPLE_TRUSTED, expand
from fraudwatch.rulesdir import shipped_rules_dir
from tests.conftest import Run
from tests.test_ingest_sample import copy_sample

RULES = list(load_rules().rules.values())
GATED = early_rules(RULES)
CTX = Context(shipped_rules_dir() / "lists")


def test_the_gated_rules_are_the_monotone_ban_rules_on_log_lines() -> None:
    ids = {r.common.id for r in GATED}
    assert {"register-flood-ip", "auth-failures-ip", "credential-stuffing-ip", "bruteforce-slow-ip",
            "scanner-user-agent"} <= ids
    for r in RULES:
        c = r.common
        wanted = c.action == "ban_ip" and c.type in MONOTONE and not c.report_only and c.source in LINE_SOURCES
        assert (c.id in ids) == wanted, c.id
    assert "netfilter-drops-ip" not in ids  # a spike: fewer baseline events would make it look bigger


@pytest.mark.parametrize("rule", GATED, ids=lambda r: r.common.id)
def test_a_gate_decides_on_each_sample_exactly_when_the_rule_bans(rule: object) -> None:
    c = rule.common  # type: ignore[attr-defined]
    for sample in c.samples:
        frame, _ = expand(c.source, sample.events)
        decisions = EarlyBans([rule], CTX, SAMPLE_TRUSTED).process(c.source, frame)
        bans = sample.expect != "none" and SEVERITY_RANK[sample.expect] >= SEVERITY_RANK[c.act_on]
        assert bool(decisions) == bans, f"{c.id}, sample '{sample.name}': {decisions}"
        for d in decisions:
            assert d.rule == c.id and d.action == "ban_ip" and d.key_type == "ip" and d.id is None


def test_a_decision_names_the_line_that_crossed_and_a_key_rearms() -> None:
    rule = next(r for r in GATED if r.common.id == "auth-failures-ip")
    burst = {"event": "response", "method": "REGISTER", "status": 403, "src_ip": "192.0.2.44"}
    gates = EarlyBans([rule], CTX)
    frame, _ = expand("sip_events", [{**burst, "repeat": 14, "every": 0.1}])
    assert gates.process("sip_events", frame) == []
    crossing, _ = expand("sip_events", [{**burst, "at": 2.0}])
    (d,) = gates.process("sip_events", crossing)
    assert (d.key, d.severity, d.value) == ("192.0.2.44", "critical", 15.0)
    assert d.at == BASE + dt.timedelta(seconds=2)
    # decided: its events are skipped until the window and cooldown have passed, then counted from nothing
    later, _ = expand("sip_events", [{**burst, "at": 60, "repeat": 20, "every": 0.1}])
    assert gates.process("sip_events", later) == []
    rearmed, _ = expand("sip_events", [{**burst, "at": 2 + 30 + 600, "repeat": 15, "every": 0.1}])
    assert [x.key for x in gates.process("sip_events", rearmed)] == ["192.0.2.44"]


def test_trusted_sources_are_never_decided() -> None:
    rule = next(r for r in GATED if r.common.id == "register-flood-ip")
    frame, _ = expand("sip_events", [{"event": "request", "method": "REGISTER", "src_ip": "203.0.113.9",
                                      "repeat": 300, "every": 0.1}])
    assert EarlyBans([rule], CTX, SAMPLE_TRUSTED).process("sip_events", frame) == []
    assert EarlyBans([rule], CTX).process("sip_events", frame)  # the same events from an untrusted address


def _cuts(frame: pl.DataFrame, rng: random.Random) -> list[pl.DataFrame]:
    out, at = [], 0
    while at < frame.height:
        n = rng.choice((1, 3, 17, 200, 2000))
        out.append(frame.slice(at, n))
        at += n
    return out


def test_on_a_simulated_day_the_gates_decide_what_the_rules_ban(tmp_path: Path,
                                                                 cli: Callable[..., Run]) -> None:
    import duckdb

    from fraudwatch.config import load_config
    from fraudwatch.detect.runners.replay import replay

    folder = copy_sample(tmp_path)
    config = folder / "fraudwatch.toml"
    assert cli("--config", config, "ingest", "--quiet").code == 0
    cfg = load_config(config)
    con = duckdb.connect(str(cfg.store_path), read_only=True)
    alerts = replay(con, RULES, CTX, cfg.trusted_networks, cfg.trusted_accounts).alerts
    frames = {t: con.sql(f"SELECT * FROM {t} ORDER BY ts, id").pl() for t in LINE_SOURCES}
    con.close()
    gated = {r.common.id for r in GATED}
    banned = {(a.rule, a.key) for a in alerts if a.action == "ban_ip" and a.rule in gated}
    assert banned, "the simulated day has no ban for the gates to find"

    def decided(skip: float, seed: int) -> set[tuple[str, str]]:
        gates, rng, out = EarlyBans(RULES, CTX, cfg.trusted_networks), random.Random(seed), set()
        for table, frame in frames.items():
            for batch in _cuts(frame.slice(int(frame.height * skip)), rng):
                out |= {(d.rule, d.key) for d in gates.process(table, batch)}
        return out

    assert decided(0.0, 1) == banned
    for skip, seed in ((0.0, 2), (0.3, 3), (0.6, 4), (0.9, 5)):
        assert decided(skip, seed) <= banned
