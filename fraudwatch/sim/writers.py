"""Turn the collected events into the files of a simulated switch folder."""

from __future__ import annotations

import csv
import datetime as dt
import os
from operator import itemgetter
from pathlib import Path

from fraudwatch.sim import labels
from fraudwatch.sim.billing import Balance
from fraudwatch.sim.model import TRUSTED_NETWORK
from fraudwatch.sim.sink import Cdr, Incident, Sink

CDR_COLUMNS = (
    "flowno", "starttime", "stoptime", "holdtime", "feetime", "fee", "customeraccount",
    "customername", "callere164", "calleee164", "calleraccesse164", "calleeaccesse164", "callerip", "calleeip",
    "callergatewayid", "calleegatewayid", "callertogatewaye164", "calleetogatewaye164", "callerareacode",
    "calllevel", "enddirection", "endreason", "agentaccount", "agentfee", "callercallid", "calleecallid",
)  # fmt: skip
FIRST_FLOWNO = 1_000_001
STAT_EVERY_MS = 300_000
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

TOML = f"""\
# fraudwatch configuration for this simulated VOS3000 folder (written by fraudwatch.sim).
[store]
path = "fraudwatch.duckdb"

[[sources]]
path = "sipproxy.log"
format = "vos3000-sipproxy"

[[sources]]
path = "mbx.log"
format = "vos3000-mbx"

[[sources]]
path = "kern.log"
format = "linux-netfilter"

[[sources]]
path = "cdr/"
format = "vos3000-cdr"

[[sources]]
path = "customers.csv"
format = "vos3000-customers"

[trusted]
networks = ["{TRUSTED_NETWORK}"]   # the simulated carrier peers and the hosted PBX platform
accounts = []
"""


class _Clock:
    """Formats epoch milliseconds, caching the per-second part (many lines share a second)."""

    def __init__(self) -> None:
        self._sec = -1
        self._text = ""

    def _second(self, sec: int) -> dt.datetime:
        return dt.datetime.fromtimestamp(sec, dt.UTC)

    def log(self, ts: int) -> str:
        sec, ms = divmod(ts, 1000)
        if sec != self._sec:
            self._sec, self._text = sec, self._second(sec).strftime("%Y-%m-%d %H:%M:%S")
        return f"{self._text}.{ms:03d}"

    def syslog(self, ts: int) -> str:
        d = self._second(ts // 1000)
        return f"{_MONTHS[d.month - 1]} {d.day:2d} {d:%H:%M:%S}"


def _user(body: str, key: str, end: str) -> str:
    return body.split(key, 1)[1].split(end, 1)[0]


def add_stats(sink: Sink, registered: list[str]) -> None:
    """The proxy's five-minute STAT line: requests received in the interval, calls up, endpoints registered
    (``registered``: the endpoints already registered when the log begins)."""
    sip = sorted(sink.sip_lines, key=itemgetter(0))
    mbx = sorted(sink.mbx_lines, key=itemgetter(0))
    online: dict[str, None] = dict.fromkeys(registered)
    dialogs = requests = 0
    i = j = 0
    stats = []
    for boundary in range(sink.start_ms + STAT_EVERY_MS, sink.end_ms, STAT_EVERY_MS):
        while i < len(sip) and sip[i][0] < boundary:
            body = sip[i][1]
            if body.startswith("[INFO] RECV "):
                requests += 1
            elif body.startswith("[INFO] SEND 200 OK ") and " method=REGISTER " in body:
                user = _user(body, ' user="', '" callid=')
                if body.endswith(" expires=0"):
                    online.pop(user, None)
                else:
                    online[user] = None
            i += 1
        while j < len(mbx) and mbx[j][0] < boundary:
            body = mbx[j][1]
            if "] [CALL] START " in body:
                dialogs += 1
            elif "] [CALL] END " in body:
                dialogs -= 1
            elif "] [REG] OFFLINE " in body:
                online.pop(_user(body, 'e164="', '" from='), None)
            elif "[SYS] registrations flushed" in body:
                online.clear()
            j += 1
        stats.append((boundary, f"[INFO] STAT transactions={requests} dialogs={max(0, dialogs)} "
                                f"registrations={len(online)}"))
        requests = 0
    sink.sip_lines.extend(stats)


def _write_log(path: Path, lines: list[tuple[int, str]], clock: _Clock) -> int:
    lines.sort(key=itemgetter(0))
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        fh.write("".join(f"{clock.log(ts)} {body}\n" for ts, body in lines))
    return len(lines)


def _write_kern(path: Path, lines: list[tuple[int, str]], clock: _Clock, boot_ms: int, end_ms: int) -> int:
    """kern.log in classic syslog form. Its stamps carry no year, which readers take from the file's
    modification time, so that is set to the end of the simulated period."""
    lines.sort(key=itemgetter(0))
    out = []
    for ts, message in lines:
        up_us = (ts - boot_ms) * 1000 + (ts * 7919) % 1000
        out.append(f"{clock.syslog(ts)} vos3000 kernel: [{up_us // 1_000_000:5d}.{up_us % 1_000_000:06d}] "
                   f"{message}\n")
    path.write_text("".join(out), encoding="utf-8", newline="\n")
    os.utime(path, (end_ms / 1000, end_ms / 1000))
    return len(out)


def money(value_e4: int) -> str:
    sign = "-" if value_e4 < 0 else ""
    v = abs(value_e4)
    return f"{sign}{v // 10_000}.{v % 10_000:04d}"


def _cdr_row(flowno: int, r: Cdr) -> list[object]:
    return [flowno, r.starttime, r.stoptime, r.holdtime, r.feetime, money(r.fee_e4),
            r.customeraccount, r.customername, r.callere164, r.calleee164, r.calleraccesse164,
            r.calleeaccesse164, r.callerip, r.calleeip, r.callergatewayid, r.calleegatewayid,
            r.callertogatewaye164, r.calleetogatewaye164, r.callerareacode, r.calllevel, r.enddirection,
            r.endreason, r.agentaccount, money(r.agentfee_e4), r.callercallid, r.calleecallid]


def _write_cdrs(folder: Path, sink: Sink, days: int) -> dict[str, int]:
    """One e_cdr_YYYYMMDD.csv per UTC day of the period (by stoptime), flowno increasing with stoptime."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("e_cdr_*.csv"):
        stale.unlink()
    rows = sorted(sink.cdrs, key=lambda r: (r.stoptime, r.starttime))
    per_day: dict[str, list[list[object]]] = {}
    for d in range(days):
        day = dt.datetime.fromtimestamp(sink.start_ms / 1000 + d * 86_400, dt.UTC).strftime("%Y%m%d")
        per_day[day] = []
    for n, row in enumerate(rows):
        day = dt.datetime.fromtimestamp(row.stoptime / 1000, dt.UTC).strftime("%Y%m%d")
        per_day[day].append(_cdr_row(FIRST_FLOWNO + n, row))
    files = {}
    for day, day_rows in per_day.items():
        path = folder / f"e_cdr_{day}.csv"
        with path.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(CDR_COLUMNS)
            writer.writerows(day_rows)
        files[f"cdr/{path.name}"] = len(day_rows) + 1
    return files


def _write_customers(path: Path, rows: list[Balance]) -> int:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(("account", "name", "money", "limitmoney"))
        for b in rows:
            writer.writerow((b.account, b.name, f"{b.money_e2 / 100:.2f}", f"{b.limit_e2 / 100:.2f}"))
    return len(rows) + 1


def write_all(out: Path, sink: Sink, days: int, balances: list[Balance], incidents: list[Incident],
              boot_ms: int, registered: list[str]) -> dict[str, int]:
    """Write every file; return relative path -> number of lines."""
    out.mkdir(parents=True, exist_ok=True)
    clock = _Clock()
    add_stats(sink, registered)
    files = {
        "sipproxy.log": _write_log(out / "sipproxy.log", sink.sip_lines, clock),
        "mbx.log": _write_log(out / "mbx.log", sink.mbx_lines, clock),
        "kern.log": _write_kern(out / "kern.log", sink.kern_lines, clock, boot_ms, sink.end_ms),
    }
    files.update(_write_cdrs(out / "cdr", sink, days))
    files["customers.csv"] = _write_customers(out / "customers.csv", balances)
    text = labels.render(incidents)
    (out / "labels.csv").write_text(text, encoding="utf-8", newline="\n")
    files["labels.csv"] = text.count("\n")
    (out / "fraudwatch.toml").write_text(TOML, encoding="utf-8", newline="\n")
    files["fraudwatch.toml"] = TOML.count("\n")
    return dict(sorted(files.items()))
