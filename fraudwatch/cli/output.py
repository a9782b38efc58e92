"""What commands print: the console for people, text and table cells made safe, JSON for scripts, and the alert
views that `detect` and `alerts` share.

Every value we print passes through `plain` (or `text`, `cell`, `print_json`), which replaces what a terminal would
act on (`fraudwatch.cli.terminal`). rich's own markup (`[red]`) and emoji codes (`:x:`) are never read in data:
`text` escapes markup, `cell` gives rich a `Text` (never parsed), and our consoles have emoji off.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from fraudwatch.cli.terminal import SafeFormatter as SafeFormatter  # for `watch`'s log (commands import output only)
from fraudwatch.cli.terminal import safe, safe_json
from fraudwatch.jsontext import dumps
from fraudwatch.store.schema import ALERTS

# JSON alert objects: the alerts table's columns, less the long or internal ones (evidence is added parsed)
ALERT_COLUMNS = tuple(n for n in ALERTS.names if n not in ("description", "evidence", "updates", "updated_at"))


def out(soft_wrap: bool = False) -> Console:
    """Stdout for people; wide enough for the tables when it is a pipe or a file. No emoji codes, no
    highlighting: only our own markup styles anything."""
    return Console(soft_wrap=soft_wrap, highlight=False, emoji=False,
                   width=None if sys.stdout.isatty() else 160)


def print_json(value: object) -> None:
    """`value` on stdout as one JSON text, as the store's values are spelt everywhere (fraudwatch.jsontext), with
    no character a terminal would act on."""
    print(safe_json(dumps(value)))


def plain(value: object) -> str:
    """A value as text for people, every control character replaced by a visible escape: for `print`."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S%z")
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return safe(str(value))


def text(value: object) -> str:
    """`plain(value)` with rich markup escaped: for data inside a string that rich reads as markup."""
    return escape(plain(value))


def cell(value: object) -> Text:
    """A table cell (or a column's name): shown literally, never read as markup or emoji."""
    return Text(plain(value))


def alert_json(row: dict[str, Any]) -> dict[str, Any]:
    """An alert row (the store's, or `Alert.as_row()`) as its JSON object, evidence parsed."""
    obj = {k: row[k] for k in ALERT_COLUMNS if k in row}
    evidence = row.get("evidence")
    obj["evidence"] = json.loads(evidence) if isinstance(evidence, str) else evidence
    return obj


def print_alerts(rows: list[dict[str, Any]]) -> None:
    """Alert rows as one table, one line each."""
    table = Table()
    for col in ("id", "severity", "rule", "key", "first seen", "detected", "count", "action"):
        table.add_column(col, overflow="fold")
    for r in rows:
        sev = "[bold red]critical[/]" if r["severity"] == "critical" else "[yellow]warning[/]"
        action = r["action"] + (" (trusted)" if r.get("trusted") else "") + (" (report-only)"
                                                                            if r.get("report_only") else "")
        table.add_row(str(r["id"]), sev, text(r["rule"]), f"{text(r['key_type'])} {text(r['key'])}",
                      cell(r["first_seen"]), cell(r["detected_at"]), f"{r['count']:,}", text(action))
    out().print(table)
