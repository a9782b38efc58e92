"""The one configuration file (TOML), validated into typed objects at the boundary, one module per section.

Lookup order: `--config FILE`, else ./fraudwatch.toml, else /etc/fraudwatch/fraudwatch.toml, else built-in
defaults. Relative paths inside the file are relative to the file's folder. Every error names the file, the line
(found from the key's position in the text) and the reason.
"""

from __future__ import annotations

import re
import tomllib
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fraudwatch import tomldoc
from fraudwatch.config.alerts import AlertsConfig, parse_alerts
from fraudwatch.config.display import DisplayConfig, parse_display
from fraudwatch.config.firewall import FirewallConfig, parse_firewall
from fraudwatch.config.watch import WatchConfig, parse_watch
from fraudwatch.errors import ConfigError, Location
from fraudwatch.netaddr import IPNetwork, parse_networks
from fraudwatch.tomldoc import Document

DEFAULT_LOCATIONS = (Path("fraudwatch.toml"), Path("/etc/fraudwatch/fraudwatch.toml"))
# The sections some code reads. A section is added here with the code that reads it, never before: a section
# accepted and ignored would let an operator believe a setting is in force.
SECTIONS = frozenset({"store", "sources", "trusted", "formats", "ingest", "alerts", "firewall", "rules", "watch",
                      "display"})


@dataclass(frozen=True)
class SourceConfig:
    path: Path  # a file, a folder (every file in it) or a glob
    format: str | None  # None: detect from the content
    timezone: str = "UTC"  # zone of timestamps that carry none


@dataclass(frozen=True)
class IngestConfig:
    # Bytes of log read, parsed and committed at once. Two chunks are in memory at a time (one parsed, the one
    # before written as a Parquet segment); 16 MB backfills as fast as 32 MB did, with some 180 MB less at the
    # peak (figures: benchmarks/RESULTS.md, "Ingest chunk size (16 MB)").
    chunk_bytes: int = 16 << 20
    max_line_bytes: int = 64 << 10
    max_raw_bytes: int = 4096


@dataclass(frozen=True)
class Config:
    path: Path | None  # the file it came from, None for defaults
    store_path: Path = Path("fraudwatch.duckdb")
    sources: tuple[SourceConfig, ...] = ()
    trusted_networks: tuple[IPNetwork, ...] = ()
    trusted_accounts: tuple[str, ...] = ()
    # propose locking an account whose fraud came from inside the trusted networks ([trusted]
    # lock_accounts_in_networks); off: such an account is alerted on, never proposed for a lock
    lock_in_trusted: bool = False
    format_dirs: tuple[Path, ...] = ()
    rule_dirs: tuple[Path, ...] = ()
    ingest: IngestConfig = field(default_factory=IngestConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    watch: WatchConfig = field(default_factory=WatchConfig)
    firewall: FirewallConfig = field(default_factory=FirewallConfig)
    display: DisplayConfig = field(default_factory=DisplayConfig)


def _positive_int(section: dict[str, Any], key: str, default: int, doc: Document, table: str) -> int:
    value = section.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise doc.error(f"'{key}' must be a positive whole number", table, key)
    return value


def parse_config(path: Path, text: str) -> Config:
    doc = Document(path, text)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise ConfigError(f"invalid TOML: {exc}", Location(path, int(m.group(1)) if m else None)) from None
    base = path.parent
    for key in raw:
        if key not in SECTIONS:
            raise doc.error(f"unknown section '{key}' (known: {', '.join(sorted(SECTIONS))})", key, None)

    store = tomldoc.table(raw, "store", doc)
    tomldoc.check_keys(store, {"path"}, doc, "store")
    store_path = store.get("path", "fraudwatch.duckdb")
    if not isinstance(store_path, str) or not store_path:
        raise doc.error("'path' must be a file path", "store", "path")

    sources_raw = raw.get("sources", [])
    if not isinstance(sources_raw, list):
        raise doc.error("'sources' must be an array of tables ([[sources]])", None, "sources")
    sources = []
    for i, src in enumerate(sources_raw):
        tomldoc.check_keys(src, {"path", "format", "timezone"}, doc, "sources", i)
        spath = src.get("path")
        if not isinstance(spath, str) or not spath:
            raise doc.error("every [[sources]] needs 'path'", "sources", "path", i)
        fmt = src.get("format")
        if fmt is not None and (not isinstance(fmt, str) or not fmt):
            raise doc.error("'format' must be a format name (see `fraudwatch formats list`)", "sources", "format", i)
        tz = src.get("timezone", "UTC")
        try:
            zoneinfo.ZoneInfo(str(tz))
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise doc.error(f"unknown time zone '{tz}'", "sources", "timezone", i) from None
        sources.append(SourceConfig(_resolve(base, spath), fmt, str(tz)))

    trusted = tomldoc.table(raw, "trusted", doc)
    tomldoc.check_keys(trusted, {"networks", "accounts", "lock_accounts_in_networks"}, doc, "trusted")
    nets = trusted.get("networks", [])
    if not isinstance(nets, list) or not all(isinstance(n, str) for n in nets):
        raise doc.error("'networks' must be a list of addresses or CIDR networks", "trusted", "networks")
    try:
        networks = parse_networks(nets)
    except ValueError as exc:
        raise doc.error(str(exc), "trusted", "networks") from None
    accounts = trusted.get("accounts", [])
    if not isinstance(accounts, list) or not all(isinstance(a, str) for a in accounts):
        raise doc.error("'accounts' must be a list of account numbers (text)", "trusted", "accounts")
    lock_in_trusted = trusted.get("lock_accounts_in_networks", False)
    if not isinstance(lock_in_trusted, bool):
        raise doc.error("'lock_accounts_in_networks' must be true or false", "trusted", "lock_accounts_in_networks")

    formats = tomldoc.table(raw, "formats", doc)
    tomldoc.check_keys(formats, {"dirs"}, doc, "formats")
    dirs = formats.get("dirs", [])
    if not isinstance(dirs, list) or not all(isinstance(d, str) for d in dirs):
        raise doc.error("'dirs' must be a list of folders", "formats", "dirs")

    rules = tomldoc.table(raw, "rules", doc)
    tomldoc.check_keys(rules, {"dirs"}, doc, "rules")
    rule_dirs = rules.get("dirs", [])
    if not isinstance(rule_dirs, list) or not all(isinstance(d, str) for d in rule_dirs):
        raise doc.error("'dirs' must be a list of folders", "rules", "dirs")

    ing = tomldoc.table(raw, "ingest", doc)
    tomldoc.check_keys(ing, {"chunk_bytes", "max_line_bytes", "max_raw_bytes"}, doc, "ingest")
    ingest = IngestConfig(
        chunk_bytes=_positive_int(ing, "chunk_bytes", IngestConfig.chunk_bytes, doc, "ingest"),
        max_line_bytes=_positive_int(ing, "max_line_bytes", IngestConfig.max_line_bytes, doc, "ingest"),
        max_raw_bytes=_positive_int(ing, "max_raw_bytes", IngestConfig.max_raw_bytes, doc, "ingest"),
    )
    return Config(
        path=path,
        store_path=_resolve(base, store_path),
        sources=tuple(sources),
        trusted_networks=tuple(networks),
        trusted_accounts=tuple(accounts),
        lock_in_trusted=lock_in_trusted,
        format_dirs=tuple(_resolve(base, d) for d in dirs),
        rule_dirs=tuple(_resolve(base, d) for d in rule_dirs),
        ingest=ingest,
        alerts=parse_alerts(raw.get("alerts", {}), doc),
        watch=parse_watch(tomldoc.table(raw, "watch", doc), doc),
        firewall=parse_firewall(raw, doc),
        display=parse_display(tomldoc.table(raw, "display", doc), doc),
    )


def _resolve(base: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p


def load_config(explicit: Path | None) -> Config:
    """The config from `explicit`, else the first default location that exists, else defaults."""
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError("config file not found", Location(explicit))
        candidates: tuple[Path, ...] = (explicit,)
    else:
        candidates = tuple(p for p in DEFAULT_LOCATIONS if p.is_file())
    if not candidates:
        return Config(path=None)
    path = candidates[0]
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read: {exc}", Location(path)) from None
    return parse_config(path, text)
