"""What an incident message says: opened, escalated or ended — and a digest of several incidents.

Like an alert, an incident is first reduced to `incident_facts` (a JSON-able dict), so a message rendered now
and one rendered from a digest or a held escalation after a restart say the same thing. Every text that may come
from an attacker (the title, IPs, accounts, keys, the enforcer's words) is cleaned here and shown as `data`, which
render.py escapes for the channel's markup.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fraudwatch.detect.incident import Incident
from fraudwatch.notify.done import ACTION_TEXT, Member, incident_done
from fraudwatch.notify.messages import MAX_LIST, when, who_text
from fraudwatch.notify.render import Doc, Table, b, clean, code, data

WHO_SHOWN = 3  # IPs or accounts named in the who line; the rest are counted
_KEY_TYPES = {"ip": "IP", "account": "account"}


def _iso(t: dt.datetime | None) -> str | None:
    if t is None:
        return None
    return (t if t.tzinfo else t.replace(tzinfo=dt.UTC)).astimezone(dt.UTC).isoformat()


def _named(kind: str, values: Sequence[str], names: Mapping[str, str],
           country: Callable[[str], str | None] | None, limit: int) -> str:
    """'IP 203.0.113.7 (NL)', or '412 IPs: 203.0.113.7 (NL), 203.0.113.8, 203.0.113.9, …'."""
    shown = [who_text(kind, v, names, country if i < WHO_SHOWN else None) for i, v in enumerate(values[:WHO_SHOWN])]
    if len(values) == 1:
        return clean(shown[0], limit)
    label = _KEY_TYPES.get(kind, kind)
    bare = [s.split(" ", 1)[1] if " " in s else s for s in shown]  # 'IP 1.2.3.4 (NL)' -> '1.2.3.4 (NL)'
    return clean(f"{len(values):,} {label}s: " + ", ".join(bare) + (", …" if len(values) > WHO_SHOWN else ""),
                 limit * 2)


def who_line(inc: Incident, names: Mapping[str, str], country: Callable[[str], str | None] | None,
             limit: int) -> str:
    """Who is behind it or hit by it: its IPs and accounts, counted when many; else its keys."""
    parts = []
    if inc.ips:
        parts.append(_named("ip", inc.ips, names, country, limit))
    if inc.accounts:
        parts.append(_named("account", inc.accounts, names, None, limit))
    if not parts:
        others = [k.split(":", 1) for k in inc.keys if ":" in k]
        if not others or all(t == "global" for t, _ in others):
            return "switch-wide"
        shown = [who_text(t, v, names, None) for t, v in others[:WHO_SHOWN]]
        more = f" (+{len(others) - WHO_SHOWN:,} more)" if len(others) > WHO_SHOWN else ""
        return clean(", ".join(shown) + more, limit * 2)
    return "; ".join(parts)


def incident_facts(inc: Incident, change: str, members: Sequence[Member], names: Mapping[str, str],
                   country: Callable[[str], str | None] | None, limit: int, *, firewall: str | None = None,
                   before: tuple[str, str] | None = None, folded: int = 0,
                   joined: Sequence[str] = ()) -> dict[str, Any]:
    """The incident reduced to what a message shows (JSON-able). `change`: opened, escalated or ended; `before`:
    the (severity, action) the last message said, when it differs; `folded`: the escalations since then that this
    message tells (none of them told on its own); `joined`: incidents told before that turned out part of this one."""
    return {
        "id": inc.id, "change": change, "incident_kind": inc.kind, "title": clean(inc.title, limit * 2),
        "severity": inc.severity, "action": inc.action, "state": inc.state,
        "before": {"severity": before[0], "action": before[1]} if before else None,
        "who": who_line(inc, names, country, limit),
        "ips": [clean(ip, limit) for ip in inc.ips[:MAX_LIST]], "ip_count": len(inc.ips),
        "accounts": [clean(a, limit) for a in inc.accounts[:MAX_LIST]], "account_count": len(inc.accounts),
        "rules": [clean(r, limit) for r in inc.rules[:MAX_LIST]], "rule_count": len(inc.rules),
        "members": int(inc.members), "count": int(inc.count), "key_count": len(inc.keys),
        "first_seen": _iso(inc.first_seen), "last_seen": _iso(inc.last_seen), "opened_at": _iso(inc.opened_at),
        "ended_at": _iso(inc.ended_at), "trusted": bool(inc.trusted), "report_only": bool(inc.report_only),
        "done": [clean(line, limit * 3) for line in incident_done(inc, members, firewall)],
        "folded": folded, "joined": [clean(j, limit) for j in joined[:MAX_LIST]],
        "show": f"fraudwatch incidents show {inc.id}",
    }


def _span(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    d, rest = divmod(seconds, 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    parts = [f"{v}{u}" for v, u in ((d, "d"), (h, "h"), (m, "m")) if v]
    return " ".join(parts[:2]) if parts else f"{s}s"


def _num(v: int) -> str:
    return f"{v:,}"


def incident_title(f: Mapping[str, Any]) -> str:
    sev = str(f["severity"]).upper()
    if f["change"] == "ended":
        head = f"[ENDED {sev}] incident {f['id']}"
    elif f["change"] == "escalated":
        head = f"[{sev}] incident {f['id']} escalated"
    else:
        head = f"[{sev}] new incident {f['id']}"
    return clean(f"{head}: {f['title']}", 200)


def incident_doc(f: Mapping[str, Any], zone: zoneinfo.ZoneInfo, limit: int) -> Doc:
    """One incident message, most important first (a phone shows the top): what, what changed, who, what was
    done, the command to see more; then how much, which rules, since when."""
    sev = str(f["severity"]).upper()
    doc = Doc(title=incident_title(f))
    doc.line(b(sev), " incident ", b(str(f["id"])), " — ", data(f["title"], limit * 2))
    before = f.get("before")
    if f["change"] == "escalated" or (before and f["change"] == "ended"):
        steps = []
        if before and before["severity"] != f["severity"]:
            steps.append(f"severity {before['severity']} → {f['severity']}")
        if before and before["action"] != f["action"]:
            steps.append(f"action {ACTION_TEXT.get(before['action'], before['action'])} → "
                         f"{ACTION_TEXT.get(f['action'], f['action'])}")
        label = "Escalated: " if f["change"] == "escalated" else "Escalated since the last message: "
        doc.line(b(label), "; ".join(steps) or f"now {f['severity']}, {ACTION_TEXT.get(f['action'], f['action'])}")
    if f["change"] == "ended":
        opened = dt.datetime.fromisoformat(str(f["first_seen"]))
        ended = dt.datetime.fromisoformat(str(f["ended_at"] or f["last_seen"]))
        lasted = _span((ended - opened).total_seconds())
        doc.line(b("Ended: "), f"no event since {when(str(f['last_seen']), zone)}; it lasted {lasted}")
    if f.get("joined"):
        doc.line(b("Joined: "), "incident ", data(", ".join(f["joined"]), limit * 2),
                 " (told before) turned out part of this one")
    doc.line(b("Who: "), data(f["who"], limit * 2))
    for i, line in enumerate(f["done"]):
        doc.line(b("Done: ") if i == 0 else "      ", data(line, limit * 3))
    doc.line(b("More: "), code(str(f["show"])))
    doc.line(b("How much: "), f"{_num(f['count'])} events in {_num(f['members'])} alert(s)")
    more_rules = f" (+{f['rule_count'] - len(f['rules'])} more)" if f["rule_count"] > len(f["rules"]) else ""
    doc.line(b("Rules: "), data(", ".join(f["rules"]) + more_rules, limit * 3))
    doc.line(b("Since: "), when(str(f["first_seen"]), zone))
    if f["change"] != "ended":
        doc.line(b("Last seen: "), when(str(f["last_seen"]), zone))
    folded = int(f.get("folded") or 0)
    if f["change"] == "escalated" and folded > 1:
        doc.line(f"{folded:,} escalations since the last message, told in this one")
    elif f["change"] == "ended" and folded:
        doc.line(f"{folded:,} escalation(s) since the last message, told only in this summary")
    doc.payload = {"kind": f"incident-{f['change']}", **dict(f)}
    return doc


def incident_digest_doc(rows: Sequence[Mapping[str, Any]], total: int, severities: Mapping[str, int], kind: str,
                        window: tuple[str, str], zone: zoneinfo.ZoneInfo, limit: int) -> Doc:
    """Several incidents in one message (a route's digest window, or warnings held through quiet hours): counts,
    then a table of the top rows by events, each with its id for `fraudwatch incidents show`."""
    worst = "critical" if severities.get("critical") else "warning"
    quiet = kind == "incident-quiet"
    what = "held through quiet hours" if quiet else "in the last few minutes"
    doc = Doc(title=clean(f"[{worst.upper()}] {total:,} incident(s) {what}", 200))
    doc.line(b(f"{total:,}"), " incident(s) " + ("held back during quiet hours" if quiet else "in one digest"))
    doc.line(b("Severity: "), ", ".join(f"{n:,} {s}" for s, n in sorted(severities.items())))
    doc.line(b("Between: "), when(window[0], zone), " and ", when(window[1], zone))
    doc.line(b("More: "), code("fraudwatch incidents list"), " · ", code("fraudwatch incidents show ID"))
    first, last = (dt.datetime.fromisoformat(w).astimezone(zone) for w in window)
    stamp = "%H:%M:%S" if first.date() == last.date() else "%m-%d %H:%M"
    header = ("incident", "what", "severity", "state", "events", "last seen", "done")
    table_rows: list[tuple[str, ...]] = [(clean(r["id"], limit), clean(r["title"], limit), str(r["severity"]),
                   "ended" if r["change"] == "ended" else str(r["state"]), _num(int(r["count"])),
                   dt.datetime.fromisoformat(str(r["last_seen"])).astimezone(zone).strftime(stamp),
                   clean("; ".join(r["done"]), limit)) for r in rows]
    doc.blocks.append(Table(header, table_rows, total, "fraudwatch incidents list"))
    doc.payload = {"kind": kind, "incidents": total, "severities": dict(severities), "first_seen": window[0],
                   "last_seen": window[1], "rows": [dict(r) for r in rows]}
    return doc
