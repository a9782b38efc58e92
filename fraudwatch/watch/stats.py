"""What the watcher knows about itself: per-file progress and rates, batch latency, the last alert.

Kept in memory by the loop, written every `status_seconds` to `<store>.status.json` (atomically) for
`fraudwatch status`, and rendered as Prometheus text for the optional metrics endpoint.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from fraudwatch.detect.runners.replay import TIME_COLUMN
from fraudwatch.store.files import private_umask
from fraudwatch.watch.rulecounts import MANUAL, RuleCounts

if TYPE_CHECKING:
    from fraudwatch.config import Config
    from fraudwatch.ingest import FileSummary

RATE_WINDOW = 10.0  # seconds of history behind lines/s
FORGET_COUNTS = 86400.0  # an alert not reported for this long is forgotten by the match counters
LATENCY_SAMPLES = 2048


def status_path(store_path: Path) -> Path:
    return store_path.with_name(store_path.name + ".status.json")


@dataclass
class FileStats:
    path: str
    format: str
    size: int = 0
    offset: int = 0  # bytes committed (uncompressed for .gz; then lag is not comparable and shown as 0)
    lines: int = 0
    parsed: int = 0
    ignored: int = 0
    rejected: int = 0
    reads: int = 0  # batches that brought lines
    last_event: str | None = None
    last_read: str | None = None
    error: str | None = None
    parked: str | None = None  # why the watcher no longer reads it (failed reads in a row: the last error)
    recent: deque[tuple[float, int]] = field(default_factory=deque)

    def rate(self, now: float) -> float:
        while self.recent and now - self.recent[0][0] > RATE_WINDOW:
            self.recent.popleft()
        if not self.recent:
            return 0.0
        return sum(n for _, n in self.recent) / RATE_WINDOW

    @property
    def lag(self) -> int:
        return 0 if self.path.endswith(".gz") else max(0, self.size - self.offset)

    def as_json(self, now: float) -> dict[str, Any]:
        return {"path": self.path, "format": self.format, "size": self.size, "offset": self.offset,
                "lag_bytes": self.lag, "lines_per_s": round(self.rate(now), 1), "lines": self.lines,
                "parsed": self.parsed, "ignored": self.ignored, "rejected": self.rejected,
                "reads": self.reads, "last_event": self.last_event, "last_read": self.last_read, "error": self.error,
                "parked": self.parked}


class Stats:
    def __init__(self, store_path: Path) -> None:
        private_umask()  # the status file names sources and attackers: not for other users
        self.store_path = store_path
        self.path = status_path(store_path)
        self.files: dict[str, FileStats] = {}
        self.latencies: deque[float] = deque(maxlen=LATENCY_SAMPLES)
        self.batches = 0
        self.events_by_table: dict[str, int] = {}
        self.alerts = 0
        self.last_alert: dict[str, Any] | None = None
        self.pid = 0
        self.started_at = ""
        self.sources: list[dict[str, Any]] = []
        self.written = 0.0
        self.early: Any = None  # the sentry (fraudwatch.watch.sentry) while early bans run
        self.rules = RuleCounts()  # per rule: matches, alerts, bans (fraudwatch.watch.rulecounts)
        # alert id -> (its event count, severity, action, monotonic time) when last reported
        self.alert_counts: dict[int, tuple[int, str, str, float]] = {}
        self.counts_pruned = time.monotonic()
        self.missing: dict[str, dict[str, Any]] = {}  # source path -> {"error", "since"} (watch.preflight)
        self.firewall: dict[str, Any] | None = None  # {"backend", "dry_run"} once the enforcer started
        self.lock = threading.Lock()  # the metrics endpoint reads from another thread

    def started(self, pid: int, cfg: Config) -> None:
        self.pid = pid
        self.started_at = dt.datetime.now(dt.UTC).isoformat()
        self.reloaded(cfg)

    def reloaded(self, cfg: Config) -> None:
        self.sources = [{"path": str(s.path), "format": s.format, "timezone": s.timezone} for s in cfg.sources]

    def _file(self, path: Path, fmt: str) -> FileStats:
        key = str(path)
        fs = self.files.get(key)
        if fs is None:
            fs = self.files[key] = FileStats(key, fmt)
        fs.format = fmt
        return fs

    def seen(self, path: Path, fmt: str, size: int) -> None:
        with self.lock:
            fs = self._file(path, fmt)
            fs.size = size
            if path.suffix == ".gz":
                fs.offset = max(fs.offset, size)

    def read(self, path: Path, fmt: str, s: FileSummary, size: int, seconds: float) -> None:
        with self.lock:
            fs = self._file(path, fmt)
            fs.size = max(size, s.end_offset)
            fs.offset = s.end_offset
            fs.lines += s.lines
            fs.parsed += s.parsed
            fs.ignored += s.counts.ignored
            fs.rejected += s.counts.rejected
            fs.error = s.error
            fs.last_read = dt.datetime.now(dt.UTC).isoformat()
            if s.lines:
                fs.reads += 1
                fs.recent.append((time.monotonic(), s.lines))
                self.latencies.append(seconds)
                self.batches += 1

    def error(self, path: Path, message: str) -> None:
        with self.lock:
            fs = self.files.get(str(path))
            if fs is not None:
                fs.error = message

    def parked(self, path: Path, why: str | None) -> None:
        with self.lock:
            fs = self.files.get(str(path))
            if fs is not None:
                fs.parked = why

    def events(self, table: str, frame: pl.DataFrame) -> None:
        if not frame.height or "source" not in frame.columns or table == "rejects":
            return
        col = TIME_COLUMN[table]
        latest = frame.group_by("source").agg(pl.col(col).max().alias("t"))
        with self.lock:
            self.events_by_table[table] = self.events_by_table.get(table, 0) + frame.height
            for source, t in latest.iter_rows():
                fs = self.files.get(str(source))
                if fs is not None and t is not None:
                    text = t.isoformat()
                    fs.last_event = max(fs.last_event or text, text)

    def alerted(self, alerts: list[Any]) -> dict[int, str]:
        """Count reported alerts (new or updated) per rule; the ids worth a log line: "new", or what changed
        ("severity warning -> critical", "action alert -> ban_ip"). An update of counts only is counted, not
        logged: an ongoing botnet updates thousands of alerts every few seconds."""
        if not alerts:
            return {}
        a = max(alerts, key=lambda x: x.id)
        noted: dict[int, str] = {}
        now = time.monotonic()
        known = self.alert_counts
        for x in alerts:
            before = known.get(x.id)
            is_new = before is None and not x.updates
            if is_new:
                noted[x.id] = "new"
            elif before is not None and (before[1], before[2]) != (x.severity, x.action):
                noted[x.id] = "; ".join(f"{what} {old} -> {new}" for what, old, new in (
                    ("severity", before[1], x.severity), ("action", before[2], x.action)) if old != new)
            grew = int(x.count) - (before[0] if before is not None else 0)
            known[x.id] = (int(x.count), x.severity, x.action, now)
            self.rules.add(x.rule, matches=max(grew, 0), alerts=1 if is_new else 0)
        if now - self.counts_pruned >= 600:
            self.counts_pruned = now
            self.alert_counts = {k: v for k, v in known.items() if now - v[3] < FORGET_COUNTS}
        with self.lock:
            self.alerts += len(alerts)
            self.last_alert = {"id": a.id, "rule": a.rule, "severity": a.severity, "key": a.key,
                               "action": a.action, "at": dt.datetime.now(dt.UTC).isoformat()}
        return noted

    def resumed(self, alerts: list[Any]) -> None:
        """The alerts resumed at start: their growth from here on is what counts."""
        now = time.monotonic()
        self.alert_counts.update({a.id: (int(a.count), a.severity, a.action, now) for a in alerts})

    def banned(self, rules: list[str | None]) -> None:
        """New bans, by the rule behind each (None: by hand)."""
        for rule in rules:
            self.rules.add(rule or MANUAL, bans=1)

    def forget_missing(self, present: set[Path]) -> None:
        keep = {str(p) for p in present}
        with self.lock:
            for k in [k for k in self.files if k not in keep]:
                del self.files[k]

    def snapshot(self, published_at: str | None = None, publish_seconds: float | None = None) -> dict[str, Any]:
        now = time.monotonic()
        with self.lock:
            for fs in self.files.values():  # lag against the size now, not when the file was last looked at
                with contextlib.suppress(OSError):
                    size = os.stat(fs.path).st_size
                    fs.size = max(fs.size, size) if fs.path.endswith(".gz") else size
            lat = sorted(self.latencies)
            return {
                "pid": self.pid, "running": True, "started_at": self.started_at,
                "updated_at": dt.datetime.now(dt.UTC).isoformat(), "store": str(self.store_path),
                "published_at": published_at, "publish_seconds": publish_seconds, "sources": self.sources,
                "files": [f.as_json(now) for f in sorted(self.files.values(), key=lambda f: f.path)],
                "batches": self.batches,
                "batch_seconds": {"p50": _pct(lat, 0.5), "p99": _pct(lat, 0.99), "max": lat[-1] if lat else None},
                "events": dict(self.events_by_table), "alerts": self.alerts, "last_alert": self.last_alert,
                "early_bans": self.early.status() if self.early is not None else None,
                "missing": [{"path": p, **m} for p, m in sorted(self.missing.items())],
                "rules": self.rules.summary(), "firewall": self.firewall,
            }

    def maybe_write(self, interval: float, published_at: str | None, publish_seconds: float | None) -> None:
        now = time.monotonic()
        if now - self.written < interval:
            return
        self.written = now
        self._write(self.snapshot(published_at, publish_seconds))

    def stopped(self) -> None:
        snap = self.snapshot()
        snap["running"] = False
        self._write(snap)

    def _write(self, snap: dict[str, Any]) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        try:
            tmp.write_text(json.dumps(snap, indent=1), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError:
            pass  # status is best effort; the store is what matters

    def prometheus(self) -> str:
        """The metrics in Prometheus text exposition format."""
        snap = self.snapshot()
        out = []

        def metric(name: str, kind: str, help_text: str, samples: list[tuple[dict[str, str], float]]) -> None:
            out.append(f"# HELP fraudwatch_{name} {help_text}")
            out.append(f"# TYPE fraudwatch_{name} {kind}")
            for labels, value in samples:
                lab = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
                out.append(f"fraudwatch_{name}{{{lab}}} {value}" if lab else f"fraudwatch_{name} {value}")

        files = snap["files"]
        for name, key, kind, text in (("lines_read_total", "lines", "counter", "lines read per file"),
                                      ("lines_parsed_total", "parsed", "counter", "lines stored as rows"),
                                      ("lines_rejected_total", "rejected", "counter", "lines kept in rejects"),
                                      ("lag_bytes", "lag_bytes", "gauge", "bytes written but not yet read"),
                                      ("lines_per_second", "lines_per_s", "gauge", "read rate over 10 s")):
            metric(name, kind, text, [({"path": f["path"], "format": f["format"]}, float(f[key])) for f in files])
        metric("batches_total", "counter", "batches committed", [({}, float(snap["batches"]))])
        for q in ("p50", "p99"):
            v = snap["batch_seconds"][q]
            metric(f"batch_seconds_{q}", "gauge", f"{q} of read+parse+commit time per batch",
                   [({}, float(v if v is not None else 0))])
        metric("alerts_total", "counter", "alerts created or updated since start", [({}, float(snap["alerts"]))])
        rules = snap["rules"]
        for kind, text in (("matches", "events the rule counted toward its alerts"),
                           ("alerts", "alerts the rule opened"), ("bans", "new bans for the rule's alerts")):
            metric(f"rule_{kind}", "gauge", f"{text}, in the last hour or day (window)",
                   [({"rule": rule, "window": window}, float(counts[span][kind])) for rule, counts in rules.items()
                    for window, span in (("1h", "hour"), ("1d", "day"))])
        return "\n".join(out) + "\n"


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return values[min(len(values) - 1, int(q * len(values)))]


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def read_status(store_path: Path) -> dict[str, Any] | None:
    """The watcher's last status, with `running` false when its process is gone or it stopped writing."""
    try:
        snap: dict[str, Any] = json.loads(status_path(store_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if snap.get("running"):
        snap["running"] = pid_alive(snap.get("pid"))
    return snap


def pid_alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True
    except OSError:
        return False
    return True
