"""`fraudwatch incidents`: the alerts of one attack, joined (fraudwatch.detect.incidents) — list them newest
first, or show one: its alerts, their timeline and evidence, the bans made, and whether it is still going on.
`list --labels FILE` puts them beside a simulation's labelled attacks."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from fraudwatch.cli.context import config_of, parse_time
from fraudwatch.cli.output import cell, out, plain, print_json, text
from fraudwatch.cli.output import table as new_table
from fraudwatch.config import Config
from fraudwatch.errors import ExitStatus, StoreError, UsageError
from fraudwatch.netaddr import parse_ip

STILL_ACTIVE = dt.timedelta(hours=1)  # an open incident's alerts with events this close to its last are "active"
EVIDENCE_FACTS = ("username", "new_terms", "user_agent", "src_ip", "callee_number", "keys", "spent", "available",
                  "links")


def add_arguments(name: str, parser: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="incidents_command", metavar="ACTION", parser_class=type(parser))
    ls = sub.add_parser("list", parents=[common], help="incidents, newest first")
    ls.add_argument("--since", metavar="T", help="only incidents active since T (ISO time or 24h, 7d)")
    ls.add_argument("--ip", help="only incidents about or tied to this address")
    ls.add_argument("--account", help="only incidents about or tied to this account (SIP user or billing account)")
    ls.add_argument("--key", help="only incidents with an alert on this key (an IP, an account, a prefix ...)")
    ls.add_argument("--state", choices=["open", "ended"])
    ls.add_argument("--limit", type=int, default=200)
    ls.add_argument("--labels", type=Path, metavar="FILE",
                    help="a simulation's labels.csv: show its labelled attacks beside the incidents that hold them")
    ls.add_argument("--json", action="store_true", help="print as a JSON array")
    show = sub.add_parser("show", parents=[common], help="one incident: alerts, timeline, evidence, bans, state")
    show.add_argument("id", metavar="ID", help="incident id (a unique start of it is enough)")
    show.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    if args.incidents_command is None:
        raise UsageError("incidents: say list or show (see fraudwatch incidents --help)")
    from fraudwatch.store.db import open_read_only

    cfg = config_of(args)
    if args.incidents_command == "list" and args.ip is not None and parse_ip(args.ip) is None:
        raise UsageError(f"--ip {args.ip!r} is not an IP address")
    con = open_read_only(cfg.store_path)
    try:
        if args.incidents_command == "show":
            return _show(con, args, cfg)
        return _list(con, args)
    finally:
        con.close()


def _list(con: Any, args: argparse.Namespace) -> int:
    from fraudwatch.store.incidents import count_incidents, list_incidents

    ip = str(parse_ip(args.ip)) if args.ip else None
    rows = list_incidents(con, since=parse_time(args.since), ip=ip, account=args.account, key=args.key,
                          state=args.state, limit=args.limit)
    if args.labels is not None:
        return _beside_labels(con, args.labels, rows, args.json)
    if args.json:
        print_json(rows)
        return ExitStatus.OK
    console = out()
    if not rows:
        total = count_incidents(con)
        filters = [f"--{k} {v}" for k, v in (("since", args.since), ("ip", args.ip), ("account", args.account),
                                             ("key", args.key), ("state", args.state)) if v]
        if total and filters:
            console.print(f"no incident matches {text(' '.join(filters))}; the store holds {total:,} "
                          "(fraudwatch incidents list, without filters)")
        else:
            console.print("no incidents yet (incidents are made with alerts: fraudwatch detect, ingest --detect, "
                          "or the watcher)")
        return ExitStatus.OK
    console.print(_table(rows))
    return ExitStatus.OK


def _who(r: dict[str, Any]) -> list[str]:
    """Who an incident is about, a line each (an address, an account, or how many), so none is cut."""
    if r["kind"] == "switch":
        return ["switch-wide"]
    parts = []
    if r["ips"]:
        parts.append(r["ips"][0] if len(r["ips"]) == 1 else f"{len(r['ips'])} addresses")
    if r["accounts"]:
        parts.append(f"account {r['accounts'][0]}" if len(r["accounts"]) == 1 else f"{len(r['accounts'])} accounts")
    return parts


def _table(rows: list[dict[str, Any]]) -> Table:
    """Incidents a row each, stacked (id over when it opened, severity over state, who a line each) so that the
    table fits 80 columns and no id, address or account is cut over two lines."""
    table = new_table("incident / opened", "severity / state", "who", "alerts", "kind / action",
                      whole=("incident / opened", "who", "alerts"), right=("alerts",))
    for r in rows:
        sev = "[bold red]critical[/]" if r["severity"] == "critical" else "[yellow]warning[/]"
        action = r["action"] + (" (trusted)" if r["trusted"] else "") + (" (report-only)" if r["report_only"] else "")
        table.add_row(Text(f"{plain(r['id'])}\n{plain(r['opened_at'])}"), f"{sev}\n{text(r['state'])}",
                      Text("\n".join(plain(w) for w in _who(r))), cell(r["members"]),
                      Text(f"{plain(r['kind'])}\n{plain(action)}"))
    return table


def _beside_labels(con: Any, path: Path, rows: list[dict[str, Any]], as_json: bool) -> int:
    """Each labelled attack with the incidents that hold it; then the incidents no attack explains."""
    from fraudwatch.detect.incident_labels import allowed_incidents, load_labels, match
    from fraudwatch.store.incidents import proposed_bans

    labels = load_labels(path)
    held = match(labels, rows)
    days = _days_stored(con)
    explained = {i for h in held for i in h.incidents}
    once = sum(1 for h in held if len(h.incidents) == 1)
    would_ban = proposed_bans(con, [r["id"] for r in rows])
    if as_json:
        print_json({"labels": [{"label": h.label.id, "kind": h.label.kind, "incidents": list(h.incidents)}
                               for h in held],
                    "incidents": len(rows), "unexplained": [r["id"] for r in rows if r["id"] not in explained],
                    "in_exactly_one": once, "allowed": allowed_incidents(labels, days),
                    "shared": sorted(i for i in explained if sum(i in h.incidents for h in held) > 1),
                    "would_ban": [{"ip": ip, "incident": iid} for ip, iid in would_ban]})
        return ExitStatus.OK
    console = out()
    table = new_table("label", "kind", "start", "incident", "its title", whole=("label", "incident"),
                      title="labelled attacks and the incidents that hold them")
    by_id = {r["id"]: r for r in rows}
    for h in held:
        first = by_id[h.incidents[0]] if h.incidents else None
        found = ", ".join(h.incidents) if h.incidents else "[bold red]none: missed[/]"
        table.add_row(cell(h.label.id), cell(h.label.kind), cell(h.label.start),
                      found if not h.incidents else cell(found), cell(first["title"] if first else ""))
    console.print(table)
    extra = [r for r in rows if r["id"] not in explained]
    if extra:
        console.print(f"{len(extra)} incident(s) no labelled attack explains:")
        console.print(_table(extra))
    console.print(f"{once} of {len(labels)} labelled attack(s) in exactly one incident; {len(rows)} incident(s) "
                  f"over {days} day(s) (the goal: at most {allowed_incidents(labels, days):g})")
    shared = [i for i in explained if sum(i in h.incidents for h in held) > 1]
    if shared:
        console.print(f"{len(shared)} incident(s) hold more than one labelled attack: "
                      f"{text(', '.join(sorted(shared)))}")
    if would_ban:
        console.print(f"bans the watcher would make for them ({len(would_ban)} address(es); a replay bans nothing):")
        for ip, iid in would_ban:
            console.print(f"  {text(ip)}  (incident {text(iid)})")
    else:
        console.print("bans the watcher would make for them: none")
    return ExitStatus.OK


def _days_stored(con: Any) -> int:
    """How many days the stored events span (whole days, at least one): the goal allows 2 incidents a day."""
    from fraudwatch.detect.runners.replay import TIME_COLUMN, data_range

    lo, hi = data_range(con, [t for t in TIME_COLUMN if t != "rejects"])
    return max(1, math.ceil((hi - lo) / dt.timedelta(days=1))) if lo and hi else 1


def _show(con: Any, args: argparse.Namespace, cfg: Config) -> int:
    from fraudwatch.formats.registry import load_formats
    from fraudwatch.report.evidence import describe, lines_of
    from fraudwatch.store.incidents import incident_alerts, incident_bans, incident_by_id

    found = incident_by_id(con, args.id)
    if not found:
        raise StoreError(f"no incident {args.id} (fraudwatch incidents list)")
    if len(found) > 1 and found[0]["id"] != args.id:
        raise UsageError(f"{args.id} starts {len(found)} incident ids ({', '.join(r['id'] for r in found[:5])}): "
                         "give more of it")
    inc = found[0]
    alerts = incident_alerts(con, inc["id"], inc["origin"])
    bans = incident_bans(con, inc["ips"], [a["id"] for a in alerts])
    if args.json:
        print_json({**inc, "alerts": [{k: v for k, v in a.items() if k != "evidence"} for a in alerts],
                    "bans": bans})
        return ExitStatus.OK
    console = out()
    console.print(f"[bold]incident {text(inc['id'])}[/]: {text(inc['title'])}")
    for label, value in (("kind", inc["kind"]), ("severity", inc["severity"]), ("action", inc["action"]),
                         ("first event", inc["first_seen"]), ("last event", inc["last_seen"]),
                         ("alerts", inc["members"]), ("events", inc["count"]), ("origin", inc["origin"])):
        console.print(f"  {label:12s} {text(value)}")
    if inc["ips"]:
        console.print(f"  {'addresses':12s} {text(_listed(inc['ips']))}")
    if inc["accounts"]:
        console.print(f"  {'accounts':12s} {text(_listed(inc['accounts']))}")
    if inc["merged_into"]:
        console.print(f"  part of incident {text(inc['merged_into'])} (fraudwatch incidents show "
                      f"{text(inc['merged_into'])})")
    elif inc["state"] == "open":
        console.print(f"  [bold]still going on[/]: its last event was at {text(inc['last_seen'])}; it ends after "
                      "an hour or more without one")
        recent = [a for a in alerts if a["last_seen"] >= inc["last_seen"] - STILL_ACTIVE]
        for a in recent[:10]:
            console.print(f"    active: {text(a['rule'])} on {text(a['key_type'])} {text(a['key'])} "
                          f"(last event {text(a['last_seen'])})")
    else:
        console.print(f"  ended at {text(inc['ended_at'])} (quiet since its last event)")
    console.print("timeline:")
    timeline = new_table("detected", "alert", "severity", "rule", "key", "events", "action",
                         whole=("alert", "rule", "key", "events"), right=("alert", "events"))
    for a in alerts:
        timeline.add_row(cell(a["detected_at"]), cell(a["id"]), cell(a["severity"]), cell(a["rule"]),
                         cell(f"{a['key_type']} {a['key']}"), cell(a["count"]), cell(a["action"]))
    console.print(timeline)
    console.print("evidence:")
    formats, zones = load_formats(cfg.format_dirs), [src.timezone for src in cfg.sources]
    for a in alerts[:20]:
        evidence = json.loads(a["evidence"] or "{}")
        facts = {k: evidence[k] for k in EVIDENCE_FACTS if k in evidence}
        console.print(f"  alert {a['id']} {text(a['rule'])}: {text(json.dumps(facts, default=str)[:300])}")
        for item in lines_of(con, evidence, formats, zones, limit=2):  # checked by content, after logrotate too
            console.print(f"    {text(describe(item))}")
    if len(alerts) > 20:
        console.print(f"  ... and {len(alerts) - 20} more alert(s) (fraudwatch alerts show ID)")
    if bans:
        console.print("actions taken (bans):")
        for b in bans:
            state = "removed" if b["removed_at"] else f"until {plain_time(b['expires_at'])}"
            console.print(f"  {text(b['network'])} by {text(b['backend'])} at {text(b['created_at'])} "
                          f"({text(b['source'])}, {text(state)})")
    else:
        console.print("actions taken: no ban for its addresses")
    return ExitStatus.OK


def _listed(items: list[str], keep: int = 8) -> str:
    return ", ".join(items[:keep]) + (f" (+{len(items) - keep} more)" if len(items) > keep else "")


def plain_time(value: dt.datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S%z") if value else "?"
