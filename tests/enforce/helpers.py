"""Alerts and enforcers for the enforcement tests."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from collections.abc import Sequence
from pathlib import Path

import duckdb

from fraudwatch.detect.decide import Alert
from fraudwatch.enforce.backends.base import Runner

T0 = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)


def alert(id: int, key: str, *, action: str = "ban_ip", severity: str = "warning", rule: str = "sip-bruteforce",
          key_type: str = "ip", report_only: bool = False, trusted: bool = False) -> Alert:
    return Alert(id=id, rule=rule, severity=severity, key_type=key_type, key=key, first_seen=T0, last_seen=T0,
                 detected_at=T0, count=10, value=10.0, action=action, trusted=trusted, report_only=report_only,
                 description=f"{rule} from {key}")


class RecordingRunner(Runner):
    """Runs nothing: records every argv and stdin and answers like an empty firewall would."""

    def __init__(self, prefix: Sequence[str] = ()) -> None:
        super().__init__(prefix)
        self.log: list[tuple[tuple[str, ...], str | None]] = []

    def run(self, argv: Sequence[str], stdin: str | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        full = (*self.prefix, *argv)
        self.log.append((tuple(full), stdin))
        out = ""
        if "-j" in argv and "list" in argv:
            out = json.dumps({"nftables": []})
        elif argv[:3] == ["ip", "-j", "addr"] or tuple(argv[:3]) == ("ip", "-j", "addr"):
            out = "[]"
        return subprocess.CompletedProcess(list(full), 0, out, "")

    def text(self) -> str:
        return "\n".join(" ".join(a) + "\n" + (s or "") for a, s in self.log)


def store_con(path: Path) -> duckdb.DuckDBPyConnection:
    """The writer's connection on a fresh (migrated) store at `path`."""
    from fraudwatch.store.db import Store

    return Store(path).con
