"""`[alerts]` in the config: channels (named apprise URLs), routes, realert, quiet hours, outbox timing.

Parsed by `parse_alerts`, called from `fraudwatch.config.parse_config` with the raw TOML table and the document
helper that turns a (table, key) into `file:line` for errors. A channel URL is checked with apprise's own parser
when the config is loaded; a URL taken from the environment (`url_env`) is checked when the variable is set, and a
missing variable is reported, with the config line, only when the channel is used.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import os
import re
import zoneinfo
from dataclasses import dataclass, field
from typing import Any

from fraudwatch.errors import ConfigError, Location
from fraudwatch.tomldoc import Document, check_keys, duration, parse_duration

SEVERITIES = ("warning", "critical")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True)
class ChannelConfig:
    """A named apprise URL. `url` is None when it comes from an environment variable that is not set."""

    name: str
    url: str | None
    url_env: str | None = None
    where: Location | None = None

    def resolved_url(self) -> str:
        if self.url is not None:
            return self.url
        value = os.environ.get(self.url_env or "", "")
        if not value:
            raise ConfigError(f"channel '{self.name}': environment variable {self.url_env} is not set", self.where)
        if not valid_apprise_url(value):
            raise ConfigError(f"channel '{self.name}': ${self.url_env} is not a URL apprise can send to",
                              self.where)
        return value


@dataclass(frozen=True)
class RouteConfig:
    """Which alerts go to which channels. Empty matchers match everything; all given matchers must match."""

    channels: tuple[str, ...]
    severity: tuple[str, ...] = ()  # empty: any
    rules: tuple[str, ...] = ()  # rule ids or fnmatch patterns ('high-risk-*'); empty: any
    tags: tuple[str, ...] = ()  # the rule has at least one of these tags; empty: any
    digest: float | None = None  # seconds: alerts of one rule within this window become one message
    name: str = ""

    def matches(self, rule: str, severity: str, tags: tuple[str, ...] | list[str]) -> bool:
        if self.severity and severity not in self.severity:
            return False
        if self.rules and not any(fnmatch.fnmatchcase(rule, p) for p in self.rules):
            return False
        return not (self.tags and not set(self.tags) & set(tags))


@dataclass(frozen=True)
class QuietHours:
    """A daily local-time window in which warnings are held back and sent as one digest when it ends."""

    start: dt.time
    end: dt.time

    def contains(self, local: dt.datetime) -> bool:
        t = local.time().replace(tzinfo=None)
        if self.start <= self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end  # over midnight

    def end_after(self, local: dt.datetime) -> dt.datetime:
        """The first end of quiet hours after `local` (a zoned time)."""
        candidate = local.replace(hour=self.end.hour, minute=self.end.minute, second=0, microsecond=0)
        if candidate <= local:
            candidate = candidate + dt.timedelta(days=1)
            # re-anchor the wall time in the zone (DST days are 23 or 25 hours long)
            candidate = candidate.replace(hour=self.end.hour, minute=self.end.minute)
        return candidate


@dataclass(frozen=True)
class AlertsConfig:
    channels: tuple[ChannelConfig, ...] = ()
    routes: tuple[RouteConfig, ...] = ()  # none: every alert to every channel
    realert: float = 1800.0  # seconds: at most one notification per (rule, key) in this interval
    realert_rules: tuple[tuple[str, float], ...] = ()  # (rule id or pattern, seconds), first match wins
    quiet_hours: QuietHours | None = None
    timezone: str = "UTC"  # local time shown in messages and used for quiet hours
    send_timeout: float = 10.0  # seconds one send may take before it counts as failed
    retry_min: float = 5.0  # first retry delay of a failing channel; doubles per failure
    retry_max: float = 600.0  # cap of that delay
    give_up_after: float = 86400.0  # a notification still unsent after this is marked failed
    keep_sent: float = 30 * 86400.0  # sent notifications are deleted from the outbox after this
    digest_top: int = 10  # rows in a digest's table
    max_field: int = 120  # characters of attacker-controlled text kept per field
    where: Location | None = field(default=None, compare=False)

    def channel(self, name: str) -> ChannelConfig | None:
        return next((c for c in self.channels if c.name == name), None)

    def realert_for(self, rule: str) -> float:
        for pattern, seconds in self.realert_rules:
            if fnmatch.fnmatchcase(rule, pattern):
                return seconds
        return self.realert

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)


def valid_apprise_url(url: str) -> bool:
    import apprise

    return apprise.Apprise.instantiate(url, suppress_exceptions=True) is not None


_TOP_KEYS = {"channels", "routes", "realert", "quiet_hours", "timezone", "send_timeout", "retry_min", "retry_max",
             "give_up_after", "keep_sent", "digest_top", "max_field"}


def _str_list(section: dict[str, Any], key: str, doc: Document, table: str, index: int) -> tuple[str, ...]:
    value = section.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise doc.error(f"'{key}' must be a text or a list of texts", table, key, index)
    return tuple(value)


def _channels(raw: Any, doc: Document) -> tuple[ChannelConfig, ...]:
    table = "alerts.channels"
    if not isinstance(raw, list) or not all(isinstance(c, dict) for c in raw):
        raise doc.error("'channels' must be an array of tables ([[alerts.channels]])", "alerts", "channels")
    out: list[ChannelConfig] = []
    for i, ch in enumerate(raw):
        check_keys(ch, {"name", "url", "url_env"}, doc, table, i)
        name = ch.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise doc.error("every [[alerts.channels]] needs a 'name' (letters, digits, . _ -)", table, "name", i)
        if any(c.name == name for c in out):
            raise doc.error(f"channel '{name}' is defined twice", table, "name", i)
        url, env = ch.get("url"), ch.get("url_env")
        if (url is None) == (env is None):
            raise doc.error(f"channel '{name}' needs exactly one of 'url' or 'url_env'", table, "name", i)
        where = Location(doc.path, doc.line_of(table, "url" if url is not None else "url_env", i))
        if url is not None:
            if not isinstance(url, str) or not valid_apprise_url(url):
                raise doc.error(f"channel '{name}': not a URL apprise can send to (see "
                                "https://appriseit.com/services/ for the URL of each service)", table, "url", i)
        else:
            if not isinstance(env, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", env):
                raise doc.error("'url_env' must be the name of an environment variable", table, "url_env", i)
            value = os.environ.get(env)
            if value and not valid_apprise_url(value):
                raise doc.error(f"channel '{name}': ${env} is not a URL apprise can send to", table, "url_env", i)
        out.append(ChannelConfig(name, url, env, where))
    return tuple(out)


def _routes(raw: Any, doc: Document, channels: tuple[ChannelConfig, ...]) -> tuple[RouteConfig, ...]:
    table = "alerts.routes"
    if not isinstance(raw, list) or not all(isinstance(r, dict) for r in raw):
        raise doc.error("'routes' must be an array of tables ([[alerts.routes]])", "alerts", "routes")
    names = {c.name for c in channels}
    out = []
    for i, r in enumerate(raw):
        check_keys(r, {"name", "channels", "severity", "rules", "tags", "digest"}, doc, table, i)
        chans = _str_list(r, "channels", doc, table, i)
        if not chans:
            raise doc.error("every [[alerts.routes]] needs 'channels'", table, "channels", i)
        for c in chans:
            if c not in names:
                raise doc.error(f"unknown channel '{c}' (defined: {', '.join(sorted(names)) or 'none'})",
                                table, "channels", i)
        sev = _str_list(r, "severity", doc, table, i)
        for s in sev:
            if s not in SEVERITIES:
                raise doc.error(f"unknown severity '{s}' (warning or critical)", table, "severity", i)
        digest = duration(r, "digest", 0.0, doc, table, i) or None
        name = r.get("name", f"route {i + 1}")
        if not isinstance(name, str):
            raise doc.error("'name' must be text", table, "name", i)
        out.append(RouteConfig(chans, sev, _str_list(r, "rules", doc, table, i), _str_list(r, "tags", doc, table, i),
                               digest, name))
    return tuple(out)


def _realert(raw: Any, doc: Document) -> tuple[float, tuple[tuple[str, float], ...]]:
    if not isinstance(raw, dict):
        try:
            return parse_duration(raw), ()
        except ValueError as exc:
            raise doc.error(f"'realert': {exc}", "alerts", "realert") from None
    default = AlertsConfig.realert
    rules = []
    for key, value in raw.items():
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            raise doc.error(f"'{key}': {exc}", "alerts.realert", key) from None
        if key == "default":
            default = seconds
        else:
            rules.append((key, seconds))
    return default, tuple(rules)


def _quiet(raw: Any, doc: Document) -> QuietHours:
    table = "alerts.quiet_hours"
    if not isinstance(raw, dict):
        raise doc.error("'quiet_hours' must be a table with start and end ([alerts.quiet_hours])", "alerts",
                        "quiet_hours")
    check_keys(raw, {"start", "end"}, doc, table)
    times = []
    for key in ("start", "end"):
        value = raw.get(key)
        m = _CLOCK.match(value) if isinstance(value, str) else None
        if m is None:
            raise doc.error(f"'{key}' must be a local time like \"22:00\"", table, key)
        times.append(dt.time(int(m.group(1)), int(m.group(2))))
    if times[0] == times[1]:
        raise doc.error("quiet hours 'start' and 'end' are the same time", table, "end")
    return QuietHours(times[0], times[1])


def parse_alerts(raw: Any, doc: Document) -> AlertsConfig:
    """The `[alerts]` table (possibly absent: `{}`) as an AlertsConfig; errors name file:line."""
    if not isinstance(raw, dict):
        raise doc.error("'alerts' must be a table ([alerts])", None, "alerts")
    check_keys(raw, _TOP_KEYS, doc, "alerts")
    channels = _channels(raw.get("channels", []), doc)
    routes = _routes(raw.get("routes", []), doc, channels)
    realert, realert_rules = _realert(raw.get("realert", AlertsConfig.realert), doc)
    quiet = _quiet(raw["quiet_hours"], doc) if "quiet_hours" in raw else None
    tz = raw.get("timezone", "UTC")
    try:
        zoneinfo.ZoneInfo(str(tz))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise doc.error(f"unknown time zone '{tz}'", "alerts", "timezone") from None
    ints = {}
    for key, default in (("digest_top", AlertsConfig.digest_top), ("max_field", AlertsConfig.max_field)):
        value = raw.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < (1 if key == "digest_top" else 16):
            raise doc.error(f"'{key}' must be a whole number (at least {1 if key == 'digest_top' else 16})",
                            "alerts", key)
        ints[key] = value
    cfg = AlertsConfig(
        channels=channels, routes=routes, realert=realert, realert_rules=realert_rules, quiet_hours=quiet,
        timezone=str(tz),
        send_timeout=duration(raw, "send_timeout", AlertsConfig.send_timeout, doc, "alerts"),
        retry_min=duration(raw, "retry_min", AlertsConfig.retry_min, doc, "alerts"),
        retry_max=duration(raw, "retry_max", AlertsConfig.retry_max, doc, "alerts"),
        give_up_after=duration(raw, "give_up_after", AlertsConfig.give_up_after, doc, "alerts"),
        keep_sent=duration(raw, "keep_sent", AlertsConfig.keep_sent, doc, "alerts"),
        digest_top=ints["digest_top"], max_field=ints["max_field"],
        where=Location(doc.path, doc.line_of("alerts", None)) if raw else None,
    )
    if cfg.retry_max < cfg.retry_min:
        raise doc.error("'retry_max' must not be shorter than 'retry_min'", "alerts", "retry_max")
    return cfg
