"""What commands print: the console for people, text and table cells made safe, times in the display zone, tables
that fit the terminal, JSON for scripts, and the alert views that `detect` and `alerts` share.

Every value we print passes through `plain` (or `text`, `cell`, `print_json`), which replaces what a terminal would
act on (`fraudwatch.cli.terminal`). rich's own markup (`[red]`) and emoji codes (`:x:`) are never read in data:
`text` escapes markup, `cell` gives rich a `Text` (never parsed), and our consoles have emoji off.

Times for people are shown in one zone, with its abbreviation after every time (`2026-11-02 16:12:44 GMT`):
UTC unless `[display] timezone`, FRAUDWATCH_DISPLAY_TIMEZONE or `--display-timezone` says otherwise
(`use_zone`). JSON keeps the store's UTC ISO times: scripts compare them, people read the tables.

Tables (`table`) keep addresses, rule ids, keys and numbers whole on one line however narrow the terminal (80
columns is the narrowest we design for): the other columns fold, and the alert list stacks rule over key and
severity over action below 160 columns.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import os
import sys
import zoneinfo
from collections.abc import Collection, Sequence
from typing import Any

from rich import box
from rich.console import Console, JustifyMethod
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from fraudwatch.cli.terminal import SafeFormatter as SafeFormatter  # for `watch`'s log (commands import output only)
from fraudwatch.cli.terminal import safe, safe_json
from fraudwatch.jsontext import dumps
from fraudwatch.netaddr import parse_ip
from fraudwatch.store.schema import ALERTS

# JSON alert objects: the alerts table's columns, less the long or internal ones (evidence is added parsed)
ALERT_COLUMNS = tuple(n for n in ALERTS.names if n not in ("description", "evidence", "updates", "updated_at"))


PIPE_WIDTH = 160  # a pipe or a file has no width: this, unless COLUMNS says otherwise
WIDE = 160  # from this width on, the alert list is one line per alert
ZONE_ENV = "FRAUDWATCH_DISPLAY_TIMEZONE"
LOCAL = "local"  # the machine's zone (fraudwatch.config.display)


def out(soft_wrap: bool = False) -> Console:
    """Stdout for people: the terminal's width (or COLUMNS'), else PIPE_WIDTH for a pipe or a file. No emoji
    codes, no highlighting: only our own markup styles anything."""
    width = None if sys.stdout.isatty() or os.environ.get("COLUMNS", "").isdigit() else PIPE_WIDTH
    return Console(soft_wrap=soft_wrap, highlight=False, emoji=False, width=width)


class _Zone:
    """The zone times are shown in (one per process: a command shows all its times in one zone; every command
    that reads the config sets it, `fraudwatch.cli.context.config_of`)."""

    tz: dt.tzinfo | None = dt.UTC  # None: the machine's zone


def use_zone(name: str) -> None:
    """Show times in zone `name` from now on: an IANA name, 'UTC' or 'local' (checked by the caller)."""
    _Zone.tz = None if name == LOCAL else dt.UTC if name == "UTC" else zoneinfo.ZoneInfo(name)


def when(value: dt.datetime) -> str:
    """A time for people: in the display zone, to the second, with the zone's abbreviation (GMT, BST, UTC, CST).
    A time without a zone is the store's UTC."""
    aware = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
    shown = aware.astimezone(_Zone.tz)  # None: the machine's rules for that instant (DST included)
    return f"{shown:%Y-%m-%d %H:%M:%S} {shown.tzname() or shown.strftime('%z')}"


def as_time(value: object) -> object:
    """ISO text of a time (the watcher's answers and status file carry times so) as a time, for `when` to show in
    the display zone; anything else as it is."""
    if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and value[10] in "T ":
        try:
            return dt.datetime.fromisoformat(value)
        except ValueError:
            return value
    return value


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
        return when(value)
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


def nothing_matches(what: str, given: str, total: int, newest: dt.datetime | None) -> str:
    """What a list says when its filters (`given`, as typed: '--ip 192.0.2.1') hide everything: how much there
    is to find, so that an empty answer is never mistaken for an empty store. `what`: 'alerts', 'incidents'."""
    if not total:
        return f"no {what} in the store yet"
    if not given:
        return f"no {what}"
    return f"no {what} match {plain(given)}; {total:,} {what} in the store, newest detected {plain(newest)}"


def alert_json(row: dict[str, Any]) -> dict[str, Any]:
    """An alert row (the store's, or `Alert.as_row()`) as its JSON object, evidence parsed."""
    obj = {k: row[k] for k in ALERT_COLUMNS if k in row}
    evidence = row.get("evidence")
    obj["evidence"] = json.loads(evidence) if isinstance(evidence, str) else evidence
    return obj


def table(*columns: str, whole: Collection[str] = (), right: Collection[str] = (), title: str | None = None) -> Table:
    """A table for people that fits the terminal. Columns in `whole` (addresses, rule ids, keys, counts) never
    wrap: their values stay on one line (cut with an ellipsis only when the terminal cannot hold them at all);
    the others fold onto more lines, at least a few characters wide. `right`: right-justified (numbers)."""
    t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True,
              title=cell(title) if title else None,
              title_justify="left", title_style="bold")
    for name in columns:
        justify: JustifyMethod = "right" if name in right else "left"
        if name in whole:
            t.add_column(cell(name), no_wrap=True, overflow="ellipsis", justify=justify)
        else:
            t.add_column(cell(name), overflow="fold", min_width=min(max(len(name), 6), 12), justify=justify)
    return t


# Columns whose values are names and numbers a person copies or compares: never cut over two lines
WHOLE = frozenset({"id", "alert_id", "rule", "key", "network", "ip", "src_ip", "dst_ip", "caller_ip", "callee_ip",
                   "account", "customer_account", "username", "count", "n", "events", "lines", "parsed", "rejected"})


def whole_columns(names: Sequence[str], rows: Sequence[Sequence[object]]) -> tuple[set[str], set[str]]:
    """For a table of query results: the columns to keep whole (named in WHOLE, or holding only addresses or
    numbers in the first rows) and those of them to right-justify (numbers)."""
    whole, right = set(), set()
    sample = rows[:50]
    for i, name in enumerate(names):
        values = [r[i] for r in sample if r[i] is not None]
        numbers = bool(values) and all(isinstance(v, int | float | decimal.Decimal) and not isinstance(v, bool)
                                       for v in values)
        addresses = bool(values) and all(isinstance(v, str) and parse_ip(v) is not None for v in values)
        if name in WHOLE or numbers or addresses:
            whole.add(name)
        if numbers:
            right.add(name)
    return whole, right


def _action(r: dict[str, Any]) -> str:
    return str(r["action"]) + (" (trusted)" if r.get("trusted") else "") + (" (report-only)" if r.get("report_only")
                                                                        else "")


def print_alerts(rows: list[dict[str, Any]]) -> None:
    """Alert rows as one table: one line each on a wide terminal; below WIDE columns, rule over key and severity
    over action, so that neither a rule id nor an address (IPv6 too) is ever cut over two lines."""
    console = out()
    sev = {"critical": "[bold red]critical[/]", "warning": "[yellow]warning[/]"}
    if console.width >= WIDE:
        t = table("id", "severity", "rule", "key", "first seen", "detected", "count", "action",
                  whole=("id", "rule", "key", "count"), right=("id", "count"))
        for r in rows:
            t.add_row(str(r["id"]), sev.get(r["severity"], text(r["severity"])), cell(r["rule"]),
                      cell(f"{r['key_type']} {r['key']}"), cell(r["first_seen"]), cell(r["detected_at"]),
                      f"{r['count']:,}", cell(_action(r)))
    else:
        t = table("id", "rule / key", "severity / action", "detected", "count", whole=("id", "rule / key", "count"),
                  right=("id", "count"))
        for r in rows:
            t.add_row(str(r["id"]), Text(f"{plain(r['rule'])}\n{plain(r['key_type'])} {plain(r['key'])}"),
                      f"{sev.get(r['severity'], text(r['severity']))}\n{text(_action(r))}", cell(r["detected_at"]),
                      f"{r['count']:,}")
    console.print(t)
