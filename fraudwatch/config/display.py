"""The `[display]` section: how the command line shows things to people (not what it stores or sends).

    [display]
    timezone = "Europe/London"   # times in tables and messages of the CLI; "local": this machine's zone

The default is UTC: the zone the store, the JSON output and the logs' normalised times are in, so a table pasted
into a ticket or compared with `fraudwatch sql` output means the same on every machine. Every time shown carries
its zone's abbreviation, so the choice is never ambiguous. `--display-timezone` and FRAUDWATCH_DISPLAY_TIMEZONE
override it for one command or one shell (`fraudwatch.cli.output`).
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from typing import Any

from fraudwatch.tomldoc import Document, check_keys

LOCAL = "local"  # the machine's own zone (its DST rules, as the C library applies them)


@dataclass(frozen=True)
class DisplayConfig:
    timezone: str = "UTC"


def zone_problem(name: str) -> str | None:
    """Why `name` is not a zone we can show times in (None when it is one: an IANA name, or 'local')."""
    if name == LOCAL:
        return None
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return f"unknown time zone '{name}' (an IANA name like Europe/London or Asia/Shanghai, UTC, or local)"
    return None


def parse_display(section: dict[str, Any], doc: Document) -> DisplayConfig:
    check_keys(section, {"timezone"}, doc, "display")
    tz = section.get("timezone", "UTC")
    problem = zone_problem(tz) if isinstance(tz, str) and tz else "'timezone' must be a zone name"
    if problem is not None:
        raise doc.error(problem, "display", "timezone")
    return DisplayConfig(tz)
