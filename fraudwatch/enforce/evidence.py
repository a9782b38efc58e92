"""Spoof-resistant bans: evidence that an address really talks to us, looked up in the store once per round.

SIP over UDP has no handshake, so a line that names a source address proves nothing about who sent it: five
forged OPTIONS with a scanner's User-Agent and a customer's address would get the customer banned. A ban of an
address that registered or called successfully within `[firewall] customer_window` (a *recent customer*: a
digest-authenticated registration or an answered call needs our replies to reach it, so it cannot be forged)
therefore needs evidence that the lines against it came from it too, within the alert's time:

- **challenged then failed on the same dialog**: a Call-ID we challenged (401/407, `auth_challenge`) and that then
  failed (403, `auth_failure`, `invalid_user`) — it answered our challenge, so it received it;
- **a connection-oriented transport**: a failure from it logged over TCP, TLS, WS or WSS (a handshake precedes);
- **kernel evidence**: a netfilter LOG line of a TCP segment from it that carries ACK without SYN (a completed
  handshake). UDP LOG lines are exactly as forgeable as the SIP lines, so they do not count.

An address that is no recent customer is banned as before: a forged ban of it costs nobody anything. Without the
evidence the ban is not made and the alert says why (`Evidence.refusal`). Deciding is pure (`Evidence`); the
lookups (`lookup`, `recent_customers`) are the only I/O, one set of queries for a whole round of alerts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from fraudwatch.enforce.results import span

CONNECTED = ("TCP", "TLS", "WS", "WSS")
SLACK = dt.timedelta(minutes=1)  # before an alert's first event: a challenge that came just before it

# a success a forger cannot make: the switch accepted a registration (digest-authenticated: the peer answered our
# challenge) or a call from the address was answered and talked. Not a call's start: a scanner's toll-test INVITE
# starts a call record before it is refused (the simulator's scanner does just that)
_SUCCESS = ("(event = 'reg_online' OR (event = 'call_end' AND duration > 0) OR (event = 'response' "
            "AND direction = 'out' AND status BETWEEN 200 AND 299 AND method = 'REGISTER'))")
_FAILURE = ("(event IN ('auth_failure', 'invalid_user', 'acl_reject', 'auth_suspend') OR (event = 'response' "
            "AND direction = 'out' AND status BETWEEN 400 AND 699))")


def _challenge(a: str) -> str:
    return f"({a}.event = 'auth_challenge' OR ({a}.event = 'response' AND {a}.direction = 'out' " \
           f"AND {a}.status IN (401, 407)))"


def _failed(a: str) -> str:
    return f"({a}.event IN ('auth_failure', 'invalid_user') OR ({a}.event = 'response' AND {a}.direction = 'out' " \
           f"AND {a}.status = 403))"


@dataclass(frozen=True)
class Evidence:
    """What a round knows: the recent customers among its addresses, and those with evidence against them."""

    customers: frozenset[str]
    proven: frozenset[str]
    window: int  # seconds: `customer_window`, for the text

    def refusal(self, ip: str) -> str | None:
        """Why `ip` is not banned (None: it may be)."""
        if ip not in self.customers or ip in self.proven:
            return None
        # under 240 characters (a notification's `done` field, `[alerts] max_field` twice) for any address
        return (f"not banned: {ip} registered or called OK within {span(self.window)} and nothing shows "
                f"it sent these lines (no failure after our challenge on one Call-ID, no TCP/TLS/WS, no TCP handshake "
                f"logged): UDP can be forged")


NONE = Evidence(frozenset(), frozenset(), 0)


def _table(since: Mapping[str, dt.datetime]) -> pa.Table:
    return pa.table({"ip": pa.array(list(since), pa.string()),
                     "since": pa.array(list(since.values()), pa.timestamp("us", tz="UTC"))})


def lookup(con: duckdb.DuckDBPyConnection, since: Mapping[str, dt.datetime], now: dt.datetime, window: int,
           known: Collection[str] = (), known_at: dt.datetime | None = None) -> Evidence:
    """The evidence for the addresses of `since` (address -> the first event time of the alert against it).
    Parameterised SQL over the event views, the addresses joined as a registered Arrow table. `known`: the
    recent customers as of `known_at` (`recent_customers`, looked up every half minute): then only the successes
    since (less a minute) are read here, not the whole window on every round of a flood."""
    if not since:
        return NONE
    start = now - dt.timedelta(seconds=window)
    if known_at is not None and known_at - SLACK > start:
        start = known_at - SLACK
    con.register("_fw_evidence", _table(since))
    try:
        rows = con.execute(
            f"SELECT DISTINCT s.src_ip FROM sip_events s JOIN _fw_evidence e ON s.src_ip = e.ip "  # nosec B608 # only constant clauses of this module are formatted in; times are parameters
            f"WHERE s.ts >= ? AND {_SUCCESS} "
            f"UNION SELECT DISTINCT c.caller_ip FROM cdrs c JOIN _fw_evidence e ON c.caller_ip = e.ip "
            f"WHERE c.start_time >= ? AND c.hold_seconds > 0", [start, start]).fetchall()
        customers = frozenset(str(r[0]) for r in rows) | frozenset(ip for ip in since if ip in known)
        proven: frozenset[str] = frozenset()
        if customers:
            con.register("_fw_customers", _table({ip: since[ip] - SLACK for ip in customers}))
            try:
                rows = con.execute(
                    f"WITH ev AS (SELECT s.src_ip, s.ts, s.event, s.direction, s.status, s.call_id, s.transport "  # nosec B608 # only constant clauses of this module are formatted in; times are parameters
                    f"FROM sip_events s JOIN _fw_customers e ON s.src_ip = e.ip WHERE s.ts >= e.since) "
                    f"SELECT DISTINCT f.src_ip FROM ev f JOIN ev c ON c.src_ip = f.src_ip AND c.call_id = f.call_id "
                    f"WHERE f.call_id IS NOT NULL AND c.ts <= f.ts AND {_failed('f')} AND {_challenge('c')} "
                    f"UNION SELECT DISTINCT src_ip FROM ev WHERE upper(transport) IN {CONNECTED} AND {_FAILURE} "
                    f"UNION SELECT DISTINCT n.src_ip FROM netfilter_events n JOIN _fw_customers e ON n.src_ip = e.ip "
                    f"WHERE n.ts >= e.since AND upper(n.proto) = 'TCP' AND n.tcp_flags LIKE '%ACK%' "
                    f"AND n.tcp_flags NOT LIKE '%SYN%'").fetchall()
            finally:
                con.unregister("_fw_customers")
            proven = frozenset(str(r[0]) for r in rows)
    finally:
        con.unregister("_fw_evidence")
    return Evidence(customers, proven, window)


def recent_customers(con: duckdb.DuckDBPyConnection, now: dt.datetime, window: int) -> frozenset[str]:
    """Every address with a success within `window` before `now`: what early bans (which cannot wait for the
    store) check, and what the watcher hands the sentry."""
    since = now - dt.timedelta(seconds=window)
    rows = con.execute(f"SELECT DISTINCT src_ip FROM sip_events WHERE ts >= ? AND src_ip IS NOT NULL AND {_SUCCESS} "  # nosec B608 # only constant clauses of this module are formatted in; times are parameters
                       f"UNION SELECT DISTINCT caller_ip FROM cdrs WHERE start_time >= ? AND hold_seconds > 0 "
                       f"AND caller_ip IS NOT NULL", [since, since]).fetchall()
    return frozenset(str(r[0]) for r in rows)


SUCCESS_COLUMNS = ("event", "direction", "status", "method", "duration", "src_ip")


def successes(columns: Mapping[str, Sequence[object]], height: int) -> set[str]:
    """The addresses with a success (as `_SUCCESS` says) among sip_events rows given column by column: what the
    sentry sees in the log tail before the store has it (a registration a second before forged lines)."""
    def col(name: str) -> Sequence[object]:
        got = columns.get(name)
        return [None] * height if got is None else got

    out: set[str] = set()
    for event, direction, status, method, duration, ip in zip(*(col(c) for c in SUCCESS_COLUMNS), strict=True):
        if not isinstance(ip, str):
            continue
        if event == "reg_online" or (event == "call_end" and isinstance(duration, int) and duration > 0) or (
                event == "response" and direction == "out" and method == "REGISTER" and isinstance(status, int)
                and 200 <= status <= 299):
            out.add(ip)
    return out


def early_refusal(ip: str, customers: Collection[str], window: int) -> str | None:
    """Why an early decision (made on the log's newest lines, before the store has them) does not ban `ip`: a
    recent customer's ban waits for the rule's alert, which is checked with the whole dialog in the store."""
    if ip not in customers:
        return None
    return (f"not banned early: {ip} registered or called OK within {span(window)}; the rule's alert "
            f"decides, with the evidence in the store ([firewall] ban_evidence)")
