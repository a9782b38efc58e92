"""Detection as rows are stored: the watcher's acting thread. The same engine and alert book as a replay, fed
the batches the writer commits, so live and replayed alerts agree.

An ongoing attack updates its alert on every batch, and a botnet keeps thousands of alerts going at once: saving
each of them, and handing each to the firewall and the notifier, on every batch cost the watcher more than the
rules did. So an alert is reported (saved and returned for acting) at once when it opens or when its severity
or proposed action changes; an update that changes only counts and times is held and reported at most every
`resave_seconds` (`flush`, on the acting thread's timer, and with `force` at a stop or reload). A first ban
and a first notification never wait (they follow opening, severity and action); what the firewall does with an
ongoing alert's updates (extending its ban) and its stored counts are at most that much behind.

Every changed alert also goes to the incident book (fraudwatch.detect.incidents), after its links are read
(fraudwatch.detect.runners.links); the incidents are saved with the alerts, and ended when quiet for their spell
in the event time the stored rows reached. What happened to them waits in `take_changes` for the acting thread.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence

import duckdb
import polars as pl

from fraudwatch.detect.base import Context
from fraudwatch.detect.decide import Alert, AlertBook
from fraudwatch.detect.incident import Incident, IncidentChange, IncidentFeed
from fraudwatch.detect.incidents import IncidentBook
from fraudwatch.detect.runners.engine import Engine
from fraudwatch.detect.runners.links import add_links
from fraudwatch.detect.runners.replay import TIME_COLUMN, next_alert_id, save_alerts
from fraudwatch.detect.types import RuleType
from fraudwatch.netaddr import IPNetwork
from fraudwatch.store.incidents import save_incidents

log = logging.getLogger("fraudwatch.detect")
RESAVE_SECONDS = 5.0
FORGET_SECONDS = 3600.0  # an alert not updated for this long is forgotten here (reported at once if it returns)
MAX_CHANGES = 10_000  # incident changes kept for `take_changes` (the oldest go first when nobody takes them)


class LiveDetection:
    def __init__(self, con: duckdb.DuckDBPyConnection, rules: Sequence[RuleType], ctx: Context,
                 trusted: Sequence[IPNetwork] = (), trusted_accounts: Sequence[str] = (),
                 resave_seconds: float = RESAVE_SECONDS, clock: Callable[[], float] = time.monotonic,
                 lock_in_trusted: bool = False) -> None:
        self.con = con
        self.engine = Engine(rules, ctx, trusted, stream=True)
        self.book = AlertBook({r.common.id: r for r in rules}, trusted, trusted_accounts, next_alert_id(con),
                              lock_in_trusted)
        self.commons = {r.common.id: r.common for r in rules}
        self.trusted = tuple(trusted)
        self.incidents: IncidentFeed = IncidentBook(self.commons, "live")
        self.changes: list[IncidentChange] = []  # for `take_changes`
        self.unsaved: dict[str, Incident] = {}  # incidents changed since they were saved
        self.linked: dict[str, set[int]] = {}  # the member links stored, by open incident (see save_incidents)
        self.event_clock: dt.datetime | None = None  # the newest event time of the rows scored
        self.resave, self.clock = resave_seconds, clock
        self.reported: dict[int, tuple[float, str, str]] = {}  # alert id -> (when reported, severity, action)
        self.held: dict[int, Alert] = {}  # changed since reported, not yet due
        self.last_forget = clock()

    def __call__(self, table: str, rows: pl.DataFrame) -> list[Alert]:
        """Run the rules on newly stored rows; save and return the alerts they opened or changed in a way that
        matters now (see the module docstring); hold the rest."""
        t0 = time.monotonic()
        matches = self.engine.process(table, rows)
        t1 = time.monotonic()
        changed = self.book.apply(matches)
        self._advance_clock(table, rows)
        if changed:
            add_links(self.con, self.commons, changed, self.trusted)
            self._note(self.incidents.apply(changed))
        log.debug("engine %.3fs (%d matches), book %.3fs (%d changed)", t1 - t0, len(matches), time.monotonic() - t1,
                  len(changed))
        now = self.clock()
        due = []
        for a in changed:
            seen = self.reported.get(a.id)
            if seen is None or seen[1] != a.severity or seen[2] != a.action or now - seen[0] >= self.resave:
                due.append(a)
                self.held.pop(a.id, None)
            else:
                self.held[a.id] = a
        return self._report(due, now)

    def flush(self, force: bool = False) -> list[Alert]:
        """Save and return the held alerts whose time has come (all of them with `force`)."""
        now = self.clock()
        due = [a for a in self.held.values() if force or now - self.reported[a.id][0] >= self.resave]
        for a in due:
            del self.held[a.id]
        if self.event_clock is not None:
            self._note(self.incidents.close_quiet(self.event_clock))
        if now - self.last_forget >= FORGET_SECONDS:
            self.last_forget = now
            self.reported = {k: v for k, v in self.reported.items() if now - v[0] < FORGET_SECONDS or k in self.held}
        return self._report(due, now)

    def take_changes(self) -> list[IncidentChange]:
        """What happened to incidents since the last call, in order (for the notifier)."""
        out, self.changes = self.changes, []
        return out

    def _advance_clock(self, table: str, rows: pl.DataFrame) -> None:
        col = TIME_COLUMN.get(table)
        if col is None or col not in rows.columns or not rows.height:
            return
        newest = rows.get_column(col).max()
        if isinstance(newest, dt.datetime) and (self.event_clock is None or newest > self.event_clock):
            self.event_clock = newest if newest.tzinfo else newest.replace(tzinfo=dt.UTC)

    def _note(self, changes: list[IncidentChange]) -> None:
        for c in changes:
            self.unsaved[c.incident.id] = c.incident
        self.changes += changes
        if len(self.changes) > MAX_CHANGES:
            del self.changes[:len(self.changes) - MAX_CHANGES]

    def _report(self, alerts: list[Alert], now: float) -> list[Alert]:
        if alerts:
            save_alerts(self.con, alerts, "live")
            for a in alerts:
                self.reported[a.id] = (now, a.severity, a.action)
        if self.unsaved and (alerts or any(i.state == "ended" for i in self.unsaved.values())):
            # with the alerts they list (held alert updates follow within `resave`: so do their incidents)
            save_incidents(self.con, self.unsaved.values(), "live", linked=self.linked)
            self.unsaved = {}
        return alerts
