"""The `fraudwatch` command: parses arguments, calls the command's module, maps errors to one line and an exit
status.

`--config`, `--db` and `--display-timezone` are global and accepted before or after the subcommand. The
top-level parser knows the commands from fraudwatch.cli.registry only; a command's options are added when it is
chosen, so `--help` and every command import just the code they run.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fraudwatch import __version__, tuning
from fraudwatch.cli.registry import COMMANDS, load
from fraudwatch.cli.terminal import safe
from fraudwatch.errors import ExitStatus, FraudwatchError, UsageError


class _Parser(argparse.ArgumentParser):
    built = False  # a command's parser: its module has added its options

    def _where(self) -> str:
        """The command this parser reads, without the program's name (`main` prefixes every error with it):
        '' for the top level, 'alerts list: ' below it."""
        words = self.prog.split()[1:]
        return f"{' '.join(words)}: " if words else ""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self._where()}{message} (see {self.prog} --help)")

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        """A choice that is not one: say what was meant when a choice is close (`injest` -> `ingest`)."""
        choices = action.choices
        if choices is None or value in choices:
            return
        names = [str(c) for c in choices]
        close = difflib.get_close_matches(str(value), names, n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else f" (one of: {', '.join(names)})"
        if isinstance(action, argparse._SubParsersAction):
            what = "command" if self._where() == "" else "action"
            raise UsageError(f"{self._where()}unknown {what} '{value}'{hint}")
        option = action.option_strings[0] if action.option_strings else action.metavar or action.dest
        raise UsageError(f"{self._where()}{option}: '{value}' is not a choice{hint}")


class _Commands(argparse._SubParsersAction):  # type: ignore[type-arg]
    """The COMMAND argument: the chosen command's parser gets its options just before it parses the rest."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: str | Sequence[Any] | None, option_string: str | None = None) -> None:
        assert isinstance(values, list) and values
        _build(values[0], self._name_parser_map[values[0]])
        super().__call__(parser, namespace, values, option_string)


def _globals(p: argparse.ArgumentParser, suppress: bool) -> None:
    default = argparse.SUPPRESS if suppress else None
    p.add_argument("--config", type=Path, default=default, metavar="FILE",
                   help="config file (default: ./fraudwatch.toml, then /etc/fraudwatch/fraudwatch.toml)")
    p.add_argument("--db", type=Path, default=default, metavar="PATH", help="store file (overrides [store] path)")
    p.add_argument("--display-timezone", default=default, metavar="ZONE",
                   help="show times in this zone: Europe/London, UTC, local (default: $FRAUDWATCH_DISPLAY_TIMEZONE, "
                        "then [display] timezone, then UTC)")


def _common() -> _Parser:
    """The parent of every command's parser: the global options, defaults suppressed so that given after the
    subcommand they override, and not given they do not reset what was given before it."""
    common = _Parser(add_help=False)
    _globals(common, suppress=True)
    return common


def _build(name: str, parser: argparse.ArgumentParser) -> None:
    if isinstance(parser, _Parser) and not parser.built:
        load(name).add_arguments(name, parser, _common())
        parser.built = True


def build_parser(full: bool = False) -> argparse.ArgumentParser:
    """The top-level parser; with `full`, every command's options are added now rather than when it is chosen."""
    parser = _Parser(prog="fraudwatch", description=(
        "Fraud and attack detection for VoIP softswitches (VOS3000 first): ingest SIP logs, kernel firewall "
        "logs and CDRs into DuckDB, and query them."),
        epilog="Run `fraudwatch COMMAND --help` for a command's options.")
    parser.add_argument("--version", action="version", version=f"fraudwatch {__version__}")
    _globals(parser, suppress=False)
    common = _common()
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser, action=_Commands)
    for command in COMMANDS:
        p = sub.add_parser(command.name, parents=[common], help=command.help)
        if full:
            _build(command.name, p)
    return parser


def _chosen(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The parser of the command (and action) `args` chose: `fraudwatch alerts list`'s for `alerts list ...`."""
    while True:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        name = getattr(args, subs[0].dest, None) if subs else None
        if name is None or name not in subs[0].choices:
            return parser
        parser = subs[0].choices[name]


def _unrecognized(parser: argparse.ArgumentParser, args: argparse.Namespace, extra: list[str]) -> UsageError:
    """What is left over, said by the command it was given to, with the option it was closest to."""
    chosen = _chosen(parser, args)
    where = " ".join(chosen.prog.split()[1:])
    options = [o for a in chosen._actions for o in a.option_strings]
    hint = ""
    first = extra[0].split("=", 1)[0]
    if first.startswith("-"):
        close = difflib.get_close_matches(first, options, n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
    what = f"unrecognized argument '{extra[0]}'" if len(extra) == 1 else f"unrecognized arguments: {' '.join(extra)}"
    return UsageError(f"{where + ': ' if where else ''}{what}{hint} (see {chosen.prog} --help)")


def run(argv: Sequence[str]) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        raise _unrecognized(parser, args, extra)
    if args.command is None:
        parser.print_help()
        return ExitStatus.USAGE
    return load(args.command).run(args)


def _interrupted(exc: Exception) -> bool:
    """Ctrl-C that reached DuckDB: its own interruption, or the KeyboardInterrupt of a Python function it was
    calling (the ingest's address check), which it hands back wrapped in an error of its own."""
    duckdb = sys.modules.get("duckdb")
    if duckdb is not None and isinstance(exc, duckdb.InterruptException):
        return True
    return "Python exception occurred while executing the UDF: KeyboardInterrupt" in str(exc)


def program() -> int:
    """The `fraudwatch` program (`python -m fraudwatch`, the installed command): `main`, then a quick exit.

    The heap is frozen before the exit, so that the interpreter's collections at exit do not walk every object
    the command made (figures: benchmarks/RESULTS.md, "Runtime tuning: frozen heap at exit"). Only for a process
    about to end, so not in `main`, which tests call in their own process."""
    code = main()
    tuning.freeze_before_exit()
    return code


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return run(sys.argv[1:] if argv is None else argv)
    except FraudwatchError as exc:
        print(f"fraudwatch: {safe(str(exc))}", file=sys.stderr)  # messages quote input: one safe line
        return exc.exit_code
    except SystemExit as exc:  # --help and --version end here
        return exc.code if isinstance(exc.code, int) else ExitStatus.OK
    except KeyboardInterrupt:
        print("fraudwatch: interrupted", file=sys.stderr)
        return ExitStatus.INTERRUPTED
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return ExitStatus.FAILED
    except Exception as exc:  # the last line of defence: one line, never a traceback (unless asked)
        if _interrupted(exc):
            print("fraudwatch: interrupted", file=sys.stderr)
            return ExitStatus.INTERRUPTED
        if os.environ.get("FRAUDWATCH_DEBUG"):
            raise
        from fraudwatch.store.failures import classify

        duckdb = sys.modules.get("duckdb")
        from_store = isinstance(exc, OSError) or (duckdb is not None and isinstance(exc, duckdb.Error))
        known = classify(exc, None) if from_store else None  # outside a command's own handling (the watcher's loop)
        if known is not None:
            print(f"fraudwatch: {known}", file=sys.stderr)
            return known.exit_code
        detail = json.dumps(str(exc).splitlines()[0] if str(exc) else "")[1:-1]
        print(f"fraudwatch: internal error: {type(exc).__name__}: {detail} "
              "(set FRAUDWATCH_DEBUG=1 for the traceback)", file=sys.stderr)
        return ExitStatus.INTERNAL
