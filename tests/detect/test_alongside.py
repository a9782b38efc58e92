"""`ingest --detect` scores alongside the ingest (fraudwatch.detect.runners.alongside): the same alerts, evidence
included, as a replay of the stored data; and when it cannot be exact (files out of time order, too much waiting, the
scoring process gone) it gives way to that replay."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Run
from tests.test_ingest_sample import copy_sample

COMPARED = ("rule", "key_type", "key", "severity", "first_seen", "last_seen", "detected_at", "count", "action",
            "trusted", "report_only", "evidence")


def _canonical(alerts: list[dict[str, Any]]) -> list[str]:
    """The alerts' fields, and their evidence's figures (`known_terms`, `spent`, ...): the lists of event ids
    and lines are samples, capped per batch and per alert, so their content depends on the batches' cuts."""
    out = []
    for a in alerts:
        row = {k: a.get(k) for k in COMPARED}
        row["evidence"] = {k: v for k, v in (a.get("evidence") or {}).items() if not isinstance(v, list)}
        out.append(json.dumps(row, sort_keys=True, default=str))
    return sorted(out)


def _ingest_detect(cli: Callable[..., Run], config: Path, *paths: object) -> tuple[dict[str, object], str]:
    run = cli("--config", config, "ingest", "--detect", "--json", *paths)
    assert run.code == 0, run.err
    return json.loads(run.out), run.err


def _replayed(cli: Callable[..., Run], config: Path) -> list[str]:
    run = cli("--config", config, "detect", "--dry-run", "--json")
    assert run.code == 0, run.err
    return _canonical(json.loads(run.out)["alerts"])


def _saved(cli: Callable[..., Run], config: Path) -> list[str]:
    run = cli("--config", config, "alerts", "list", "--json", "--limit", "100000")
    assert run.code == 0, run.err
    return _canonical(json.loads(run.out))


def _small_chunks(folder: Path, chunk_bytes: int) -> Path:
    config = folder / "fraudwatch.toml"
    config.write_text(config.read_text(encoding="utf-8") + f"\n[ingest]\nchunk_bytes = {chunk_bytes}\n",
                      encoding="utf-8")
    return config


def test_every_source_of_the_sample_scored_alongside_equals_the_replay(tmp_path: Path,
                                                                      cli: Callable[..., Run]) -> None:
    """Five sources, two of them into sip_events and three daily CDR exports: tables a later file writes hold
    the watermark back, so this is the case where most rows wait; alerts and evidence equal the replay's."""
    config = _small_chunks(copy_sample(tmp_path), 1 << 18)
    out, _ = _ingest_detect(cli, config)
    assert out["detection"] == "alongside the ingest"
    saved = _saved(cli, config)
    assert len(saved) == out["alerts"] > 20
    assert saved == _replayed(cli, config)


@pytest.mark.parametrize("step_rows", [2000, 0])
def test_one_log_in_many_chunks_scored_as_it_is_stored_equals_the_replay(
        tmp_path: Path, cli: Callable[..., Run], monkeypatch: pytest.MonkeyPatch, step_rows: int) -> None:
    """One sipproxy.log (45k lines) in 64 KB chunks: the watermark moves at every chunk. In steps of 2,000 rows
    the rules see the day cut into some twenty batches, each of several chunks, with the rest of a chunk held
    for the next step; in steps of STEPS rows, all of it at the end."""
    from fraudwatch.detect.runners import alongside

    if step_rows:
        monkeypatch.setattr(alongside, "STEPS", dict.fromkeys(alongside.STEPS, step_rows))
    folder = copy_sample(tmp_path)
    config = _small_chunks(folder, 1 << 16)
    out, _ = _ingest_detect(cli, config, "--format", "vos3000-sipproxy", folder / "sipproxy.log")
    assert out["detection"] == "alongside the ingest"
    saved = _saved(cli, config)
    assert len(saved) == out["alerts"] > 10
    assert saved == _replayed(cli, config)


def test_a_log_out_of_time_order_gives_way_to_the_replay(tmp_path: Path, cli: Callable[..., Run],
                                                         caplog: pytest.LogCaptureFixture) -> None:
    """The day's second half written before its first: events older than what was scored arrive, so the
    scoring alongside is dropped and the store replayed after the ingest — the replay's alerts."""
    folder = copy_sample(tmp_path)
    config = _small_chunks(folder, 1 << 16)
    lines = (folder / "sipproxy.log").read_bytes().splitlines(keepends=True)
    swapped = folder / "swapped.log"
    swapped.write_bytes(b"".join(lines[len(lines) // 2:] + lines[:len(lines) // 2]))
    out, _ = _ingest_detect(cli, config, "--format", "vos3000-sipproxy", swapped)
    assert out["detection"] == "replay after the ingest"
    assert "gave way to a replay" in caplog.text and "not in time order" in caplog.text
    saved = _saved(cli, config)
    assert len(saved) == out["alerts"] > 10
    assert saved == _replayed(cli, config)


def test_a_store_with_events_already_is_replayed_after_the_ingest(tmp_path: Path, cli: Callable[..., Run]) -> None:
    folder = copy_sample(tmp_path)
    config = folder / "fraudwatch.toml"
    assert cli("--config", config, "ingest", "--quiet", folder / "kern.log").code == 0
    out, _ = _ingest_detect(cli, config)
    assert out["detection"] == "replay after the ingest"
    assert _saved(cli, config) == _replayed(cli, config)


@pytest.mark.parametrize("failure", ["killed", "held"])
def test_the_scoring_process_failing_leaves_the_replay_to_do_it(tmp_path: Path, failure: str) -> None:
    """Killed mid-way, or holding more rows than it may: finish() says None (replay), with the reason."""
    import dataclasses

    from fraudwatch.config import load_config
    from fraudwatch.detect.runners.batch import detect_alongside
    from fraudwatch.formats.registry import load_formats
    from fraudwatch.ingest import Ingestor
    from fraudwatch.store.db import Store

    folder = copy_sample(tmp_path)
    cfg = load_config(_small_chunks(folder, 1 << 16))
    with Store(cfg.store_path) as store:
        ing = Ingestor(store, load_formats(cfg.format_dirs), cfg.ingest)
        jobs = [folder / "sipproxy.log", folder / "mbx.log"]
        tables = [f.table if (f := ing.known_format(p, None)) is not None else None for p in jobs]
        alongside = detect_alongside(cfg, store.con, tables)
        assert alongside is not None
        if failure == "held":  # mbx.log comes after: sipproxy.log's rows all wait
            alongside.setup = dataclasses.replace(alongside.setup, held_rows=5000)
        chunks = 0

        def commit(table: str, source: str) -> None:
            nonlocal chunks
            chunks += 1
            if failure == "killed" and chunks == 3:
                assert alongside.scorer is not None
                os.kill(alongside.scorer.proc.pid, signal.SIGKILL)
                alongside.scorer.proc.join(timeout=10)
            alongside.on_commit(table, source)

        ing.on_commit = commit
        try:
            for i, path in enumerate(jobs):
                alongside.begin(i)
                assert ing.ingest(path, None).error is None
            assert alongside.finish() is None
        finally:
            alongside.close()
    assert chunks > 10
    assert alongside.gave_way is not None
    assert ("gone" in alongside.gave_way) if failure == "killed" else ("5,000 rows" in alongside.gave_way)


def test_a_scoring_process_started_early_and_dead_before_its_setup_leaves_the_replay(tmp_path: Path) -> None:
    """`ingest --detect` starts the scoring process first thing; gone before it was sent its setup, it gives
    way to the replay as when it dies later, instead of failing the ingest."""
    from fraudwatch.config import load_config
    from fraudwatch.detect.runners.batch import detect_alongside
    from fraudwatch.detect.runners.scorer import Scorer
    from fraudwatch.formats.registry import load_formats
    from fraudwatch.ingest import Ingestor
    from fraudwatch.store.db import Store

    folder = copy_sample(tmp_path)
    cfg = load_config(_small_chunks(folder, 1 << 16))
    scorer = Scorer()
    os.kill(scorer.proc.pid, signal.SIGKILL)
    scorer.proc.join(timeout=10)
    with Store(cfg.store_path) as store:
        ing = Ingestor(store, load_formats(cfg.format_dirs), cfg.ingest)
        alongside = detect_alongside(cfg, store.con, ["sip_events"], scorer)
        assert alongside is not None
        ing.on_commit = alongside.on_commit
        try:
            alongside.begin(0)
            assert ing.ingest(folder / "sipproxy.log", None).error is None
            assert alongside.finish() is None
        finally:
            alongside.close()
    assert alongside.gave_way is not None and "gone" in alongside.gave_way


def test_cdr_exports_in_many_pieces_scored_as_they_are_stored_equal_the_replay(
        tmp_path: Path, cli: Callable[..., Run], monkeypatch: pytest.MonkeyPatch) -> None:
    """The three days' CDRs as one export read in pieces of 200 rows: the CDR watermark (the newest start read,
    which bounds the stops to come) moves at every piece, and steps of 500 rows are scored as it passes them;
    the accounts file comes first for the credit rule."""
    from fraudwatch.detect.runners import alongside
    from fraudwatch.ingest import csvfiles as ingest_csv

    monkeypatch.setattr(ingest_csv, "PIECE_ROWS", 200)
    monkeypatch.setattr(alongside, "STEPS", dict.fromkeys(alongside.STEPS, 500))
    folder = copy_sample(tmp_path)
    config = folder / "fraudwatch.toml"
    exports = sorted((folder / "cdr").glob("*.csv"))
    header, *_ = exports[0].read_text(encoding="utf-8").splitlines(keepends=True)
    rows = [line for e in exports for line in e.read_text(encoding="utf-8").splitlines(keepends=True)[1:]]
    merged = tmp_path / "e_cdr_3d.csv"
    merged.write_text(header + "".join(rows), encoding="utf-8")
    out, _ = _ingest_detect(cli, config, merged, folder / "customers.csv")
    assert out["detection"] == "alongside the ingest"
    assert [Path(str(f["path"])).name for f in out["files"]] == ["customers.csv", "e_cdr_3d.csv"]  # type: ignore[index]
    saved = _saved(cli, config)
    assert len(saved) == out["alerts"] and any('"rule": "credit-limit"' in a for a in saved)
    assert saved == _replayed(cli, config)
