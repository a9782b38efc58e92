"""The `[watch]` section: how the watcher batches, polls, publishes for readers and reports."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from fraudwatch.tomldoc import Document, check_keys


@dataclass(frozen=True)
class WatchConfig:
    batch_delay_ms: int = 50  # after the first new data, wait this long for more before reading (0: at once)
    poll_seconds: float = 1.0  # rescan every source at least this often (the fallback when inotify is silent)
    settle_seconds: float = 2.0  # a CSV export is read once unchanged this long (never half a file)
    publish_seconds: float = 10.0  # how often the read copy for other processes is refreshed (readers' delay)
    status_seconds: float = 1.0  # how often the status file is rewritten
    metrics: str = ""  # "127.0.0.1:9851": a Prometheus text endpoint on loopback ("" = off)
    inotify: bool = True  # False: poll only (e.g. on NFS, where inotify sees no remote writes)
    warmup_seconds: float = 3600.0  # at start, replay at most this much recent past into the rules (0: none)
    warmup_rows: int = 300_000  # ... and at most this many rows per table
    # DuckDB's memory in the watcher (its cache of the store; big operations spill to disk). DuckDB's own default
    # is 80% of the machine, which a watcher running for weeks on the switch would slowly take. "": that default.
    memory_limit: str = "512MB"
    # Ban-proposing rules also run on the logs' newest lines in a process of their own (the sentry), so that a
    # burst is banned in milliseconds even while a flood keeps the rules seconds behind
    # (fraudwatch.detect.runners.early).
    # Only with a firewall backend that bans (not dry-run).
    early_bans: bool = True
    # The control socket's `query` is interrupted after this long (fraudwatch.store.sandbox); the client waits 35 s.
    query_seconds: float = 10.0


_KEYS = {"batch_delay_ms", "poll_seconds", "settle_seconds", "publish_seconds", "status_seconds", "metrics",
         "inotify", "warmup_seconds", "warmup_rows", "memory_limit", "early_bans",
         "query_seconds"}
_SIZE = re.compile(r"\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KIB|MIB|GIB|TIB)", re.IGNORECASE)


def _number(section: dict[str, Any], key: str, default: float, doc: Document, lo: float, hi: float) -> float:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise doc.error(f"'{key}' must be a number from {lo:g} to {hi:g}", "watch", key)
    return float(value)


def parse_watch(section: dict[str, Any], doc: Document) -> WatchConfig:
    check_keys(section, _KEYS, doc, "watch")
    d = WatchConfig()
    metrics = section.get("metrics", "")
    if not isinstance(metrics, str):
        raise doc.error("'metrics' must be \"HOST:PORT\" on loopback, or \"\"", "watch", "metrics")
    if metrics:
        host, _, port = metrics.rpartition(":")
        try:
            loopback = ipaddress.ip_address(host.strip("[]")).is_loopback
        except ValueError:
            loopback = False
        if not loopback or not port.isdigit() or not 0 < int(port) < 65536:
            raise doc.error("'metrics' must be a loopback HOST:PORT such as \"127.0.0.1:9851\" (the endpoint has "
                            "no authentication)", "watch", "metrics")
    inotify = section.get("inotify", True)
    if not isinstance(inotify, bool):
        raise doc.error("'inotify' must be true or false", "watch", "inotify")
    early = section.get("early_bans", d.early_bans)
    if not isinstance(early, bool):
        raise doc.error("'early_bans' must be true or false", "watch", "early_bans")
    publish = _number(section, "publish_seconds", d.publish_seconds, doc, 1, 60)
    memory = section.get("memory_limit", d.memory_limit)
    if not isinstance(memory, str) or (memory and not _SIZE.fullmatch(memory.strip())):
        raise doc.error("'memory_limit' must be a size such as \"512MB\" or \"2GB\", or \"\" for DuckDB's default",
                        "watch", "memory_limit")
    return WatchConfig(
        batch_delay_ms=int(_number(section, "batch_delay_ms", d.batch_delay_ms, doc, 0, 5000)),
        poll_seconds=_number(section, "poll_seconds", d.poll_seconds, doc, 0.05, 60),
        settle_seconds=_number(section, "settle_seconds", d.settle_seconds, doc, 0, 3600),
        publish_seconds=publish,
        status_seconds=_number(section, "status_seconds", d.status_seconds, doc, 0.1, 60),
        metrics=metrics,
        inotify=inotify,
        warmup_seconds=_number(section, "warmup_seconds", d.warmup_seconds, doc, 0, 7 * 86400),
        warmup_rows=int(_number(section, "warmup_rows", d.warmup_rows, doc, 0, 100_000_000)),
        memory_limit=memory.strip(),
        early_bans=early,
        query_seconds=_number(section, "query_seconds", d.query_seconds, doc, 0.1, 30),
    )
