"""The commands: name, one-line help and the module that implements it, in the order `--help` lists them.

The top-level parser is built from this table alone; a command's module is imported only when that command is
chosen (see fraudwatch.cli.app), so `fraudwatch --help` imports none of them. Each module has
`add_arguments(name, parser, common)`, which gives the command's parser its description, options and actions,
and `run(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
from dataclasses import dataclass
from typing import Protocol, cast


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    module: str


COMMANDS = (
    Command("ingest", "backfill log files, CDR exports and folders", "fraudwatch.cli.ingest"),
    Command("formats", "list formats, or test one against a file", "fraudwatch.cli.formats"),
    Command("explain", "what each line of a file becomes and which rules it would fire (nothing stored)",
            "fraudwatch.cli.explain"),
    Command("sql", "run a read-only SQL query over the store", "fraudwatch.cli.store"),
    Command("detect", "replay stored events through the rules, on event time", "fraudwatch.cli.detect"),
    Command("alerts", "list or show alerts", "fraudwatch.cli.alerts"),
    Command("incidents", "list or show incidents (the alerts of one attack, joined)", "fraudwatch.cli.incidents"),
    Command("notify", "test the alert channels ([[alerts.channels]])", "fraudwatch.cli.notify"),
    Command("lint", "validate rule files (file, line and reason per error)", "fraudwatch.cli.detect"),
    Command("summary", "what is in the store, at a glance", "fraudwatch.cli.store"),
    Command("watch", "run as a service: tail every source, detect, act", "fraudwatch.cli.watch"),
    Command("status", "per source: lag, rate, counts; the store; the last alert", "fraudwatch.cli.watch"),
    Command("bans", "firewall bans: list, add, remove, flush, sync", "fraudwatch.cli.bans"),
    Command("simulate", "write realistic VOS3000 traffic with labelled attacks", "fraudwatch.cli.simulate"),
)
BY_NAME = {c.name: c for c in COMMANDS}


class CommandModule(Protocol):
    """What a command's module provides (fraudwatch.cli.ingest, ...)."""

    def add_arguments(self, name: str, parser: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
        """Give `parser`, the parser of command `name`, its description, options and actions; every parser it
        adds below takes `common` as a parent (--config and --db after the subcommand)."""

    def run(self, args: argparse.Namespace) -> int:
        """Do the command `args.command` and return the exit status."""


def load(name: str) -> CommandModule:
    """The module of command `name`, imported now."""
    return cast(CommandModule, importlib.import_module(BY_NAME[name].module))
