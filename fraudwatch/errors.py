"""The error hierarchy. Every error a user can cause is a `FraudwatchError` with a one-line message.

The CLI prints `fraudwatch: <message>` and exits with the error's `exit_code`; nothing below the CLI prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Location:
    """Where in a user's file a problem is: the file, and the 1-based line when known."""

    path: Path | str
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.path}:{self.line}" if self.line else str(self.path)


class FraudwatchError(Exception):
    """A failure the user can act on; `str()` is one readable line."""

    exit_code = 1


class ConfigError(FraudwatchError):
    """Bad configuration, format or rule file: names the file, the line and the reason."""

    exit_code = 2

    def __init__(self, reason: str, where: Location | None = None) -> None:
        self.reason = reason
        self.where = where
        super().__init__(f"{where}: {reason}" if where else reason)


class UsageError(FraudwatchError):
    """The command line itself is wrong."""

    exit_code = 2


class StoreError(FraudwatchError):
    """The DuckDB store cannot be opened, migrated or queried."""

    exit_code = 3


class SourceError(FraudwatchError):
    """An input file or folder cannot be read."""

    exit_code = 4
