"""`alerts show` after logrotate: an evidence line is the line that was read, found in the rotated file that now
holds it (renamed or compressed), and never a line of the new file that took its name."""

from __future__ import annotations

import gzip
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.conftest import ROOT, Run

SAMPLE = ROOT / "data-samples" / "vos3000-3d" / "sipproxy.log"
LINES = 3000  # the sample's first lines: an OPTIONS scanner and more, all on 2026-11-01
SHOWN = 3  # alerts looked at (each `alerts show` is a command run)


@pytest.fixture
def rotated(tmp_path: Path, cli: Callable[..., Run]) -> tuple[Path, Path, dict[int, list[tuple[int, str]]]]:
    """A store with alerts on a log, and what each alert's evidence lines said, before any rotation."""
    log = tmp_path / "log" / "sipproxy.log"
    log.parent.mkdir()
    _head_lines(SAMPLE, log, LINES)
    db = tmp_path / "store.duckdb"
    assert cli("--db", db, "ingest", "--format", "vos3000-sipproxy", log).code == 0
    assert cli("--db", db, "detect").code == 0
    lines = log.read_bytes().split(b"\n")
    expected: dict[int, list[tuple[int, str]]] = {}
    for alert in json.loads(cli("--db", db, "alerts", "list", "--json").out):
        pointers = alert["evidence"].get("lines") or []
        if pointers and len(expected) < SHOWN:
            expected[alert["id"]] = [(n, lines[n - 1].decode()) for _, n, _ in pointers]
    assert expected, "the sample's first lines should raise alerts with evidence lines"
    return db, log, expected


def _show(cli: Callable[..., Run], db: Path, alert_id: int) -> list[dict[str, Any]]:
    r = cli("--db", db, "alerts", "show", str(alert_id), "--json")
    assert r.code == 0, r.err
    return list(json.loads(r.out)["raw_lines"])


def _new_file_same_shape(old: Path, new: Path) -> None:
    """A new log in the old one's place whose lines sit at the very same offsets and line numbers, and say
    almost the same: the next day's traffic from the same peers (only the date differs)."""
    new.write_bytes(old.read_bytes().replace(b"2026-11-01 ", b"2026-11-02 "))


def test_after_rename_rotation_lines_come_from_the_rotated_file(rotated: Any, cli: Callable[..., Run]) -> None:
    db, log, expected = rotated
    rotated_copy = log.with_name("sipproxy.log.1")
    log.rename(rotated_copy)
    _new_file_same_shape(rotated_copy, log)
    for alert_id, want in expected.items():
        got = _show(cli, db, alert_id)
        assert [(g["line_no"], g["text"]) for g in got] == want
        assert all(g["found_in"] == str(rotated_copy) for g in got)
    text = cli("--db", db, "alerts", "show", str(next(i for i, w in expected.items() if w))).out
    assert "2026-11-02" not in text  # never the new file's line
    assert "now in" in text and "sipproxy.log.1" in text


def test_after_compression_lines_come_from_the_gz(rotated: Any, cli: Callable[..., Run]) -> None:
    db, log, expected = rotated
    gz = log.with_name("sipproxy.log.1.gz")
    with log.open("rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    _new_file_same_shape(log, log.with_name("tmp"))
    log.with_name("tmp").replace(log)  # the new file under the old name; the old one only compressed
    for alert_id, want in expected.items():
        got = _show(cli, db, alert_id)
        assert [(g["line_no"], g["text"]) for g in got] == want
        assert all(g["found_in"] == str(gz) for g in got)


def test_gone_is_said_plainly_and_no_other_line_is_shown(rotated: Any, cli: Callable[..., Run]) -> None:
    db, log, expected = rotated
    _new_file_same_shape(log, log.with_name("tmp"))
    log.with_name("tmp").replace(log)  # rotated away and deleted: only the new file has the name
    alert_id = next(i for i, w in expected.items() if w)
    got = _show(cli, db, alert_id)
    assert got and all(g["text"] is None and g["found_in"] is None for g in got)
    assert all("not found" in g["note"] and "sipproxy.log" in g["note"] for g in got)
    shown = cli("--db", db, "alerts", "show", str(alert_id)).out
    assert "2026-11-02" not in shown
    assert "not found" in shown


def test_unrotated_lines_are_read_in_place(rotated: Any, cli: Callable[..., Run]) -> None:
    db, log, expected = rotated
    for alert_id, want in expected.items():
        got = _show(cli, db, alert_id)
        assert [(g["line_no"], g["text"]) for g in got] == want
        assert all(g["found_in"] == str(log) for g in got)


def test_copytruncate_then_regrown_file_is_not_mistaken(rotated: Any, cli: Callable[..., Run]) -> None:
    """copytruncate: the copy holds the lines; the original name is truncated and written again."""
    db, log, expected = rotated
    shutil.copyfile(log, log.with_name("sipproxy.log-20261102"))
    _new_file_same_shape(log, log)  # truncated and regrown with the next day's lines, same shape
    for alert_id, want in expected.items():
        got = _show(cli, db, alert_id)
        assert [(g["line_no"], g["text"]) for g in got] == want
        assert all(g["found_in"] == str(log.with_name("sipproxy.log-20261102")) for g in got)


def test_zoned_and_year_less_lines_are_recognised(tmp_path: Path, cli: Callable[..., Run]) -> None:
    """The content check reads a line's time as its source's zone says, and a syslog time without a year in the
    stored event's year: every rule's lines are still found in place."""
    shutil.copy(SAMPLE.with_name("kern.log"), tmp_path / "kern.log")
    _head_lines(SAMPLE, tmp_path / "sipproxy.log", LINES)
    (tmp_path / "fraudwatch.toml").write_text(
        '[store]\npath = "s.duckdb"\n'
        '[[sources]]\npath = "sipproxy.log"\nformat = "vos3000-sipproxy"\ntimezone = "Asia/Shanghai"\n'
        '[[sources]]\npath = "kern.log"\nformat = "linux-netfilter"\ntimezone = "America/New_York"\n')
    config = tmp_path / "fraudwatch.toml"
    assert cli("--config", config, "ingest").code == 0
    assert cli("--config", config, "detect").code == 0
    first: dict[str, dict[str, Any]] = {}
    for alert in json.loads(cli("--config", config, "alerts", "list", "--json").out):
        if alert["evidence"].get("lines"):
            first.setdefault(alert["rule"], alert)
    assert {"netfilter-drops-ip", "options-probe-ip"} <= set(first)
    for alert in first.values():
        r = cli("--config", config, "alerts", "show", str(alert["id"]), "--json")
        for line in json.loads(r.out)["raw_lines"]:
            path = Path(line["source"])
            assert line["found_in"] == str(path), line
            assert line["text"] == path.read_text().splitlines()[line["line_no"] - 1]


def _head_lines(src: Path, dst: Path, lines: int) -> Path:
    with src.open("rb") as f:
        dst.write_bytes(b"".join(f.readline() for _ in range(lines)))
    return dst


def test_cdr_rows_after_rotation_come_from_the_rotated_export(tmp_path: Path, cli: Callable[..., Run]) -> None:
    """A CSV row is pointed at by line number alone: the rotated copy holding its flowno is the one shown."""
    cdr = SAMPLE.with_name("cdr")
    export = tmp_path / "e_cdr.csv"
    shutil.copy(cdr / "e_cdr_20261101.csv", export)
    db = tmp_path / "store.duckdb"
    assert cli("--db", db, "ingest", "--format", "vos3000-cdr", export).code == 0
    assert cli("--db", db, "detect").code == 0
    alert = next(a for a in json.loads(cli("--db", db, "alerts", "list", "--json").out) if a["evidence"].get("lines"))
    rows = export.read_text().splitlines()
    want = [(n, rows[n - 1]) for _, n, _ in alert["evidence"]["lines"]]
    export.rename(tmp_path / "e_cdr.csv.1")
    shutil.copy(cdr / "e_cdr_20261102.csv", export)  # the next export under the same name
    got = _show(cli, db, alert["id"])
    assert [(g["line_no"], g["text"]) for g in got] == want
    assert all(g["found_in"] == str(tmp_path / "e_cdr.csv.1") for g in got)


def test_pointers_without_offsets_are_checked_by_line(rotated: Any, cli: Callable[..., Run]) -> None:
    """An alert saved before pointers carried offsets ([source, line]) is still checked, and found by line."""
    db, log, expected = rotated
    con = duckdb.connect(str(db))
    try:
        for alert_id in expected:
            (evidence,) = con.execute("SELECT evidence FROM alerts WHERE id = ?", [alert_id]).fetchone() or ("",)
            ev = json.loads(evidence)
            ev["lines"] = [p[:2] for p in ev["lines"]]
            con.execute("UPDATE alerts SET evidence = ? WHERE id = ?", [json.dumps(ev), alert_id])
    finally:
        con.close()
    rotated_copy = log.with_name("sipproxy.log.1")
    log.rename(rotated_copy)
    _new_file_same_shape(rotated_copy, log)
    for alert_id, want in expected.items():
        got = _show(cli, db, alert_id)
        assert [(g["line_no"], g["text"]) for g in got] == want
        assert all(g["found_in"] == str(rotated_copy) for g in got)
