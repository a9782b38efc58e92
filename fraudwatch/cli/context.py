"""What every command reads from its arguments the same way: the configuration (with `--config` and `--db`)
and points in time (`--since`, `--until`)."""

from __future__ import annotations

import argparse
import datetime as dt
import re
from dataclasses import replace

from fraudwatch.config import Config, load_config
from fraudwatch.errors import UsageError

_RELATIVE = re.compile(r"^(\d+)\s*([mhdw])$")
_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 604800}


def config_of(args: argparse.Namespace) -> Config:
    """The configuration `--config` names (or the default one), its store replaced by `--db` when given."""
    cfg = load_config(getattr(args, "config", None))
    db = getattr(args, "db", None)
    if db is not None:
        cfg = replace(cfg, store_path=db)
    return cfg


def parse_time(text: str | None, now: dt.datetime | None = None) -> dt.datetime | None:
    """ISO date or time (UTC when no zone is given), or an age like 30m, 24h, 7d (before now)."""
    if text is None:
        return None
    now = now or dt.datetime.now(dt.UTC)
    m = _RELATIVE.match(text.strip())
    if m:
        return now - dt.timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"'{text}' is not a time (use 2026-11-20, 2026-11-20T03:00, or 24h / 7d ago)") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
