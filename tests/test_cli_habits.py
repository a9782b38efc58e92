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


def test_an_unknown_option_is_said_by_its_command_with_a_suggestion(cli: Callable[..., Run]) -> None:
    run = cli("alerts", "list", "--severty", "critical")
    assert run.code == 2
    assert _one_line(run) == ("fraudwatch: alerts list: unrecognized arguments: --severty critical (did you mean "
                              "'--severity'?) (see fraudwatch alerts list --help)")
    one = cli("ingest", "--fromat", "vos3000-cdr")
    assert one.code == 2 and "ingest: unrecognized argument '--fromat' (did you mean '--format'?)" in _one_line(one)


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


def test_simulate_refuses_a_used_folder_and_force_replaces_only_a_simulation(tmp_path: Path,
                                                                              cli: Callable[..., Run]) -> None:
    out = tmp_path / "sim"
    first = cli("simulate", "--out", out, "--days", "2", "--accounts", "5", "--seed", "3")
    assert first.code == 0, first.err
    assert cli("--config", out / "fraudwatch.toml", "ingest", "--quiet").code == 0
    assert (out / "fraudwatch.duckdb").exists()
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and "fraudwatch.duckdb" not in str(p)}

    again = cli("simulate", "--out", out, "--days", "1", "--accounts", "5", "--seed", "4", "--start", "2026-12-01")
    assert again.code == 2 and "not empty" in _one_line(again) and "--force" in again.err
    assert {p: p.read_bytes() for p in before} == before  # nothing touched

    forced = cli("simulate", "--out", out, "--days", "1", "--accounts", "5", "--seed", "4", "--start", "2026-12-01",
                 "--force")
    assert forced.code == 0, forced.err
    assert "removed the earlier simulation" in forced.out
    assert sorted(p.name for p in (out / "cdr").iterdir()) == ["e_cdr_20261201.csv"]  # no day of the first one
    assert not (out / "fraudwatch.duckdb").exists() and not (out / "fraudwatch.duckdb.segments").exists()

    (out / "notes.txt").write_text("mine\n", encoding="utf-8")
    kept = sorted(p.relative_to(out) for p in out.rglob("*"))
    refused = cli("simulate", "--out", out, "--days", "1", "--accounts", "5", "--force")
    assert refused.code == 2 and "also holds notes.txt" in _one_line(refused)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == kept  # unsure: nothing removed

    (out / "notes.txt").unlink()
    (out / "fraudwatch.toml").write_text('[store]\npath = "/var/lib/fraudwatch/prod.duckdb"\n', encoding="utf-8")
    edited = cli("simulate", "--out", out, "--days", "1", "--accounts", "5", "--force")
    assert edited.code == 2 and "fraudwatch.toml (not the one a simulation writes)" in edited.err

    assert cli("simulate", "--out", tmp_path / "new", "--days", "1", "--accounts", "5").code == 0
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli("simulate", "--out", empty, "--days", "1", "--accounts", "5").code == 0
