"""Alerts into incidents for the batch runners (`fraudwatch detect`, `ingest --detect`): alert ids kept across a
replay of the same data, the alerts' links read from the store, the incident book run over them, its incidents
saved with the alerts.

**Stable alert ids.** A replay replaces its origin's alerts of the range it covers. An alert it finds again —
the same rule, key and detection time — keeps the id it had (links in messages already sent, `alerts show N`,
the bans that name it stay right); only alerts that are new get new ids, after the highest one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from fraudwatch.detect.decide import Alert
from fraudwatch.detect.incident import Incident, IncidentChange
from fraudwatch.detect.incidents import IncidentBook
from fraudwatch.detect.runners.links import add_links
from fraudwatch.netaddr import IPNetwork

if TYPE_CHECKING:
    import duckdb

    from fraudwatch.detect.spec import Common


def keep_alert_ids(con: duckdb.DuckDBPyConnection, alerts: Sequence[Alert], origin: str,
                   replace_range: tuple[dt.datetime, dt.datetime]) -> None:
    """Give each alert the id its origin's stored alert of the same rule, key and detection time has in the
    range being replaced; the others new ids after the highest stored one, in the order given."""
    rows = con.execute("SELECT rule, key_type, key, detected_at, id FROM alerts WHERE origin = ? AND "
                       "detected_at >= ? AND detected_at < ?", [origin, *replace_range]).fetchall()
    known = {(r, kt, k, t): i for r, kt, k, t, i in rows}
    nxt = int(con.execute("SELECT coalesce(max(id), 0) + 1 FROM alerts").fetchall()[0][0])
    taken: set[int] = set()
    for a in alerts:
        old = known.get((a.rule, a.key_type, a.key, a.detected_at))
        if old is not None and old not in taken:
            a.id = old
        else:
            a.id = nxt
            nxt += 1
        taken.add(a.id)


def join_incidents(con: duckdb.DuckDBPyConnection, rules: Mapping[str, Common], alerts: Sequence[Alert],
                   origin: str, trusted: Sequence[IPNetwork], until: dt.datetime | None
                   ) -> tuple[list[Incident], list[IncidentChange]]:
    """The incidents of a whole replay's alerts (the book gives the same for any cut of the stream), those quiet
    before `until` ended."""
    add_links(con, rules, alerts, trusted)
    book = IncidentBook(rules, origin)
    changes = book.apply(alerts)
    if until is not None:
        changes += book.close_quiet(until)
    return book.incidents(), changes
