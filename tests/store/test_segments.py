"""Event tables as Parquet segments: exactly once across failures, recovery at open, day partitions readable by
other tools, compaction, the committed-rows feed, readers beside a writer, and the migration of older stores."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from fraudwatch.formats.registry import Format
from fraudwatch.ingest import Ingestor
from fraudwatch.store import compaction, layout, positions, segments
from fraudwatch.store.db import Store, open_read_only
from fraudwatch.store.schema import MIGRATIONS, TABLES, arrow_schema, create_table_sql
from tests.test_ingest import sip_lines, write


def _rejects(n: int, at: dt.datetime, first_id: int = 1) -> pa.Table:
    """`n` rows of the rejects table (its every column), ingested at `at`."""
    cols = {c.name: pa.nulls(n, f.type) for c, f in zip(TABLES["rejects"].columns, arrow_schema("rejects"),
                                                         strict=True)}
    cols["id"] = pa.array(range(first_id, first_id + n), pa.int64())
    cols["ingested_at"] = pa.array([at] * n, pa.timestamp("us", tz="UTC"))
    cols["reason"] = pa.array(["test"] * n)
    return pa.table(cols, schema=arrow_schema("rejects"))


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.parquet"))


def test_a_big_batch_is_a_segment_in_its_days_folder_readable_by_other_tools(tmp_path: Path,
                                                                             formats: dict[str, Format]) -> None:
    log = tmp_path / "sipproxy.log"
    write(log, sip_lines(40_000))  # 30k parsed rows: straight to a segment
    with Store(tmp_path / "s.duckdb") as store:
        summary = Ingestor(store, formats).ingest(log, "vos3000-sipproxy")
        assert store.con.execute("SELECT count(*) FROM hot_sip_events").fetchall() == [(0,)]
        assert store.con.execute("SELECT count(*) FROM sip_events").fetchall() == [(summary.parsed,)]
    root = layout.segments_root(tmp_path / "s.duckdb")
    assert _files(root) == ["sip_events/day=2026-11-20/000000000001.parquet"]
    # hive-partitioned, zstd: pyarrow (or Spark, Trino, DuckDB) reads it as it is, with the day as a column
    table = ds.dataset(root / "sip_events", format="parquet", partitioning="hive").to_table()
    assert table.num_rows == summary.parsed == 30_000
    assert {str(d) for d in table.column("day").to_pylist()} == {"2026-11-20"}
    meta = ds.dataset(root / "sip_events", format="parquet").get_fragments()
    assert all(rg.column(0).compression == "ZSTD" for f in meta for rg in
               [f.metadata.row_group(i) for i in range(f.metadata.num_row_groups)])


def test_a_failed_transaction_leaves_no_file_and_no_row_and_is_read_again(tmp_path: Path,
                                                                         formats: dict[str, Format],
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "sipproxy.log"
    write(log, sip_lines(40_000))
    db = tmp_path / "s.duckdb"
    root = layout.segments_root(db)

    def crash(*_a: object, **_k: object) -> None:  # after the segment was renamed, before the commit
        assert _files(root), "the segment is written before the position moves"
        raise OSError("disk gone")

    with Store(db) as store:
        with monkeypatch.context() as m:
            m.setattr(positions, "advance", crash)
            failed = Ingestor(store, formats).ingest(log, "vos3000-sipproxy")
        assert failed.error and "disk gone" in failed.error
        assert _files(root) == []
        assert store.con.execute("SELECT count(*) FROM sip_events").fetchall() == [(0,)]
        again = Ingestor(store, formats).ingest(log, "vos3000-sipproxy")
        assert again.parsed == 30_000
    con = open_read_only(db)
    assert con.execute("SELECT count(*), count(DISTINCT id) FROM sip_events").fetchall() == [(30_000, 30_000)]
    con.close()


def test_files_no_commit_recorded_are_removed_at_open_and_listed_ones_kept(tmp_path: Path,
                                                                           formats: dict[str, Format]) -> None:
    log = tmp_path / "sipproxy.log"
    write(log, sip_lines(200))
    db = tmp_path / "s.duckdb"
    with Store(db) as store:
        Ingestor(store, formats).ingest(log, "vos3000-sipproxy")
    root = layout.segments_root(db)
    kept = _files(root)
    assert len(kept) == 1
    # a crash between a segment's rename and its commit, and one during its write
    stray = root / "sip_events" / "day=2026-11-20" / "000000000099.parquet"
    stray.write_bytes((root / kept[0]).read_bytes())
    partial = root / "cdrs" / "day=2026-11-20" / "000000000100.parquet.tmp"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"PAR1 half")
    (root / "notes.txt").write_text("an operator's file", encoding="utf-8")
    Store(db).close()
    assert _files(root) == kept and not partial.exists()
    assert (root / "notes.txt").exists()  # only what fraudwatch writes is ever deleted
    con = open_read_only(db)
    assert con.execute("SELECT count(*) FROM sip_events").fetchall() == [(150,)]
    con.close()


def test_a_listed_segment_deleted_by_hand_is_dropped_with_an_error_not_a_broken_store(
        tmp_path: Path, formats: dict[str, Format], caplog: pytest.LogCaptureFixture) -> None:
    db = tmp_path / "s.duckdb"
    for day in (1, 2):
        log = tmp_path / f"d{day}.log"
        write(log, [line.replace("2026-11-20", f"2026-11-0{day}") for line in sip_lines(100)])
        with Store(db) as store:
            Ingestor(store, formats).ingest(log, "vos3000-sipproxy")
    root = layout.segments_root(db)
    (first,) = [f for f in _files(root) if "day=2026-11-01" in f]
    (root / first).unlink()
    with Store(db) as store:
        assert store.con.execute("SELECT count(*) FROM sip_events").fetchall() == [(75,)]
    assert "gone from" in caplog.text


def test_rows_of_several_days_go_to_their_days(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    with Store(db) as store:
        segs = store.segments
        day1, day2 = dt.datetime(2026, 11, 1, 23, 59, tzinfo=dt.UTC), dt.datetime(2026, 11, 2, 0, 1, tzinfo=dt.UTC)
        rows = pa.concat_tables([_rejects(15_000, day1), _rejects(15_000, day2, 15_001)])
        with segs.transaction():
            segs.append("rejects", rows)
        got = store.con.execute("SELECT day::VARCHAR, rows, max_id FROM segments ORDER BY seq").fetchall()
        assert got == [("2026-11-01", 15_000, 15_000), ("2026-11-02", 15_000, 30_000)]
        assert store.con.execute("SELECT min(ingested_at)::DATE::VARCHAR, count(*) FROM rejects GROUP BY "
                                 "ingested_at::DATE ORDER BY 1").fetchall() == [("2026-11-01", 15_000),
                                                                                ("2026-11-02", 15_000)]


def test_small_batches_wait_hot_then_flush_and_small_segments_merge_per_day(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    at = dt.datetime(2026, 11, 3, 12, tzinfo=dt.UTC)
    with Store(db) as store:
        segs = store.segments
        for i in range(6):
            with segs.transaction():
                segs.append("rejects", _rejects(100, at + dt.timedelta(minutes=i), 1 + 100 * i))
            assert store.con.execute("SELECT count(*) FROM hot_rejects").fetchall() == [(100,)]
            assert segs.flush_hot(max_age=3600) == 0  # young and few: they wait
            assert segs.flush_hot() == 100
        root = segs.root
        small = _files(root)
        assert len(small) == 6
        assert compaction.compact(segs, merge_at=4) == 1
        assert store.con.execute("SELECT rows FROM segments").fetchall() == [(600,)]
        assert len(_files(root)) == 7  # the merged files wait out their grace period for readers
        assert store.con.execute("SELECT count(*), count(DISTINCT id), min(id), max(id) FROM rejects").fetchall() \
            == [(600, 600, 1, 600)]
        compaction.empty_trash(segs, grace=0)
        assert len(_files(root)) == 1
        assert store.con.execute("SELECT count(*) FROM segment_trash").fetchall() == [(0,)]
        # the merged day file keeps the rows in their order
        times = store.con.execute("SELECT ingested_at FROM rejects").fetchall()
        assert times == sorted(times)


def test_the_feed_gives_committed_rows_once_and_never_rolled_back_ones(tmp_path: Path) -> None:
    at = dt.datetime(2026, 11, 3, 12, tzinfo=dt.UTC)
    with Store(tmp_path / "s.duckdb") as store:
        segs = store.segments
        segs.subscribe("rejects")
        with segs.transaction():
            segs.append("rejects", _rejects(10, at))
        with pytest.raises(RuntimeError), segs.transaction():
            segs.append("rejects", _rejects(25_000, at, 11))  # a segment file, then a failure
            raise RuntimeError("before the commit")
        assert _files(segs.root) == []
        got = segs.take("rejects")
        assert got is not None and got.num_rows == 10 and got.schema == arrow_schema("rejects")
        assert segs.take("rejects") is None
        assert segs.take("sip_events") is None  # not subscribed: nothing kept


def test_a_reader_in_another_process_reads_the_segments_while_the_writer_holds_the_store(
        tmp_path: Path, formats: dict[str, Format]) -> None:
    log = tmp_path / "sipproxy.log"
    write(log, sip_lines(400))
    db = tmp_path / "s.duckdb"
    code = ("import sys\nfrom fraudwatch.store.db import open_read_only\n"
            f"con = open_read_only(__import__('pathlib').Path({str(db)!r}))\n"
            "print(con.execute('SELECT count(*) FROM sip_events').fetchall()[0][0])\n")
    with Store(db) as store:
        Ingestor(store, formats).ingest(log, "vos3000-sipproxy")
        store.segments.flush_hot()
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
        assert run.returncode == 0, run.stderr
        assert run.stdout.strip() == "300"
        write(log, sip_lines(400, 400), "a")
        Ingestor(store, formats).ingest(log, "vos3000-sipproxy")
        store.segments.flush_hot()
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
        assert run.stdout.strip() == "600", run.stderr


def test_an_older_store_is_migrated_its_rows_moved_into_segments(tmp_path: Path) -> None:
    db = tmp_path / "old.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE schema_version (version INTEGER, applied_at TIMESTAMPTZ)")
    for version in sorted(v for v in MIGRATIONS if v < 6):
        for statement in MIGRATIONS[version]:
            con.execute(statement)
        con.execute("INSERT INTO schema_version VALUES (?, now())", [version])
    assert create_table_sql(TABLES["sip_events"]) in MIGRATIONS[1]
    con.execute("INSERT INTO sip_events (id, ts, source, event, src_ip) VALUES "
                "(1, '2026-10-01 10:00:00+00', 'old.log', 'request', '192.0.2.1'), "
                "(2, '2026-10-02 10:00:00+00', 'old.log', 'request', '192.0.2.2')")
    con.close()
    with Store(db) as store:
        assert store.con.execute("SELECT count(*) FROM hot_sip_events").fetchall() == [(0,)]
        assert store.con.execute("SELECT day::VARCHAR FROM segments ORDER BY day").fetchall() == \
            [("2026-10-01",), ("2026-10-02",)]
        assert store.con.execute("SELECT id, src_ip FROM sip_events ORDER BY id").fetchall() == \
            [(1, "192.0.2.1"), (2, "192.0.2.2")]
        assert segments.next_id(store.con, "sip_events") == 3


def test_a_long_backfill_merges_as_it_goes_so_views_stay_over_few_files(tmp_path: Path, formats: dict[str, Format],
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from fraudwatch.config import IngestConfig

    monkeypatch.setattr(segments, "DIRECT_ROWS", 100)  # every chunk a segment ...
    monkeypatch.setattr(compaction, "COMPACT_ABOVE", 12)  # ... and few of them allowed before merging
    monkeypatch.setattr(compaction, "MERGE_AT", 8)
    log = tmp_path / "sipproxy.log"
    write(log, sip_lines(20_000))
    with Store(tmp_path / "s.duckdb") as store:
        summary = Ingestor(store, formats, IngestConfig(chunk_bytes=32_768)).ingest(log, "vos3000-sipproxy")
        assert summary.error is None and summary.parsed == 15_000
        (listed,) = store.con.execute("SELECT count(*) FROM segments").fetchall()[0]
        assert listed < 12 + 8  # merged along the way (some 60 chunks were written)
        assert store.con.execute("SELECT count(*), count(DISTINCT id) FROM sip_events").fetchall() == \
            [(15_000, 15_000)]
        assert store.segments.files == listed


def test_segments_written_before_a_column_was_added_get_it_at_the_open_that_migrates(
        tmp_path: Path, formats: dict[str, Format]) -> None:
    """Schema 7 added `repaired` to the line tables. A store of schema 6 has segments without it; read by position
    behind them, a newer segment's `repaired` would be silently dropped (DuckDB takes the first file's columns)."""
    import pyarrow.parquet as pq

    db = tmp_path / "s.duckdb"
    log = tmp_path / "sipproxy.log"
    write(log, sip_lines(40_000))
    with Store(db) as store:
        Ingestor(store, formats).ingest(log, "vos3000-sipproxy")
    root = layout.segments_root(db)
    (old,) = root.glob("sip_events/*/*.parquet")
    # back to schema 6: the segment, the hot table and the version without the column
    pq.write_table(pq.read_table(old).drop_columns(["repaired"]), old)
    con = duckdb.connect(str(db))
    con.execute("ALTER TABLE hot_sip_events DROP COLUMN repaired")
    con.execute("DELETE FROM schema_version WHERE version = 7")
    con.execute("UPDATE segments SET created_at = created_at - INTERVAL 1 DAY")
    con.close()

    hostile = tmp_path / "hostile.log"
    hostile.write_bytes(b"".join(
        f'2026-11-21 04:00:{i % 60:02d}.000 [INFO] RECV REGISTER from 192.0.2.9:5060 user="\xff{i}" '
        f'callid="h{i}" ua="x"\n'.encode("latin-1") for i in range(30_000)))
    with Store(db) as store:
        assert pq.read_schema(old).names == list(TABLES["sip_events"].names)
        summary = Ingestor(store, formats).ingest(hostile, "vos3000-sipproxy")
        assert summary.parsed == 30_000
        assert store.con.execute("SELECT count(*) FROM segments WHERE tbl = 'sip_events'").fetchall() == [(2,)]
        assert store.con.execute("SELECT count(*), count(repaired), count(*) FILTER (WHERE repaired) "
                                 "FROM sip_events").fetchall() == [(60_000, 30_000, 30_000)]
    con = open_read_only(db)
    try:
        assert con.execute("SELECT count(*) FILTER (WHERE repaired) FROM sip_events").fetchall() == [(30_000,)]
    finally:
        con.close()
