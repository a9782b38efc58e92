"""Replay equals live: the same events in one batch or in many small ones give the same alerts.

The watcher sees whatever the tailer hands it (a few lines, or a burst); a replay reads hour steps. Alerts must
not depend on where the batches were cut, so the whole pipeline (enrich -> detectors -> alert book) runs over
one generated traffic mix cut in several ways, and the alerts are compared field by field.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from fraudwatch.detect.base import Context
from fraudwatch.detect.decide import AlertBook
from fraudwatch.detect.runners.engine import Engine
from fraudwatch.netaddr import parse_networks
from tests.detect.frames import at, events, lists_dir, load_rules_text, split_every

RULES = """
rules:
  - id: flood
    type: threshold
    where: {event: request, method: REGISTER}
    key: src_ip
    window: 10s
    warning: 20
    critical: 35
    action: ban_ip
    act_on: warning
  - id: auth-fail
    type: threshold
    where: {challenge_repeat: true}
    key: src_ip
    window: 60s
    warning: 5
    critical: 20
  - id: user-scan
    type: distinct
    where: {event: request, method: REGISTER}
    key: src_ip
    field: username
    window: 60s
    warning: 6
    critical: 15
  - id: account-new-ip
    type: new_term
    where: {event: reg_online}
    key: account
    terms: [src_ip]
    learn: 15m
    window: 10m
    cooldown: 5m
    warning: 1
    critical: 2
  - id: scanner
    type: list_match
    where: {event: request}
    key: src_ip
    field: user_agent
    list: scanners
    window: 30s
    warning: 1
    critical: 10
  - id: register-spike
    type: spike
    where: {event: request, method: REGISTER}
    window: 60s
    baseline: 15m
    min_count: 25
    warning: 3
    critical: 8
  - id: register-baseline
    type: seasonal
    where: {event: request, method: REGISTER}
    bucket: 5m
    history: 1h
    min_value: 3
    warning: 3
    critical: 6
  - id: spend
    type: sum
    source: cdrs
    key: customer_account
    field: fee
    window: 10m
    warning: 20
    critical: 60
  - id: credit
    type: credit_limit
    source: cdrs
    key: customer_account
    window: 30m
    horizon: 1h
    warning: 0.8
    critical: 1.0
"""

FIELDS = ("rule", "key", "severity", "first_seen", "detected_at", "last_seen", "count", "value", "action",
          "trusted")
HORIZON = 7200.0


def traffic(seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Two hours of sip events and CDRs: phones, a REGISTER flood in bursts, a username scan with failed
    challenges, accounts showing up from new addresses, a toll-fraud account; unique event times."""
    rng = random.Random(seed)
    used: set[float] = set()

    def t(x: float) -> float:
        x = round(min(max(x, 0.0), HORIZON), 6)
        while x in used:
            x = round(x + 0.000001, 6)
        used.add(x)
        return x

    sip: list[dict[str, Any]] = []
    for i in range(200):  # phones: challenged once, then registered
        ip, call, t0 = f"198.51.100.{rng.randrange(1, 30)}", f"ph{i}", rng.uniform(0, HORIZON - 5)
        user = f"2{rng.randrange(100, 130)}"
        sip += [{"t": t(t0), "event": "request", "method": "REGISTER", "src_ip": ip, "username": user,
                 "call_id": call, "user_agent": "Yealink SIP-T46S"},
                {"t": t(t0 + 0.01), "event": "response", "method": "REGISTER", "status": 401, "src_ip": ip,
                 "call_id": call},
                {"t": t(t0 + 0.02), "event": "response", "method": "REGISTER", "status": 200, "src_ip": ip,
                 "call_id": call}]
    for start in (600.0, 2000.0, 2015.0, 5000.0):  # flood bursts; the second and third are one episode
        n = rng.randrange(25, 60)
        for k in range(n):
            sip.append({"t": t(start + k * rng.uniform(0.05, 0.3)), "event": "request", "method": "REGISTER",
                        "src_ip": "192.0.2.10", "username": "100", "user_agent": "friendly-scanner"})
    for k in range(90):  # username scan, each try challenged twice (a wrong password)
        t0, call = 3000 + k * rng.uniform(1, 3), f"scan{k}"
        sip += [{"t": t(t0), "event": "request", "method": "REGISTER", "src_ip": "192.0.2.20",
                 "username": str(1000 + k % 40), "call_id": call, "user_agent": "PolycomSoundPointIP"},
                {"t": t(t0 + 0.01), "event": "response", "method": "REGISTER", "status": 401,
                 "src_ip": "192.0.2.20", "call_id": call},
                {"t": t(t0 + 0.3), "event": "response", "method": "REGISTER", "status": 401,
                 "src_ip": "192.0.2.20", "call_id": call}]
    for a in range(6):  # accounts: home addresses while learning, then some new ones
        home = [f"203.0.113.{10 * a + j}" for j in range(2)]
        for k in range(12):
            sip.append({"t": t(rng.uniform(0, 800)), "event": "reg_online", "account": f"acc{a}",
                        "src_ip": rng.choice(home)})
        for _ in range(rng.randrange(0, 5)):
            sip.append({"t": t(rng.uniform(900, HORIZON)), "event": "reg_online", "account": f"acc{a}",
                        "src_ip": rng.choice([*home, f"192.0.2.{100 + rng.randrange(5)}"])})
    cdr: list[dict[str, Any]] = []
    for i in range(150):
        acct = rng.choice(["c1", "c2", "c3"])
        cdr.append({"t": t(rng.uniform(0, HORIZON)), "customer_account": acct, "fee": round(rng.uniform(0, 2), 4),
                    "hold_seconds": rng.randrange(0, 300), "callee_e164": "441234567890",
                    "caller_ip": "198.51.100.1"})
    for k in range(40):  # toll fraud on c9, from 1 h on
        cdr.append({"t": t(3600 + k * rng.uniform(20, 60)), "customer_account": "c9", "fee": 3.5,
                    "hold_seconds": 600, "callee_e164": "449098790000", "caller_ip": "192.0.2.77"})
    sip.sort(key=lambda r: r["t"])
    cdr.sort(key=lambda r: r["t"])
    return events("sip_events", sip), events("cdrs", cdr)


def _run(tmp_path: Path, batches: Iterable[tuple[str, pl.DataFrame]], stream: bool = False,
         threads: int = 1) -> list[Any]:
    """The final state of every alert the rules raise over `batches` (with the watcher's detectors: `stream`;
    the detectors on `threads` threads)."""
    rules = load_rules_text(tmp_path, RULES)
    ctx = Context(lists_dir(tmp_path, scanners=["friendly-scanner", "sipcli"]), credit={"c9": 100.0, "c1": 500.0})
    trusted = parse_networks(["198.51.100.0/28"])
    engine = Engine(rules, ctx, trusted, stream=stream)
    book = AlertBook({r.common.id: r for r in rules}, trusted, ["c1"])
    out: dict[int, Any] = {}
    for source, frame in batches:
        for a in book.apply(engine.process(source, frame, threads)):
            out[a.id] = a
    return list(out.values())


def alerts(tmp_path: Path, batches: Iterable[tuple[str, pl.DataFrame]], stream: bool = False) -> list[tuple[Any, ...]]:
    return sorted(tuple(getattr(a, f) for f in FIELDS) for a in _run(tmp_path, batches, stream))


def by_time(sip: pl.DataFrame, cdr: pl.DataFrame, cuts: list[float]) -> list[tuple[str, pl.DataFrame]]:
    """Both sources read up to the same instant before the next step, as a replay does."""
    bounds = [at(c) for c in [-1.0, *sorted(cuts), HORIZON + 1]]
    out = []
    for lo, hi in itertools.pairwise(bounds):
        out.append(("sip_events", sip.filter((pl.col("ts") >= lo) & (pl.col("ts") < hi))))
        out.append(("cdrs", cdr.filter((pl.col("stop_time") >= lo) & (pl.col("stop_time") < hi))))
    return out


@pytest.fixture(scope="module")
def data() -> tuple[pl.DataFrame, pl.DataFrame]:
    return traffic(seed=7)


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory, data: tuple[pl.DataFrame, pl.DataFrame]) -> list[tuple[Any, ...]]:
    sip, cdr = data
    return alerts(tmp_path_factory.mktemp("whole"), [("sip_events", sip), ("cdrs", cdr)])


def test_the_mix_raises_every_kind_of_alert(whole: list[tuple[Any, ...]]) -> None:
    rules = {a[0] for a in whole}
    assert rules >= {"flood", "auth-fail", "user-scan", "account-new-ip", "scanner", "register-spike", "spend",
                     "credit"}
    flood = [a for a in whole if a[0] == "flood"]
    assert len(flood) == 3  # three episodes: the second and third bursts are one
    assert all(a[8] == "ban_ip" for a in flood)
    assert not any(a[1].startswith("198.51.100.") and a[0] == "auth-fail" for a in whole)  # phones answer right
    credit = [a for a in whole if a[0] == "credit"]
    assert [(a[1], a[2]) for a in credit] == [("c9", "critical")]


STREAM = pytest.mark.parametrize("stream", [False, True], ids=["frames", "incremental"])


@pytest.fixture
def every_window_incremental(monkeypatch: pytest.MonkeyPatch) -> None:
    """The watcher keeps only long windows incrementally (engine.LONG_WINDOW); here every window is."""
    from fraudwatch.detect.runners import engine

    monkeypatch.setattr(engine, "LONG_WINDOW", 0.0)


@STREAM
@pytest.mark.usefixtures("every_window_incremental")
def test_every_seven_events(tmp_path: Path, data: tuple[pl.DataFrame, pl.DataFrame],
                            whole: list[tuple[Any, ...]], stream: bool) -> None:
    sip, cdr = data
    batches = [("sip_events", b) for b in split_every(sip, 7)] + [("cdrs", b) for b in split_every(cdr, 7)]
    assert alerts(tmp_path, batches, stream) == whole


@STREAM
@pytest.mark.usefixtures("every_window_incremental")
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_cuts(tmp_path: Path, data: tuple[pl.DataFrame, pl.DataFrame], whole: list[tuple[Any, ...]],
                     seed: int, stream: bool) -> None:
    rng = random.Random(seed)
    cuts = [rng.uniform(0, HORIZON) for _ in range(rng.randrange(5, 60))]
    assert alerts(tmp_path, by_time(*data, cuts), stream) == whole


@pytest.mark.usefixtures("every_window_incremental")
def test_one_batch_incremental(tmp_path: Path, data: tuple[pl.DataFrame, pl.DataFrame],
                               whole: list[tuple[Any, ...]]) -> None:
    """The watcher's detectors given the whole day at once: the replay's alerts."""
    sip, cdr = data
    assert alerts(tmp_path, [("sip_events", sip), ("cdrs", cdr)], stream=True) == whole


def test_replay_steps(tmp_path: Path, data: tuple[pl.DataFrame, pl.DataFrame], whole: list[tuple[Any, ...]]) -> None:
    cuts = [300.0 * i for i in range(1, 24)]  # five-minute steps, on bucket boundaries
    assert alerts(tmp_path, by_time(*data, cuts)) == whole


def _with_evidence(tmp_path: Path, batches: Iterable[tuple[str, pl.DataFrame]],
                   stream: bool = False) -> dict[tuple[Any, ...], Any]:
    tmp_path.mkdir()
    return {(a.rule, a.key, a.first_seen): (*(getattr(a, f) for f in FIELDS), a.evidence, a.updates)
            for a in _run(tmp_path, batches, stream)}


@pytest.mark.parametrize("every", [7, 150, None])
def test_small_batch_paths_match_the_frame_paths(tmp_path: Path, data: tuple[pl.DataFrame, pl.DataFrame],
                                                 monkeypatch: pytest.MonkeyPatch, every: int | None) -> None:
    """Small batches are scored, enriched and filtered in plain Python (no queries' fixed cost); big ones with
    frame operations; the watcher's windows incrementally. All give the same alerts, evidence included, however
    the stream is cut."""
    from fraudwatch.detect import enrich, filters
    from fraudwatch.detect.types import newterm
    from fraudwatch.detect.windows import frame

    sip, cdr = data
    batches = [("sip_events", sip), ("cdrs", cdr)] if every is None else \
        [("sip_events", b) for b in split_every(sip, every)] + [("cdrs", b) for b in split_every(cdr, every)]
    small = _with_evidence(tmp_path / "small", batches)
    from fraudwatch.detect.runners import engine

    with monkeypatch.context() as patched:
        patched.setattr(engine, "LONG_WINDOW", 0.0)
        assert _with_evidence(tmp_path / "incremental", batches, stream=True) == small
    for module, name in ((frame, "SMALL"), (frame, "EAGER_ROWS"), (filters, "EAGER_ROWS"),
                         (newterm, "EAGER_ROWS"), (enrich, "SMALL_BATCH")):
        monkeypatch.setattr(module, name, 0)
    frames = _with_evidence(tmp_path / "frames", batches)
    assert small == frames
    assert len(small) > 10



@pytest.mark.parametrize("every", [7, 150, None])
def test_detectors_on_threads_give_the_same_matches(tmp_path: Path, data: tuple[pl.DataFrame, pl.DataFrame],
                                                    every: int | None) -> None:
    """A replay runs the detectors on threads (engine.PARALLEL): each batch gives the same matches in the same
    order (the alert book's ties between rules follow it), evidence included, as one detector after the other."""
    sip, cdr = data
    batches = [("sip_events", sip), ("cdrs", cdr)] if every is None else \
        [("sip_events", b) for b in split_every(sip, every)] + [("cdrs", b) for b in split_every(cdr, every)]
    rules = load_rules_text(tmp_path, RULES)
    ctx = Context(lists_dir(tmp_path, scanners=["friendly-scanner", "sipcli"]), credit={"c9": 100.0})
    one, four = Engine(rules, ctx), Engine(rules, ctx)
    made = 0
    for source, frame in batches:
        expected = one.process(source, frame)
        assert four.process(source, frame, 4) == expected
        made += len(expected)
    assert made > 10
