"""labels.csv: one row per injected incident, and a Markdown rendering of it for the sample's README."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable
from pathlib import Path

from fraudwatch.sim.sink import Incident

HEADER = ("incident_id", "kind", "start", "end", "ips", "accounts", "notes")


def iso(ts_ms: int) -> str:
    """ISO 8601 with milliseconds and an explicit zone, e.g. 2026-11-01T02:13:00.123+00:00."""
    return dt.datetime.fromtimestamp(ts_ms / 1000, dt.UTC).isoformat(timespec="milliseconds")


def finalise(incidents: Iterable[Incident]) -> list[Incident]:
    """Drop incidents that produced no event and number the rest in order of their start."""
    kept = sorted((i for i in incidents if i.first_ms is not None), key=lambda i: (i.first_ms or 0, i.kind))
    for n, incident in enumerate(kept, 1):
        incident.incident_id = f"INC-{n:03d}"
    return kept


def render(incidents: list[Incident]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(HEADER)
    for i in incidents:
        assert i.first_ms is not None and i.last_ms is not None
        writer.writerow((i.incident_id, i.kind, iso(i.first_ms), iso(i.last_ms), ";".join(i.ips),
                         ";".join(i.accounts), i.notes))
    return buf.getvalue()


def _short(items: list[str], keep: int = 3) -> str:
    if len(items) <= keep + 1:
        return ", ".join(items)
    return ", ".join(items[:keep]) + f", … (+{len(items) - keep} more)"


def markdown_table(labels_csv: Path) -> str:
    """The incidents of a labels.csv as a Markdown table (long address and account lists shortened)."""
    rows = list(csv.DictReader(labels_csv.open(encoding="utf-8")))
    lines = ["| id | kind | start (UTC) | end (UTC) | ips | accounts |", "|---|---|---|---|---|---|"]
    for r in rows:
        start = r["start"].replace("T", " ").removesuffix("+00:00")
        end = r["end"].replace("T", " ").removesuffix("+00:00")
        ips = _short([x for x in r["ips"].split(";") if x])
        accounts = _short([x for x in r["accounts"].split(";") if x])
        lines.append(f"| {r['incident_id']} | {r['kind']} | {start} | {end} | {ips} | {accounts} |")
    return "\n".join(lines) + "\n"
