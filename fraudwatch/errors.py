"""The error hierarchy. Every error a user can cause is a `FraudwatchError` with a one-line message.

The CLI prints `fraudwatch: <message>` and exits with the error's `exit_code`; nothing below the CLI prints.
The exit statuses are defined here, once, so that every layer's errors and the CLI share them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path


class ExitStatus(enum.IntEnum):
    """The exit statuses of the `fraudwatch` command, as README documents them."""

    OK = 0
    FAILED = 1  # a file failed (the others were still read), or nothing to remove
    USAGE = 2  # the command line or the configuration
    STORE = 3
    INPUT = 4
    FIREWALL = 5
    REFUSED = 6  # a ban on a trusted or allowlisted address
    INTERNAL = 70  # a bug: one line, the traceback with FRAUDWATCH_DEBUG=1
    INTERRUPTED = 130  # Ctrl-C


@dataclass(frozen=True)
class Location:
    """Where in a user's file a problem is: the file, and the 1-based line when known."""

    path: Path | str
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.path}:{self.line}" if self.line else str(self.path)


class FraudwatchError(Exception):
    """A failure the user can act on; `str()` is one readable line."""

    exit_code: int = ExitStatus.FAILED


class ConfigError(FraudwatchError):
    """Bad configuration, format or rule file: names the file, the line and the reason."""

    exit_code: int = ExitStatus.USAGE

    def __init__(self, reason: str, where: Location | None = None) -> None:
        self.reason = reason
        self.where = where
        super().__init__(f"{where}: {reason}" if where else reason)


class UsageError(FraudwatchError):
    """The command line itself is wrong."""

    exit_code: int = ExitStatus.USAGE


class StoreError(FraudwatchError):
    """The DuckDB store cannot be opened, migrated or queried."""

    exit_code: int = ExitStatus.STORE


class SourceError(FraudwatchError):
    """An input file or folder cannot be read."""

    exit_code: int = ExitStatus.INPUT
