"""The command line: help, global options anywhere, one-line errors, read-only SQL, formats test."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from tests.conftest import Run
from tests.test_ingest import sip_lines, write


def test_help_lists_the_commands(cli: Callable[..., Run]) -> None:
    run = cli("--help")
    assert run.code == 0
    for cmd in ("ingest", "formats", "sql", "simulate", "--config", "--db"):
        assert cmd in run.out
    assert cli("ingest", "--help").code == 0


def test_global_options_before_and_after_the_subcommand(tmp_path: Path, cli: Callable[..., Run]) -> None:
    log = tmp_path / "sipproxy.log"
    write(log, sip_lines(8))
    before = cli("--db", tmp_path / "a.duckdb", "ingest", "--json", log)
    after = cli("ingest", "--json", log, "--db", tmp_path / "b.duckdb")
    assert before.code == after.code == 0
    assert json.loads(before.out)["files"][0]["parsed"] == json.loads(after.out)["files"][0]["parsed"] == 6
    assert (tmp_path / "a.duckdb").exists() and (tmp_path / "b.duckdb").exists()


def test_usage_errors_are_one_line_and_nonzero(tmp_path: Path, cli: Callable[..., Run]) -> None:
    for argv in (["ingest", "--format"], ["nosuch"], ["sql"], ["--db", tmp_path / "x.duckdb", "sql", "SELECT 1"],
                 ["ingest", "--format", "nope", tmp_path], ["--config", tmp_path / "missing.toml", "ingest"]):
        run = cli(*argv)
        assert run.code != 0, argv
        assert run.err.startswith("fraudwatch: ") and run.err.count("\n") == 1, (argv, run.err)
        assert "Traceback" not in run.err


def test_sql_is_read_only_and_prints_json(tmp_path: Path, cli: Callable[..., Run]) -> None:
    db = tmp_path / "s.duckdb"
    log = tmp_path / "sipproxy.log"
    write(log, sip_lines(20))
    assert cli("--db", db, "ingest", log).code == 0
    run = cli("--db", db, "sql", "SELECT event, count(*) AS n FROM sip_events GROUP BY event ORDER BY event", "--json")
    assert json.loads(run.out) == [{"event": "request", "n": 5}, {"event": "response", "n": 10}]
    bad = cli("--db", db, "sql", "DELETE FROM sip_events")
    assert bad.code != 0 and "read-only" in bad.err.lower()
    assert duckdb.connect(str(db), read_only=True).execute("SELECT count(*) FROM sip_events").fetchall() == [(15,)]
    table = cli("--db", db, "sql", "SELECT src_ip, ts FROM sip_events ORDER BY id LIMIT 1")
    assert "198.51.100.1" in table.out


def test_formats_list_and_test(tmp_path: Path, cli: Callable[..., Run]) -> None:
    listing = cli("formats", "list")
    assert listing.code == 0 and "vos3000-sipproxy" in listing.out and "vos3000-cdr" in listing.out
    log = tmp_path / "sipproxy.log"
    lines = sip_lines(12)
    lines.insert(3, "not a sipproxy line at all")
    write(log, lines)
    run = cli("formats", "test", log)
    assert run.code == 0
    assert "vos3000-sipproxy" in run.out and "4: " in run.out and "not a sipproxy line" in run.out
    as_json = [json.loads(line) for line in cli("formats", "test", log, "--json").out.splitlines()]
    assert len(as_json) == 13
    assert as_json[0]["matched"] and as_json[0]["pattern"] == "request"
    assert as_json[0]["fields"]["src_ip"] == "198.51.100.1" and as_json[0]["fields"]["method"] == "REGISTER"
    assert as_json[3] == {"line": 4, "matched": False, "pattern": None, "fields": {}, "reason": "no pattern matched"}
    assert as_json[2]["ignored"] is True


def test_ctrl_c_inside_duckdb_is_an_interruption_not_an_internal_error(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A Ctrl-C during the ingest's address check reaches Python inside a DuckDB query, which hands it back
    wrapped in its own error: one line, exit code 130, as a Ctrl-C anywhere else."""
    from fraudwatch.cli import app as cli_module
    from fraudwatch.errors import ExitStatus

    con = duckdb.connect()

    def interrupted(_value: str) -> str:
        raise KeyboardInterrupt

    con.create_function("interrupted", interrupted, ["VARCHAR"], "VARCHAR")

    def run(_argv: object) -> int:
        con.execute("SELECT interrupted('192.0.2.1')")
        return 0

    monkeypatch.setattr(cli_module, "run", run)
    assert cli_module.main(["ingest"]) == 130
    assert capsys.readouterr().err == "fraudwatch: interrupted\n"
    monkeypatch.setattr(cli_module, "run", lambda _argv: con.execute("SELECT no_such_function()"))
    assert cli_module.main(["ingest"]) == ExitStatus.INTERNAL  # other DuckDB errors stay internal
    assert "internal error" in capsys.readouterr().err
