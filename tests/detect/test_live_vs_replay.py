"""Live equals replay: alerts raised as events arrive (the watcher's path) match a replay of the stored data;
and the detection CLI (detect, ingest --detect, alerts list/show, lint) behaves."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path

from tests.conftest import Run
from tests.test_ingest_sample import copy_sample

KEY = ("rule", "key", "severity", "first_seen", "detected_at", "count", "action", "trusted")


def _alerts(cli: Callable[..., Run], config: Path, *extra: str) -> list[tuple[object, ...]]:
    run = cli("--config", config, "alerts", "list", "--json", *extra)
    assert run.code == 0, run.err
    return sorted(tuple(a[k] for k in KEY) for a in json.loads(run.out))


def test_live_arrival_order_micro_batches_equal_a_replay(tmp_path: Path, cli: Callable[..., Run]) -> None:
    """The watcher's path: events of all sources arriving interleaved in time, in small batches (never cutting
    an instant), through LiveDetection — the same alerts as a replay of the stored day."""
    import duckdb
    import polars as pl

    from fraudwatch.config import load_config
    from fraudwatch.detect.base import Context
    from fraudwatch.detect.ruleset import load_rules
    from fraudwatch.detect.runners.live import LiveDetection
    from fraudwatch.detect.runners.replay import TIME_COLUMN, credit_context, replay
    from fraudwatch.rulesdir import shipped_rules_dir
    from fraudwatch.store.db import Store

    folder = copy_sample(tmp_path)
    config = folder / "fraudwatch.toml"
    assert cli("--config", config, "ingest", "--quiet").code == 0
    cfg = load_config(config)
    rules = list(load_rules().rules.values())
    con = duckdb.connect(str(cfg.store_path), read_only=True)
    credit, names = credit_context(con)
    ctx = Context(shipped_rules_dir() / "lists", credit, names)
    replayed = replay(con, rules, ctx, cfg.trusted_networks, cfg.trusted_accounts).alerts
    frames = {t: con.sql(f"SELECT * FROM {t} ORDER BY {col}").pl() for t, col in TIME_COLUMN.items()}
    con.close()
    arrivals = pl.concat([f.select(pl.col(TIME_COLUMN[t]).alias("t")).with_columns(pl.lit(t).alias("table"),
                                                                                    pl.int_range(pl.len()).alias("row"))
                          for t, f in frames.items()]).sort("t", maintain_order=True)
    # cut every ~1000 arrivals, but only where the time changes
    times = arrivals.get_column("t").to_list()
    cuts, last = [0], 0
    for i in range(1, len(times)):
        if i - last >= 1000 and times[i] != times[i - 1]:
            cuts.append(i)
            last = i
    cuts.append(len(times))
    with Store(tmp_path / "live.duckdb") as live_store:
        live = LiveDetection(live_store.con, rules, ctx, cfg.trusted_networks, cfg.trusted_accounts)
        for a, b in itertools.pairwise(cuts):
            part = arrivals.slice(a, b - a)
            for table in TIME_COLUMN:
                rows = part.filter(pl.col("table") == table).get_column("row")
                if rows.len():
                    live(table, frames[table][rows.to_list()])
        live.flush(force=True)  # as the watcher does when it stops
        stored = live_store.con.execute("SELECT rule, key, severity, first_seen, detected_at, count FROM alerts"
                                        ).fetchall()
    assert len(cuts) > 40
    want = sorted((a.rule, a.key, a.severity, a.first_seen, a.detected_at, a.count) for a in replayed)
    assert want, "the sample's attacks raised no alert at all"
    assert sorted(stored) == want


def test_ingest_detect_equals_detect(tmp_path: Path, cli: Callable[..., Run]) -> None:
    folder = copy_sample(tmp_path)
    config = folder / "fraudwatch.toml"
    run = cli("--config", config, "ingest", "--detect", "--json")
    assert run.code == 0, run.err
    n = json.loads(run.out)["alerts"]
    saved = _alerts(cli, config)
    assert len(saved) == n > 0
    again = cli("--config", config, "detect", "--dry-run", "--json")
    assert sorted(tuple(a[k] for k in KEY) for a in json.loads(again.out)["alerts"]) == saved


def test_detect_saves_replaces_and_shows(tmp_path: Path, cli: Callable[..., Run]) -> None:
    folder = copy_sample(tmp_path)
    config = folder / "fraudwatch.toml"
    assert cli("--config", config, "ingest", "--quiet").code == 0
    first = cli("--config", config, "detect", "--json")
    assert first.code == 0, first.err
    n = len(json.loads(first.out)["alerts"])
    assert n > 0
    assert cli("--config", config, "detect").code == 0  # a second replay replaces, not duplicates
    listed = json.loads(cli("--config", config, "alerts", "list", "--json").out)
    assert len(listed) == n and all(a["origin"] == "replay" for a in listed)
    for field in ("id", "rule", "severity", "key_type", "key", "first_seen", "last_seen", "count", "action"):
        assert field in listed[0]
    ip_alert = next(a for a in listed if a["key_type"] == "ip")
    shown = cli("--config", config, "alerts", "show", str(ip_alert["id"]), "--json")
    assert shown.code == 0
    detail = json.loads(shown.out)
    assert detail["raw_lines"] and all(ip_alert["key"] in (r["text"] or "") for r in detail["raw_lines"])
    text = cli("--config", config, "alerts", "show", str(ip_alert["id"]))
    assert ip_alert["key"] in text.out and "evidence lines" in text.out
    missing = cli("--config", config, "alerts", "show", "999999")
    assert missing.code != 0 and "no alert 999999" in missing.err
    since = cli("--config", config, "alerts", "list", "--json", "--since", "2030-01-01")
    assert json.loads(since.out) == []


def test_lint_names_file_line_and_reason(tmp_path: Path, cli: Callable[..., Run]) -> None:
    assert cli("lint").code == 0
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "bad.yaml").write_text(
        "rules:\n"
        "  - id: ok-rule\n    type: threshold\n    key: src_ip\n    warning: 5\n"
        "  - id: bad-type\n    type: nosuch\n    warning: 5\n"
        "  - id: bad-window\n    type: threshold\n    window: soon\n    warning: 5\n", encoding="utf-8")
    run = cli("lint", folder)
    assert run.code == 2
    errors = run.err.strip().splitlines()
    assert len(errors) == 2
    assert f"{folder / 'bad.yaml'}:7: rule 'bad-type': unknown type 'nosuch'" in errors[0]
    assert f"{folder / 'bad.yaml'}:11: rule 'bad-window'" in errors[1] and "not a duration" in errors[1]
    assert "1 rule(s) valid, 2 error(s)" in run.out
