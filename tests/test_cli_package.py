"""The CLI package's shape: `--help` imports no command module, every command's module builds its parser,
command modules import none of each other (no stage imports the CLI: the layer contract, `make lint`), exit
statuses agree with the errors', and `--since`/`--until` read times and ages."""

from __future__ import annotations

import ast
import datetime as dt
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from fraudwatch.cli.app import build_parser
from fraudwatch.cli.context import parse_time
from fraudwatch.cli.registry import COMMANDS, Command, load
from fraudwatch.errors import ExitStatus, UsageError
from tests.conftest import ROOT, Run

PACKAGE = ROOT / "fraudwatch"
COMMAND_MODULES = sorted({c.module for c in COMMANDS})
SHARED = {"fraudwatch.cli.output", "fraudwatch.cli.context"}  # what command modules may use


MODULES_AFTER = ("import sys\nfrom fraudwatch.cli import main\ncode = main(sys.argv[1:])\n"
                 "print('\\n'.join(sys.modules), file=sys.stderr)\nsys.exit(code)")


def _imported(*argv: str) -> set[str]:
    """The modules imported once `fraudwatch ARGV` ran in a fresh interpreter, after checking it exits 0."""
    proc = subprocess.run([sys.executable, "-c", MODULES_AFTER, *argv], capture_output=True, text=True, cwd=ROOT,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "usage: fraudwatch" in proc.stdout
    return set(proc.stderr.splitlines())


def test_python_m_fraudwatch_runs_the_program() -> None:
    proc = subprocess.run([sys.executable, "-m", "fraudwatch", "--version"], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("fraudwatch "), proc


def test_top_level_help_imports_no_command_module() -> None:
    modules = _imported("--help")
    assert "fraudwatch.cli.app" in modules
    heavy = {m for m in modules if m in COMMAND_MODULES or m.split(".")[0] in ("rich", "duckdb", "polars", "pyarrow")
             or m in ("fraudwatch.config", "fraudwatch.cli.output", "fraudwatch.cli.context")}
    assert not heavy


def test_a_command_imports_its_own_module_only() -> None:
    modules = _imported("sql", "--help")
    assert {m for m in modules if m in COMMAND_MODULES} == {"fraudwatch.cli.store"}


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.name)
def test_every_command_module_builds_its_parser(command: Command, cli: Callable[..., Run]) -> None:
    module = load(command.name)
    assert callable(module.add_arguments) and callable(module.run)
    run = cli(command.name, "--help")
    assert run.code == 0 and run.out.startswith(f"usage: fraudwatch {command.name} "), run


def test_the_full_parser_has_every_command_with_its_options() -> None:
    parser = build_parser(full=True)
    sub = next(a for a in parser._actions if a.dest == "command")
    assert list(sub.choices or {}) == [c.name for c in COMMANDS]
    args = parser.parse_args(["alerts", "list", "--since", "24h", "--db", "x.duckdb"])
    assert (args.command, args.alerts_command, args.since, str(args.db)) == ("alerts", "list", "24h", "x.duckdb")


def _imports(path: Path) -> set[str]:
    """The modules `path` imports by name (`from fraudwatch.cli import x` counts as fraudwatch.cli.x)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            if node.module == "fraudwatch.cli":
                names.update(f"fraudwatch.cli.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_command_modules_import_only_the_shared_cli_modules() -> None:
    for module in COMMAND_MODULES:
        path = PACKAGE / "cli" / f"{module.rsplit('.', 1)[1]}.py"
        cli_imports = {n for n in _imports(path) if n.startswith("fraudwatch.cli")}
        assert cli_imports <= SHARED, (module, cli_imports - SHARED)


def test_exit_statuses_agree_with_the_errors() -> None:
    from fraudwatch.enforce.backends.base import FirewallError
    from fraudwatch.enforce.results import BanRefused, NotBanned
    from fraudwatch.errors import ConfigError, FraudwatchError, SourceError, StoreError, UsageError

    assert [FraudwatchError.exit_code, ConfigError.exit_code, UsageError.exit_code, StoreError.exit_code,
            SourceError.exit_code, FirewallError.exit_code, BanRefused.exit_code, NotBanned.exit_code] == [
        ExitStatus.FAILED, ExitStatus.USAGE, ExitStatus.USAGE, ExitStatus.STORE, ExitStatus.INPUT,
        ExitStatus.FIREWALL, ExitStatus.REFUSED, ExitStatus.FAILED]
    assert [int(s) for s in ExitStatus] == [0, 1, 2, 3, 4, 5, 6, 70, 130]


@pytest.mark.parametrize(("text", "ago"), [("30m", 1800), ("24h", 86400), ("7d", 7 * 86400), ("1w", 604800),
                                            ("90s", 90)])
def test_an_age_is_a_duration_before_now(text: str, ago: int) -> None:
    now = dt.datetime(2026, 11, 20, 3, 0, tzinfo=dt.UTC)
    assert parse_time(text, now) == now - dt.timedelta(seconds=ago)


@pytest.mark.parametrize("text", ["30", "soon", "-1h", "2026-13-01"])
def test_what_is_neither_a_time_nor_an_age_is_refused(text: str) -> None:
    with pytest.raises(UsageError, match="is not a time"):
        parse_time(text)


def test_a_time_without_a_zone_is_utc() -> None:
    assert parse_time("2026-11-20") == dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
    assert parse_time("2026-11-20T03:00+08:00") == dt.datetime(2026, 11, 19, 19, 0, tzinfo=dt.UTC)
