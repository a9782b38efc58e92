"""What a notification says: one alert, a digest of many, or a test — built as a `Doc` from plain facts.

An alert is first reduced to `facts` (a JSON-able dict: what, who, how much, since when, what was done), so a
message rendered now and a digest row rendered after a restart say the same thing.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from fraudwatch.detect.decide import Alert
from fraudwatch.notify.done import alert_done
from fraudwatch.notify.render import Doc, Seg, Table, b, clean, code, data

if TYPE_CHECKING:
    from fraudwatch.detect.types.base import RuleType

# Evidence entries that are pointers, not facts a person reads from a phone.
_POINTER_KEYS = {"ids", "flownos", "lines", "enforcement"}  # enforcement: what the enforcer did, shown as `done`
_KEY_LABEL = {"ip": "IP", "account": "account", "prefix": "destination prefix", "number": "number", "key": "key",
              "global": "switch-wide"}
MAX_FACTS = 6
MAX_LIST = 8


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def value_label(rule: RuleType) -> str:
    """How to read an alert's `value` for a loaded rule (an object with `.common` and its type's fields), as a
    template with {v}: 'peak {v} in 5m', 'fee total {v} in 1h', ..."""
    common = getattr(rule, "common", None)
    if common is None:
        return "peak value {v}"
    window = _span(float(common.window)) if getattr(common, "window", None) else ""
    field = getattr(rule, "field", None)
    kind = common.type
    if kind in ("threshold", "list_match"):
        return f"peak {{v}} in {window}"
    if kind == "distinct":
        return f"peak {{v}} distinct {field} in {window}"
    if kind == "sum":
        return f"{field} total {{v}} in {window} at the peak"
    if kind == "spike":
        return f"{{v}}× its usual rate over {window}"
    if kind == "seasonal":
        return "{v} standard deviations from the usual for this time"
    return "peak value {v}"


def done_text(alert: Alert, done: Mapping[int, str], firewall: str | None = None) -> str:
    """What fraudwatch already did about the alert (see `fraudwatch.notify.done`)."""
    return alert_done(alert, done, firewall)


def who_text(key_type: str, key: str, names: Mapping[str, str], country: Callable[[str], str | None] | None) -> str:
    """The key as a person reads it: an IP with its country, an account with its customer name."""
    if key_type == "global":
        return "switch-wide"
    first, *rest = key.split("|")
    label = _KEY_LABEL.get(key_type, key_type)
    out = f"{label} {first}"
    if key_type == "ip" and country is not None:
        try:
            cc = country(first)
        except Exception:  # a lookup problem never stops a notification
            cc = None
        if cc:
            out += f" ({cc})"
    if key_type == "account" and names.get(first):
        out += f" — {names[first]}"
    if rest:
        out += " / " + " / ".join(rest)
    return out


def _facts_of_evidence(evidence: Mapping[str, Any], limit: int) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in evidence.items():
        if k in _POINTER_KEYS or len(out) >= MAX_FACTS:
            continue
        if isinstance(v, list | tuple):
            shown = ", ".join(clean(x, 40) for x in v[:MAX_LIST])
            text = shown + (f" (+{len(v) - MAX_LIST} more)" if len(v) > MAX_LIST else "")
        elif isinstance(v, float):
            text = f"{v:,.2f}"
        elif isinstance(v, dict):
            text = ", ".join(f"{clean(a, 30)}={clean(c, 30)}" for a, c in list(v.items())[:MAX_LIST])
        else:
            text = str(v)
        out[clean(k, 40)] = clean(text, limit * 2)
    return out


def facts(alert: Alert, done: Mapping[int, str], names: Mapping[str, str],
          country: Callable[[str], str | None] | None, limit: int, label: str = "peak value {v}",
          firewall: str | None = None) -> dict[str, Any]:
    """The alert reduced to what a message shows (JSON-able); `label` reads its value (see `value_label`);
    `firewall`: the enforcer's backend (a dry run never says banned)."""
    return {
        "how_much": f"{_num(alert.count)} events, " + label.replace("{v}", _num(alert.value)),
        "id": alert.id, "rule": alert.rule, "severity": alert.severity, "key_type": alert.key_type,
        "key": clean(alert.key, limit), "who": clean(who_text(alert.key_type, alert.key, names, country), limit),
        "count": int(alert.count), "value": float(alert.value), "first_seen": _iso(alert.first_seen),
        "last_seen": _iso(alert.last_seen), "detected_at": _iso(alert.detected_at), "action": alert.action,
        "trusted": bool(alert.trusted), "report_only": bool(alert.report_only),
        "done": clean(done_text(alert, done, firewall), limit * 2), "description": clean(alert.description, limit * 3),
        "facts": _facts_of_evidence(alert.evidence or {}, limit),
        "show": f"fraudwatch alerts show {alert.id}",
    }


def _iso(t: dt.datetime) -> str:
    return (t if t.tzinfo else t.replace(tzinfo=dt.UTC)).astimezone(dt.UTC).isoformat()


def when(iso: str, zone: zoneinfo.ZoneInfo) -> str:
    """'2026-11-20 03:00:12 UTC (11:00:12 Asia/Shanghai)'; only UTC when the local zone is UTC."""
    t = dt.datetime.fromisoformat(iso).astimezone(dt.UTC)
    out = t.strftime("%Y-%m-%d %H:%M:%S UTC")
    if zone.key != "UTC":
        local = t.astimezone(zone)
        day = "" if local.date() == t.date() else local.strftime("%Y-%m-%d ")
        out += f" ({day}{local.strftime('%H:%M:%S')} {zone.key})"
    return out


def _num(v: float) -> str:
    return f"{int(v):,}" if float(v).is_integer() else f"{v:,.2f}"


def alert_doc(f: Mapping[str, Any], kind: str, zone: zoneinfo.ZoneInfo, limit: int, *,
              previous: str | None = None, held: int = 0) -> Doc:
    """One alert. `kind` is alert or update; an update says why (severity rose, still active)."""
    sev = str(f["severity"]).upper()
    tag = "UPDATE " if kind == "update" else ""
    doc = Doc(title=clean(f"[{tag}{sev}] {f['rule']}: {f['who']}", 200))
    doc.line(b(f"{sev}"), " ", b(str(f["rule"])), " — ", data(f["description"], limit * 3))
    if kind == "update":
        if previous and previous != f["severity"]:
            doc.line(b("Update: "), f"severity rose from {previous} to {f['severity']}")
        else:
            doc.line(b("Update: "), "still active")
        if held:
            doc.line(f"{held:,} update(s) held back since the last message (realert)")
    doc.line(b("Who: "), data(f["who"], limit))
    doc.line(b("Done: "), data(f["done"], limit * 2))
    doc.line(b("More: "), code(str(f["show"])))
    doc.line(b("How much: "), str(f.get("how_much") or f"{_num(f['count'])} events"))
    for k, v in f["facts"].items():
        doc.line(Seg(f"  {k}: ", "data"), data(v, limit * 2))
    doc.line(b("Since: "), when(f["first_seen"], zone))
    doc.line(b("Last seen: "), when(f["last_seen"], zone))
    doc.payload = {"kind": kind, **{k: v for k, v in f.items()}, "previous_severity": previous,
                   "held_back": held}
    return doc


def digest_doc(rows: Sequence[Mapping[str, Any]], total: int, severities: Mapping[str, int], kind: str,
               group: str, window: tuple[str, str], zone: zoneinfo.ZoneInfo, limit: int) -> Doc:
    """Many alerts in one message: counts, then a table of the top rows (by event count)."""
    worst = "critical" if severities.get("critical") else "warning"
    rules = Counter(str(r["rule"]) for r in rows)
    what = group if group != "*" else ("warnings held through quiet hours" if kind == "quiet" else "alerts")
    doc = Doc(title=clean(f"[{worst.upper()}] {what}: {total:,} alert(s)", 200))
    if group != "*":
        desc = rows[0]["description"] if rows else ""
        doc.line(b(f"{total:,}"), " alerts of ", b(group), " — ", data(desc, limit * 3))
    else:
        doc.line(b(f"{total:,}"), " " + ("warnings held back during quiet hours" if kind == "quiet" else "alerts"))
    doc.line(b("Severity: "), ", ".join(f"{n:,} {s}" for s, n in sorted(severities.items())))
    doc.line(b("Between: "), when(window[0], zone), " and ", when(window[1], zone))
    since = dt.datetime.fromisoformat(window[0]).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    more = f"fraudwatch alerts list --since {since}" + (f" --rule {group}" if group != "*" else "")
    doc.line(b("More: "), code(more), " · ", code("fraudwatch alerts show ID"))
    header = ("who", "rule", "id", "severity", "events", "last seen", "done") if group == "*" or len(rules) > 1 \
        else ("who", "id", "severity", "events", "last seen", "done")
    first, last = (dt.datetime.fromisoformat(w).astimezone(zone) for w in window)
    stamp = "%H:%M:%S" if first.date() == last.date() else "%m-%d %H:%M"
    table_rows = []
    for r in rows:
        cells = {"who": clean(r["who"], limit), "rule": str(r["rule"]), "id": str(r["id"]),
                 "severity": str(r["severity"]), "events": _num(r["count"]),
                 "last seen": dt.datetime.fromisoformat(r["last_seen"]).astimezone(zone).strftime(stamp),
                 "done": clean(r["done"], limit)}
        table_rows.append(tuple(cells[h] for h in header))
    doc.blocks.append(Table(header, table_rows, total, more))
    doc.payload = {"kind": kind, "group": group, "keys": total, "severities": dict(severities),
                   "first_seen": window[0], "last_seen": window[1], "rows": [dict(r) for r in rows],
                   "list": more}
    return doc


def test_doc(channel: str, now: dt.datetime, zone: zoneinfo.ZoneInfo) -> Doc:
    doc = Doc(title=f"fraudwatch test message to {channel}")
    doc.line(b("Test: "), "if you can read this, channel ", b(channel), " reaches you.")
    doc.line(b("Sent: "), when(now.astimezone(dt.UTC).isoformat(), zone))
    doc.payload = {"kind": "test", "channel": channel}
    return doc
