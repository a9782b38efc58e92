"""Detection alongside a backfill: `ingest --detect` scores the rows in a process of its own while the next
chunks are read, instead of replaying the store once the ingest is done.

The ingest and the rules each keep about one core busy, so on two cores the ingest with detection takes little
longer than the ingest alone. The result must be the replay's, which scores every source in event-time order.
So the scoring process is sent each committed chunk's rows (the columns the rules read, from the store, as a
replay reads them) and a *watermark*: it scores only what is older than the watermark, in time order.

- The watermark is the newest event time read so far, less MARGIN, of the tables the current file writes. A
  table a later file will write holds it back entirely (that file may start anywhere in time); tables no file
  writes any more do not hold it. So several sources ingested one after the other are scored once the last
  file of each has started, and memory is bounded by HELD_ROWS.
- Every chunk is checked: an event older than a watermark already sent means the files were not in time order
  (two servers' logs of the same hours, rotated logs named newest first). The scoring process is then dropped and
  the store replayed after the ingest, as before: the same alerts, only later.
- Rows below the watermark are scored in steps of about STEPS rows, not chunk by chunk: what
  is short of a step waits for the next chunk (or the end). Much of a step's cost does not follow its rows:
  each key still in a window is scored again, and each ongoing attack's key makes a match. Scored chunk by
  chunk (a flood's chunk made a full step and a small one), the flood took more steps and more CPU (figures:
  benchmarks/RESULTS.md, "Alongside scoring in whole steps").
- It applies to a store that holds no events of the rules' tables yet; otherwise the replay (of the whole store,
  as `fraudwatch detect` does) runs after the ingest.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from fraudwatch.arrays import instant
from fraudwatch.detect.runners.alongside_pipe import Outbox, ipc_stream
from fraudwatch.detect.runners.alongside_setup import STEPS, Scored, Setup
from fraudwatch.detect.runners.replay import TIME_COLUMN, data_range
from fraudwatch.detect.runners.scorer import Scorer
from fraudwatch.detect.types import RuleType

if TYPE_CHECKING:
    import duckdb

    from fraudwatch.store.segments import Segments

log = logging.getLogger("fraudwatch.detect")
# How far back in time a file may step and still be scored alongside. Rows within it of the newest wait for the
# next chunk, so it is small: a flood writes tens of thousands of lines a second.
MARGIN = dt.timedelta(seconds=2)
# The column whose newest value bounds what is still to come, by table: CDR exports come in order of start or of
# stop (flowno), and a CDR stops after it starts, so the newest start read so far bounds the stops to come.
# Rejects come from the files of every table, each at most as new as its file's last line: they never bound it.
FRONTIER_COLUMN = {"sip_events": "ts", "netfilter_events": "ts", "cdrs": "start_time", "rejects": "ts"}


class Alongside:
    """The ingest's side: feed committed rows and watermarks, and take the alerts at the end (or None: replay)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, feed: Segments, rules: Sequence[RuleType], setup: Setup,
                 job_tables: Sequence[str | None], scorer: Scorer | None = None) -> None:
        from fraudwatch.detect.ruleset import rule_columns

        self.con = con
        self.setup = setup
        self.sources = [s for s in TIME_COLUMN if any(r.common.source == s for r in rules)]
        self.columns = {s: rule_columns(rules, s) for s in self.sources}
        self.jobs = list(job_tables)
        self.current = -1
        self.feed = feed  # the rows each commit adds, as the store wrote them
        for table in self.sources:
            feed.subscribe(table)
        self.newest: dict[str, dt.datetime] = {}  # table -> newest FRONTIER_COLUMN value fed
        self.sent: dt.datetime | None = None  # the watermark last sent
        self.scorer = scorer  # started early, or when the first rows come (`_start`)
        self.conn: Connection | None = None  # the scorer's pipe, once it was sent the setup
        self.outbox: Outbox | None = None  # what is sent after the setup
        self.gave_way: str | None = None

    @staticmethod
    def applies(con: duckdb.DuckDBPyConnection, rules: Sequence[RuleType]) -> bool:
        """Whether the store holds no events of the rules' tables (so the ingest's rows are all there will be)."""
        tables = {r.common.source for r in rules} & set(TIME_COLUMN)
        return all(not con.execute(f"SELECT count(*) FROM (SELECT 1 FROM {t} LIMIT 1)").fetchall()[0][0]  # nosec B608 # t: event table names of the store's schema
                   for t in tables)

    def begin(self, job: int) -> None:
        """File `job` (an index into `job_tables`) is about to be read."""
        self.current = job
        if self.conn is None and self.gave_way is None and self.jobs[job] in self.sources:
            self._start()  # after the account files, which come first: the credit rule reads their balances
        self._advance()

    def on_commit(self, table: str, source: str) -> None:
        """The ingest committed a chunk of `table` from the file `source`: send its rows, then the watermark that
        follows."""
        # a file of any table may have kept lines aside too: its rejects, fed before the watermark moves
        taken = [(name, self.feed.take(name)) for name in dict.fromkeys((table, "rejects")) if name in self.sources]
        if self.conn is None or (table not in self.sources and all(rows is None for _, rows in taken)):
            return  # (taken in any case: the feed holds what is not taken)
        try:
            for name, rows in taken:
                if rows is not None and self.conn is not None:
                    self._feed(name, rows, source)
            self._advance()
        except (OSError, EOFError) as exc:
            self._lost(exc)

    def finish(self) -> Scored | None:
        """Score what is held and return the alerts; None when the store is to be replayed instead."""
        if self.conn is None:
            return None
        try:
            assert self.outbox is not None
            self.outbox.put(("end", None))
            # the store's checkpoint, which its close would do, while the last rows are scored
            self.con.execute("CHECKPOINT")
            self.outbox.flush()
            while True:
                kind, value = self.conn.recv()
                if kind == "done":
                    break
                if kind == "gave_way":
                    self._give_way(value)
                    return None
            alerts = pa.ipc.open_stream(self.conn.recv_bytes()).read_all()
        except (OSError, EOFError) as exc:
            self._lost(exc)
            return None
        self.close()
        since, until = data_range(self.con, self.sources)
        return Scored(alerts, value, since, until + dt.timedelta(microseconds=1) if until else None)

    def close(self) -> None:
        if self.outbox is not None:  # first: its thread may be writing to the pipe
            self.outbox.stop(self.scorer.proc if self.scorer is not None else None)
            self.outbox = None
        self.conn = None
        if self.scorer is not None:
            self.scorer.close()

    # --------------------------------------------------------------------------------------------------

    def _start(self) -> None:
        from fraudwatch.detect.runners.replay import credit_context, next_alert_id

        credit, names = credit_context(self.con)
        setup = dataclasses.replace(self.setup, credit=credit, names=names, next_id=next_alert_id(self.con),
                                    steps=self.setup.steps or STEPS)
        if self.scorer is None:
            self.scorer = Scorer()
        self.conn = self.scorer.conn
        assert self.conn is not None
        try:
            self.conn.send(("setup", setup))
        except (OSError, EOFError) as exc:  # started early, it may have died since
            self._lost(exc)
            return
        self.outbox = Outbox(self.conn)

    def _feed(self, table: str, rows: pa.Table, source: str) -> None:
        assert self.conn is not None and self.outbox is not None
        col, front = TIME_COLUMN[table], FRONTIER_COLUMN[table]
        # not `source`: the chunk's file, the same in every row, sent once (a good part of a chunk's bytes and of
        # its Arrow export; figures: benchmarks/RESULTS.md, "A chunk's source file sent once")
        cols = [c for c in dict.fromkeys([*self.columns[table], front]) if c != "source"]
        # not sorted here: the scoring process sorts what it scores, across chunks
        rows = rows.select(cols)
        if rows.column(col).null_count:
            rows = rows.filter(pc.is_valid(rows.column(col)))
        if not rows.num_rows:
            return
        oldest = instant(pc.min(rows.column(col)))
        if self.sent is not None and oldest is not None and oldest < self.sent:
            self._give_way(f"{table} has events of {oldest} after events up to {self.sent} were scored "
                           "(the input is not in time order)")
            return
        newest = instant(pc.max(rows.column(front)))
        if newest is not None and (table not in self.newest or newest > self.newest[table]):
            self.newest[table] = newest
        if front not in self.columns[table]:
            rows = rows.drop_columns([front])
        data = ipc_stream(rows)
        self.outbox.put(("rows", table, data.size, source if "source" in self.columns[table] else None))
        self.outbox.put(memoryview(data), raw=True)  # MBs: as they are, not copied into a pickle
        reason = self._reason()
        if reason is not None:
            self._give_way(reason)

    def _advance(self) -> None:
        """Send the watermark when it moved: the oldest bound of the tables a file still to finish may write."""
        if self.outbox is None:
            return
        bound: dt.datetime | None = None
        for table in self.sources:
            if table in self.jobs[self.current + 1:]:
                return  # a later file writes it, anywhere in time
            if table != self.jobs[self.current]:
                continue  # no file writes it any more
            if table not in self.newest:
                return  # the current file has not shown its times yet
            edge = self.newest[table] - MARGIN
            bound = edge if bound is None else min(bound, edge)
        if bound is not None and (self.sent is None or bound > self.sent):
            self.sent = bound
            self.outbox.put(("upto", bound))

    def _lost(self, exc: BaseException) -> None:
        """The pipe failed: the scoring process gave way and ended (its reason is still in the pipe, and read
        here: it can end before the ingest looks), or it died."""
        reason = None
        with contextlib.suppress(OSError, EOFError):
            reason = self._reason()
        self._give_way(reason or f"the scoring process is gone ({exc})")

    def _reason(self) -> str | None:
        """Why the scoring process gave way, when it said so: before the end it speaks only for that."""
        if self.conn is None or not self.conn.poll():
            return None
        kind, value = self.conn.recv()
        return str(value) if kind == "gave_way" else None

    def _give_way(self, reason: str) -> None:
        if self.gave_way is None:
            self.gave_way = reason
            log.warning("detection alongside the ingest gave way to a replay after it: %s", reason)
        self.close()
