"""What a new user meets first: a misspelt command gets a suggestion, errors carry the program's name once, read
commands never create a store, a file that is not a store says so, and `simulate` does not write over a used
folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Run


def _one_line(run: Run) -> str:
    assert run.err.count("\n") == 1 and run.err.startswith("fraudwatch: "), run.err
    assert not run.err.startswith(("fraudwatch: fraudwatch:", "fraudwatch: fraudwatch ")), run.err
    assert "Traceback" not in run.err
    return run.err.strip()


def test_a_misspelt_command_gets_a_suggestion(cli: Callable[..., Run]) -> None:
    run = cli("injest")
    assert run.code == 2
    assert _one_line(run) == "fraudwatch: unknown command 'injest' (did you mean 'ingest'?)"
    sub = cli("alerts", "lst")
    assert sub.code == 2 and _one_line(sub) == "fraudwatch: alerts: unknown action 'lst' (did you mean 'list'?)"
    choice = cli("alerts", "list", "--severity", "critcal")
    assert choice.code == 2 and "did you mean 'critical'?" in _one_line(choice)
    nothing_close = cli("zzzz")
    assert nothing_close.code == 2 and "one of: ingest, formats" in _one_line(nothing_close)


@pytest.mark.parametrize("argv", [["injest"], ["--bogus"], ["alerts", "list", "--bogus"], ["ingest", "--format"],
                                  ["bans", "add"], ["alerts", "show", "x"]])
def test_usage_errors_name_the_program_once(argv: list[str], cli: Callable[..., Run]) -> None:
    run = cli(*argv)
    assert run.code == 2
    _one_line(run)


READ_COMMANDS = [["detect"], ["detect", "--dry-run"], ["bans", "list"], ["bans", "sync"], ["alerts", "list"],
                 ["alerts", "show", "1"], ["alerts", "silences"], ["alerts", "outbox"], ["summary"],
                 ["sql", "SELECT 1"]]


@pytest.mark.parametrize("argv", READ_COMMANDS, ids=" ".join)
def test_read_commands_never_create_a_store(argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            cli: Callable[..., Run]) -> None:
    monkeypatch.chdir(tmp_path)  # no ./fraudwatch.toml: the default store is ./fraudwatch.duckdb
    run = cli(*argv)
    assert run.code == 3 and run.out == ""
    assert _one_line(run) == ("fraudwatch: fraudwatch.duckdb: no store here (run `fraudwatch ingest` to create one, "
                              "or give --config or --db)")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv", READ_COMMANDS, ids=" ".join)
def test_a_file_that_is_not_a_store_says_so(argv: list[str], tmp_path: Path, cli: Callable[..., Run]) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("start,end,kind\n2026-11-01T00:00:00Z,2026-11-01T01:00:00Z,register-flood\n", encoding="utf-8")
    before = labels.read_bytes()
    run = cli("--db", labels, *argv)
    assert run.code == 3
    assert _one_line(run) == f"fraudwatch: {labels} is not a fraudwatch store (not a DuckDB database file)"
    assert labels.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["labels.csv"]


def test_another_programs_duckdb_file_is_left_alone(tmp_path: Path, cli: Callable[..., Run]) -> None:
    import duckdb

    other = tmp_path / "analytics.duckdb"
    with duckdb.connect(str(other)) as con:
        con.execute("CREATE TABLE revenue (day DATE, amount DOUBLE)")
    log = tmp_path / "x.log"
    log.write_text("", encoding="utf-8")
    for argv in (["summary"], ["detect"], ["ingest", "--format", "vos3000-sipproxy", log]):
        run = cli("--db", other, *argv)
        assert run.code == 3, (argv, run)
        assert _one_line(run) == (f"fraudwatch: {other} is not a fraudwatch store (a DuckDB database without "
                                  "fraudwatch's tables)")
    with duckdb.connect(str(other), read_only=True) as con:
        assert con.execute("SELECT table_name FROM information_schema.tables").fetchall() == [("revenue",)]
