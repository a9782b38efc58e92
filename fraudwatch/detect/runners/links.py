"""What ties an alert to the other side of its attack, read from the events behind it: the addresses an
account-keyed alert's events came from, the accounts an address's events used. Kept in the alert's evidence as
`links` (`{"ips": [...], "accounts": [...]}`), where the incident book reads them (fraudwatch.detect.incidents).

Only an alert's first LINKED events are read (its evidence keeps its first event ids in order, so the same events
whether it was scored live or replayed), and an address in a trusted network is never a link: a carrier's trunk
carries every customer's calls and would tie them all together.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from fraudwatch.detect.decide import Alert
from fraudwatch.netaddr import IPNetwork, parse_ip

if TYPE_CHECKING:
    import duckdb

    from fraudwatch.detect.spec import Common

LINKED = 5  # events read per alert
# by source: the id column the evidence lists, and the columns that name an address and an account
_COLUMNS = {
    "sip_events": ("ids", "id", ("src_ip",), ("username", "account")),
    "netfilter_events": ("ids", "id", ("src_ip",), ()),
    "cdrs": ("flownos", "flowno", ("caller_ip",), ("customer_account",)),
}


def add_links(con: duckdb.DuckDBPyConnection, rules: Mapping[str, Common], alerts: Sequence[Alert],
              trusted: Sequence[IPNetwork] = ()) -> None:
    """Set `evidence["links"]` of the alerts that have event ids and no complete links yet (one query per
    source); an alert's links are read again while it has fewer than LINKED events behind them."""
    wanted: dict[str, dict[int, list[Alert]]] = {}
    for a in alerts:
        c = rules.get(a.rule)
        if c is None or c.source not in _COLUMNS or a.key_type == "global":
            continue
        ids_key = _COLUMNS[c.source][0]
        ids = [int(x) for x in (a.evidence.get(ids_key) or [])[:LINKED] if isinstance(x, int)]
        have = a.evidence.get("links")
        if not ids or (isinstance(have, dict) and have.get("read", 0) >= len(ids)):
            continue
        for i in ids:
            wanted.setdefault(c.source, {}).setdefault(i, []).append(a)
    for source, by_id in wanted.items():
        _, id_col, ip_cols, account_cols = _COLUMNS[source]
        cols = ", ".join((id_col, *ip_cols, *account_cols))
        wanted_ids = sorted(by_id)
        # the range first: segments and row groups outside it are skipped by their statistics, so a live batch
        # reads the few recent events it needs, not every stored event (ids grow as events are stored)
        rows = con.execute(f"SELECT {cols} FROM {source} WHERE {id_col} BETWEEN ? AND ? "  # nosec B608 # source and columns are constants of this module; the ids are parameters
                           f"AND list_contains(?, {id_col})", [wanted_ids[0], wanted_ids[-1], wanted_ids]).fetchall()
        found: dict[int, tuple[list[str], list[str]]] = {}
        for row in rows:
            ips = [str(v) for v in row[1:1 + len(ip_cols)] if v and _untrusted(str(v), trusted)]
            accounts = [str(v) for v in row[1 + len(ip_cols):] if v]
            found[int(row[0])] = (ips, accounts)
        for a in {id(a): a for owners in by_id.values() for a in owners}.values():
            ids = [int(x) for x in (a.evidence.get(_COLUMNS[source][0]) or [])[:LINKED]]
            ips = sorted({ip for i in ids for ip in found.get(i, ((), ()))[0]})
            accounts = sorted({x for i in ids for x in found.get(i, ((), ()))[1]})
            a.evidence["links"] = {"ips": ips, "accounts": accounts, "read": len(ids)}


def _untrusted(text: str, trusted: Sequence[IPNetwork]) -> bool:
    addr = parse_ip(text)
    return addr is not None and not any(addr.version == n.version and addr in n for n in trusted)
