"""The SQL sandbox: `fraudwatch sql` (on the store file, and on the read copy while the watcher holds it) and the
watcher's socket `query` read the store and nothing else: no file outside it, no network, no writes, no settings,
one statement, a time limit (fraudwatch.store.sandbox)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from fraudwatch.errors import FraudwatchError, StoreError, UsageError
from fraudwatch.store import sandbox
from fraudwatch.store.db import Store, open_read_only
from fraudwatch.store.replica import Publisher, open_replica
from tests.conftest import Run
from tests.test_ingest import sip_lines, write

SECRET = "s3cr3t-token-in-a-file"


def _hostile(outside: Path) -> list[str]:
    """Statements that reach past the store: files outside it, writes, settings, extensions, the network."""
    return [
        "SELECT * FROM read_text('/etc/passwd')",
        f"SELECT content FROM read_text('{outside / 'secret.txt'}')",
        f"SELECT * FROM read_csv('{outside / 'secret.csv'}')",
        f"SELECT * FROM '{outside / 'secret.csv'}'",
        f"COPY (SELECT 1 AS x) TO '{outside / 'copied.csv'}'",
        f"EXPORT DATABASE '{outside / 'exported'}'",
        f"ATTACH '{outside / 'other.duckdb'}' AS other",
        "SET enable_external_access = true",
        "SET lock_configuration = false",
        "LOAD httpfs",
        "INSTALL httpfs",
        "SELECT * FROM 'https://192.0.2.1/x.parquet'",
        "SELECT * FROM read_parquet('http://127.0.0.1:9/x.parquet')",
        "WITH t AS (DELETE FROM alerts RETURNING *) SELECT * FROM t",
        "WITH t AS (INSERT INTO bans (id) VALUES (1) RETURNING *) SELECT * FROM t",
        "WITH t AS (UPDATE positions SET byte_offset = 0 RETURNING *) SELECT count(*) FROM t",
        "EXPLAIN ANALYZE WITH t AS (DELETE FROM alerts RETURNING *) SELECT * FROM t",
        "SELECT 1; SELECT 2",
        "SELECT 1; COPY (SELECT 1) TO 'x.csv'",
    ]


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_text(SECRET, encoding="utf-8")
    (folder / "secret.csv").write_text(f"token\n{SECRET}\n", encoding="utf-8")
    duckdb.connect(str(folder / "other.duckdb")).close()
    return folder


@pytest.fixture
def store(tmp_path: Path, cli: Callable[..., Run]) -> Path:
    db = tmp_path / "store" / "s.duckdb"
    db.parent.mkdir()
    log = tmp_path / "sipproxy.log"
    write(log, sip_lines(20))
    assert cli("--db", db, "ingest", log).code == 0
    return db


def _untouched(outside: Path) -> None:
    assert sorted(p.name for p in outside.iterdir()) == ["other.duckdb", "secret.csv", "secret.txt"]


def test_sql_cannot_reach_past_the_store(store: Path, outside: Path, cli: Callable[..., Run]) -> None:
    for statement in _hostile(outside):
        run = cli("--db", store, "sql", statement, "--json")
        assert run.code != 0, (statement, run.out)
        assert SECRET not in run.out + run.err and "root:" not in run.out, statement
        assert run.err.startswith("fraudwatch: ") and run.err.count("\n") == 1, (statement, run.err)
    _untouched(outside)
    assert json.loads(cli("--db", store, "sql", "SELECT count(*) AS n FROM sip_events", "--json").out) == [{"n": 15}]
    assert cli("--db", store, "sql", "SELECT count(*) FROM alerts").code == 0  # nothing was deleted or written


def test_sql_refusals_say_why(store: Path, cli: Callable[..., Run]) -> None:
    dml = cli("--db", store, "sql", "WITH t AS (DELETE FROM alerts RETURNING *) SELECT * FROM t")
    assert dml.code == 2 and "read-only" in dml.err and "DELETE" in dml.err
    two = cli("--db", store, "sql", "SELECT 1; SELECT 2")
    assert two.code == 2 and "2 statements" in two.err
    copy = cli("--db", store, "sql", "COPY (SELECT 1) TO 'x.csv'")
    assert copy.code == 2 and "not COPY" in copy.err
    explained = cli("--db", store, "sql", "EXPLAIN SELECT count(*) FROM sip_events")
    assert explained.code == 0 and "physical_plan" in explained.out


def test_sql_has_a_time_limit(store: Path, cli: Callable[..., Run]) -> None:
    started = time.monotonic()
    run = cli("--db", store, "sql", "SELECT count(*) FROM range(3000000000) a, range(1000) b WHERE a.range + b.range "
              "= -1", "--timeout", "1")
    assert time.monotonic() - started < 20
    assert run.code == 3 and "time limit" in run.err and "1 s" in run.err, run.err
    assert cli("--db", store, "sql", "SELECT 1", "--timeout", "0").code == 2


def test_the_read_copy_is_sandboxed_too(store: Path, outside: Path) -> None:
    """While the watcher holds the store, `sql` reads the segments and the published snapshot: same sandbox."""
    with Store(store) as st:
        Publisher(st.con.cursor(), store).publish()
    con = open_replica(store, sandboxed=True)
    try:
        assert sandbox.run(con, "SELECT count(*) FROM sip_events", [], 5).rows == [(15,)]
        assert sandbox.run(con, "SELECT count(*) FROM positions", [], 5).rows == [(1,)]
        for statement in _hostile(outside):
            with pytest.raises(FraudwatchError):
                sandbox.run(con, statement, [], 5)
    finally:
        con.close()
    _untouched(outside)


def test_open_read_only_sandboxed_reads_its_segments_only(store: Path, outside: Path) -> None:
    con = open_read_only(store, sandboxed=True)
    try:
        assert sandbox.run(con, "SELECT count(*) FROM sip_events", [], 5).rows == [(15,)]
        with pytest.raises(StoreError, match="Permission"):
            sandbox.run(con, f"SELECT * FROM read_text('{outside / 'secret.txt'}')", [], 5)
        with pytest.raises(duckdb.Error, match="locked"):
            con.execute("SET enable_external_access = true")
    finally:
        con.close()


def test_live_queries_see_fresh_rows_and_nothing_else(store: Path, outside: Path, tmp_path: Path) -> None:
    """The watcher's query instance: fresh rows from the writer (hot ones included), parameters, and the same
    refusals; the writer's own instance keeps its freedom (it writes segments)."""
    with Store(store) as st:
        live = sandbox.LiveQueries(store, seconds=2.0)
        try:
            st.con.execute("INSERT INTO alerts (id, rule, key) VALUES (7, 'r', '192.0.2.7')")
            got = live.answer(st.con, "SELECT rule, key FROM alerts WHERE id = ?", [7], 10)
            assert got == {"ok": True, "columns": ["rule", "key"], "rows": [["r", "192.0.2.7"]], "truncated": False}
            assert live.run(st.con, "SELECT count(*) FROM sip_events", [], 10).rows == [(15,)]
            st.con.execute("INSERT INTO hot_sip_events (id, call_id) VALUES (1000, 'hot-row')")  # not yet flushed
            assert live.run(st.con, "SELECT count(*) FROM sip_events", [], 10).rows == [(16,)]
            st.con.execute("DELETE FROM hot_sip_events")
            assert live.run(st.con, "SELECT count(*) FROM sip_events e JOIN positions p ON e.source = p.path",
                            [], 10).rows == [(15,)]
            assert live.answer(st.con, "SELECT * FROM range(5)", [], 3)["truncated"] is True
            for statement in [*_hostile(outside), "SELECT content FROM read_text('/proc/self/environ')"]:
                with pytest.raises(FraudwatchError):
                    live.run(st.con, statement, [], 10)
            started = time.monotonic()
            with pytest.raises(StoreError, match="time limit"):
                live.run(st.con, "SELECT count(*) FROM range(3000000000) a, range(1000) b "
                         "WHERE a.range + b.range = -1", [], 10)
            assert time.monotonic() - started < 15
            assert st.con.execute("SELECT count(*) FROM alerts").fetchall() == [(1,)]
            assert st.con.execute("SELECT current_setting('enable_external_access')").fetchall() == [(True,)]
        finally:
            live.close()
    _untouched(outside)


def test_check_refuses_every_kind_but_a_query() -> None:
    con = sandbox.sandbox([])
    try:
        assert sandbox.check(con, "SELECT * FROM alerts a JOIN main.bans b ON true") == {"alerts", "bans"}
        assert sandbox.check(con, "WITH x AS (SELECT 1) SELECT * FROM x UNION ALL SELECT 2") == {"x"}
        assert sandbox.check(con, "EXPLAIN (FORMAT json) /* c */ SELECT * FROM cdrs") == {"cdrs"}
        for statement in ("PRAGMA version", "CALL pragma_version()", "CHECKPOINT", "CREATE TABLE t (a INT)",
                          "DETACH x", "USE memory", "PIVOT alerts ON rule", "SELECT (WITH t AS (DELETE FROM x "
                          "RETURNING *) SELECT 1)", "EXPLAIN", "", "SELEC 1"):
            with pytest.raises(UsageError):
                sandbox.check(con, statement)
    finally:
        con.close()


# --- forged manifests: the read copy's manifest.json and the segment listing _segments.json ---------------------


def _published(store: Path) -> tuple[Path, Path]:
    with Store(store) as st:
        Publisher(st.con.cursor(), store).publish()
    return store.with_name(store.name + ".read") / "manifest.json", store.with_name(store.name + ".segments") / \
        "_segments.json"


def _secret_parquet(outside: Path) -> Path:
    path = outside / "secret.parquet"
    duckdb.sql(f"COPY (SELECT '{SECRET}' AS token) TO '{path}' (FORMAT parquet)")
    return path


def test_a_forged_listing_cannot_name_files_outside_the_segments(store: Path, outside: Path,
                                                                 cli: Callable[..., Run]) -> None:
    _, listing = _published(store)
    body = json.loads(listing.read_text(encoding="utf-8"))
    good = body["tables"]["sip_events"]
    secret = _secret_parquet(outside)
    for forged in ([str(secret)], ["../../outside/secret.parquet"], ["*/*/*.parquet"], ["sip_events/**"],
                   ["sip_events/day=2026-11-20/000000000001.parquet']); COPY (SELECT 1) TO 'pwn.csv'; --"],
                   [good[0].replace("sip_events", "cdrs")]):
        listing.write_text(json.dumps({**body, "tables": {**body["tables"], "sip_events": forged}}), encoding="utf-8")
        with pytest.raises(StoreError, match="forged"):
            open_replica(store, sandboxed=True)
        with pytest.raises(StoreError, match="forged"):
            open_replica(store)  # every reader, not `sql` only
    assert not (store.parent / "pwn.csv").exists() and not Path("pwn.csv").exists()
    listing.write_text(json.dumps(body), encoding="utf-8")
    con = open_replica(store, sandboxed=True)
    assert con.execute("SELECT count(*) FROM sip_events").fetchall() == [(15,)]
    con.close()


def test_a_forged_snapshot_manifest_cannot_name_tables_or_files(store: Path, outside: Path) -> None:
    manifest, _ = _published(store)
    body = json.loads(manifest.read_text(encoding="utf-8"))
    (store.parent / "s.duckdb.read" / "x.parquet").write_bytes(_secret_parquet(outside).read_bytes())
    for files in (["*.parquet"], ["x.parquet"], ["alerts.1.parquet' ]); SELECT 1; --"],
                  [str(outside / "secret.parquet")], "alerts.1.parquet", []):
        manifest.write_text(json.dumps({**body, "tables": {**body["tables"], "alerts": files}}), encoding="utf-8")
        with pytest.raises(StoreError, match="forged"):
            open_replica(store)
    # names that are not our tables are left out, whatever they hold; a published_at that is no time is none
    tables = {**body["tables"], "replica_info": body["tables"]["alerts"], "select": ["select.1.parquet"],
              "x; COPY (SELECT 1) TO 'pwn.csv'": ["x.parquet"]}
    manifest.write_text(json.dumps({**body, "tables": tables, "published_at": "'); DROP TABLE x; --"}),
                        encoding="utf-8")
    con = open_replica(store)
    try:
        assert con.execute("SELECT published_at FROM replica_info").fetchall() == [(None,)]
        assert con.execute("SELECT count(*) FROM positions").fetchall() == [(1,)]
        names = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        assert "select" not in names and not any("COPY" in n for n in names)
    finally:
        con.close()
    assert not Path("pwn.csv").exists()


def test_the_publisher_deletes_only_its_own_copies(store: Path, tmp_path: Path) -> None:
    """The manifest's trash names what the publisher deletes once its grace is over: a forged entry must not
    make the watcher (root) delete a file elsewhere."""
    manifest, _ = _published(store)
    victim = tmp_path / "victim.1.parquet"
    victim.write_text("keep me", encoding="utf-8")
    body = json.loads(manifest.read_text(encoding="utf-8"))
    body["trash"] = {"../../victim.1.parquet": 0.0, str(victim): 0.0}
    manifest.write_text(json.dumps(body), encoding="utf-8")
    with Store(store) as st:
        Publisher(st.con.cursor(), store).publish()
    assert victim.read_text(encoding="utf-8") == "keep me"


def test_the_watcher_socket_query_is_sandboxed(tmp_path: Path, outside: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real watcher: its environment (where apprise URLs carry passwords) and every file stay out of reach of
    the socket's `query`, which still sees each stored row at once."""
    from tests.watch.harness import WatcherProcess, sip_line, wait_until, write_config

    monkeypatch.setenv("FRAUDWATCH_TEST_CHANNEL", f"mailtos://noc:{SECRET}@mail.example.net")
    log = tmp_path / "sipproxy.log"
    log.write_text("".join(sip_line(i) for i in range(50)), encoding="utf-8")
    w = WatcherProcess(write_config(tmp_path, [(str(log), "vos3000-sipproxy")]), tmp_path / "store.duckdb").start()
    try:
        assert wait_until(lambda: w.count("SELECT count(*) FROM sip_events") == 50, 30)
        for statement in [*_hostile(outside), "SELECT content FROM read_text('/proc/self/environ')",
                          "SELECT * FROM read_text('/proc/self/cmdline')"]:
            got = w.call("query", {"sql": statement})
            assert got is not None and got["ok"] is False, (statement, got)
            assert SECRET not in json.dumps(got) and got["exit_code"] in (2, 3), got
        assert w.count("SELECT count(*) FROM sip_events WHERE call_id = ?", ["t-7@test"]) == 1
    finally:
        assert w.stop() == 0
        w.close()
    _untouched(outside)
