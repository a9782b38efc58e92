"""What every command reads from its arguments the same way: the configuration (with `--config`, `--db` and
`--display-timezone`) and points in time (`--since`, `--until`)."""

from __future__ import annotations

import argparse
import datetime as dt
import os
from dataclasses import replace

from fraudwatch.cli.output import ZONE_ENV, use_zone
from fraudwatch.config import Config, load_config
from fraudwatch.config.display import zone_problem
from fraudwatch.errors import UsageError
from fraudwatch.tomldoc import parse_duration


def config_of(args: argparse.Namespace) -> Config:
    """The configuration `--config` names (or the default one), its store replaced by `--db` when given; times
    are shown from then on in the zone `--display-timezone`, else FRAUDWATCH_DISPLAY_TIMEZONE, else
    `[display] timezone` names."""
    cfg = load_config(getattr(args, "config", None))
    db = getattr(args, "db", None)
    if db is not None:
        cfg = replace(cfg, store_path=db)
    use_zone(display_zone(getattr(args, "display_timezone", None), cfg))
    return cfg


def display_zone(option: str | None, cfg: Config) -> str:
    """The zone to show times in: the option, the environment, or the config (checked there, with its line)."""
    for given, source in ((option, "--display-timezone"), (os.environ.get(ZONE_ENV) or None, ZONE_ENV)):
        if given is not None:
            problem = zone_problem(given)
            if problem is not None:
                raise UsageError(f"{source}: {problem}")
            return given
    return cfg.display.timezone


def parse_time(text: str | None, now: dt.datetime | None = None) -> dt.datetime | None:
    """ISO date or time (UTC when no zone is given), or an age with its unit like 30m, 24h, 7d (before now),
    spelt as every duration in fraudwatch is (`fraudwatch.tomldoc.parse_duration`)."""
    if text is None:
        return None
    text = text.strip()
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        if text[-1:].isalpha():  # an age needs its unit: a bare number is neither an age nor a time
            try:
                return (now or dt.datetime.now(dt.UTC)) - dt.timedelta(seconds=parse_duration(text))
            except ValueError:
                pass
        raise UsageError(f"'{text}' is not a time (use 2026-11-20, 2026-11-20T03:00, or 24h / 7d ago)") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
