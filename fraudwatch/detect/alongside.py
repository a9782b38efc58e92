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
  chunk (a flood's 32 MB chunk is some 238k lines: a step of 200k and one of 38k), the flood of
  benchmarks/ingest_bench.py took twice the replay's steps and 6 CPU-s more.
- It applies to a store that holds no events of the rules' tables yet; otherwise the replay (of the whole store,
  as `fraudwatch detect` does) runs after the ingest.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import os
import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from fraudwatch.arrays import instant
from fraudwatch.detect.replay import ORDER, STEP_ROWS, TIME_COLUMN, alerts_table, data_range
from fraudwatch.detect.scorer import Scorer
from fraudwatch.netaddr import IPNetwork

if TYPE_CHECKING:
    import duckdb

log = logging.getLogger("fraudwatch.detect")
# How far back in time a file may step and still be scored alongside. Rows within it of the newest wait for the
# next chunk, so it is small: a flood writes tens of thousands of lines a second.
MARGIN = dt.timedelta(seconds=2)
HELD_ROWS = 2_000_000  # rows held below no watermark (other files to come) before giving way to the replay: at
# about 180 bytes a row of the flood's columns, some 350 MB, and the replay after the ingest then takes over
# Rows a scoring step holds, about, by table. Every step scans again the rows the rules' windows keep: a flood
# keeps many (in steps of 100k rows its scoring took 19 CPU-s, against 11 in the replay's STEP_ROWS). CDRs keep
# few, and smaller steps keep their scoring closer behind the ingest, with less left for after its last chunk:
# 1M CDRs with detection took 0-1.5 s less in steps of 100k than of 300k (6 of 6 alternated runs). The alerts
# do not depend on the steps; an alert's evidence can: each match adds its first events, up to EVIDENCE_KEPT.
STEPS = {"sip_events": STEP_ROWS, "netfilter_events": STEP_ROWS, "cdrs": 100_000}
QUEUED = 4  # chunks received and not yet scored, at most: then the ingest waits (memory stays bounded)
# The column whose newest value bounds what is still to come, by table: CDR exports come in order of start or of
# stop (flowno), and a CDR stops after it starts, so the newest start read so far bounds the stops to come.
FRONTIER_COLUMN = {"sip_events": "ts", "netfilter_events": "ts", "cdrs": "start_time"}


@dataclass(frozen=True)
class Scored:
    """What the scoring process found: its alerts as rows of the `alerts` table (`replay.alerts_table`), the
    events it scored by table, and the span of event time the ingest stored."""

    alerts: pa.Table
    events: dict[str, int]
    since: dt.datetime | None
    until: dt.datetime | None


@dataclass(frozen=True)
class Setup:
    """What the scoring process needs to build the replay's engine and alert book."""

    rule_dirs: list[Path]
    lists_dir: Path
    credit: dict[str, float]
    names: dict[str, str]
    trusted: list[IPNetwork]
    trusted_accounts: list[str]
    next_id: int
    held_rows: int = HELD_ROWS
    steps: dict[str, int] = dataclasses.field(default_factory=dict)  # rows a step holds, about, by table: STEPS


class Alongside:
    """The ingest's side: feed committed rows and watermarks, and take the alerts at the end (or None: replay)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, rules: Sequence[Any], setup: Setup,
                 job_tables: Sequence[str | None], scorer: Scorer | None = None) -> None:
        from fraudwatch.detect.engine import rule_columns

        self.con = con
        self.setup = setup
        self.sources = [s for s in TIME_COLUMN if any(r.common.source == s for r in rules)]
        self.columns = {s: rule_columns(rules, s) for s in self.sources}
        self.jobs = list(job_tables)
        self.current = -1
        self.seen_rowid = dict.fromkeys(self.sources, -1)
        self.newest: dict[str, dt.datetime] = {}  # table -> newest FRONTIER_COLUMN value fed
        self.sent: dt.datetime | None = None  # the watermark last sent
        self.scorer = scorer  # started early, or when the first rows come (`_start`)
        self.conn: Connection | None = None  # the scorer's pipe, once it was sent the setup
        self.outbox: _Outbox | None = None  # what is sent after the setup
        self.gave_way: str | None = None

    @staticmethod
    def applies(con: duckdb.DuckDBPyConnection, rules: Sequence[Any]) -> bool:
        """Whether the store holds no events of the rules' tables (so the ingest's rows are all there will be)."""
        tables = {r.common.source for r in rules} & set(TIME_COLUMN)
        return all(not con.execute(f"SELECT count(*) FROM (SELECT 1 FROM {t} LIMIT 1)").fetchall()[0][0]
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
        if self.conn is None or table not in self.seen_rowid:
            return
        try:
            self._feed(table, source)
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
            self.outbox.stop(self.scorer)
            self.outbox = None
        self.conn = None
        if self.scorer is not None:
            self.scorer.close()

    # --------------------------------------------------------------------------------------------------

    def _start(self) -> None:
        from fraudwatch.detect.replay import credit_context, next_alert_id

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
        self.outbox = _Outbox(self.conn)

    def _feed(self, table: str, source: str) -> None:
        assert self.conn is not None and self.outbox is not None
        col, front = TIME_COLUMN[table], FRONTIER_COLUMN[table]
        # not `source`: the chunk's file, the same in every row, sent once (a sixth of a flood chunk's bytes, and
        # 0.1-0.25 CPU-s of its Arrow export)
        cols = ", ".join(f'"{c}"' for c in dict.fromkeys([*self.columns[table], front]) if c != "source")
        (top,) = self.con.execute(f"SELECT coalesce(max(rowid), -1) FROM {table}").fetchall()[0]
        last, self.seen_rowid[table] = self.seen_rowid[table], int(top)
        # not sorted here: the scoring process sorts what it scores, across chunks
        rows = self.con.sql(f"SELECT {cols} FROM {table} WHERE rowid > ? AND rowid <= ? AND {col} IS NOT NULL",
                            params=[last, top]).to_arrow_table()
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
        data = _ipc(rows)
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


class _Outbox:
    """Sends to the scoring process from a thread of its own, in order. A chunk's rows (40 MB of the flood's)
    cross the pipe only as fast as the scoring process reads them: 0.04-0.13 s a chunk the ingest spent waiting,
    and now spends reading its next chunk. At most two messages wait; then `put` does."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.queue: queue.Queue[tuple[Any, bool] | None] = queue.Queue(2)
        self.error: OSError | EOFError | None = None
        self.thread = threading.Thread(target=self._run, name="fraudwatch-detect-outbox", daemon=True)
        self.thread.start()

    def put(self, message: Any, raw: bool = False) -> None:
        """Queue `message` (bytes-like when `raw`); raises what an earlier send raised."""
        if self.error is not None:
            raise self.error
        self.queue.put((message, raw))

    def flush(self) -> None:
        """Wait until everything queued was sent; raises what a send raised."""
        self.queue.join()
        if self.error is not None:
            raise self.error

    def stop(self, scorer: Scorer | None) -> None:
        """End the thread before the pipe is closed: a descriptor closed under a write could be reused by the
        next file opened, and the write land there. A send under way ends when the scoring process reads it or
        is gone; if it does neither in 5 s, it is ended."""
        with contextlib.suppress(queue.Full):
            self.queue.put(None, timeout=5)
        self.thread.join(timeout=5)
        if self.thread.is_alive() and scorer is not None and scorer.proc is not None:
            scorer.proc.kill()
            with contextlib.suppress(queue.Full):
                self.queue.put(None, timeout=5)
            self.thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            try:
                if item is None:
                    return
                if self.error is None:  # after a failed send, the rest is dropped
                    message, raw = item
                    if raw:
                        _write_all(self.conn.fileno(), message)
                    else:
                        self.conn.send(message)
            except (OSError, EOFError) as exc:
                self.error = exc
            finally:
                self.queue.task_done()


def score_alongside(conn: Connection, level: int) -> None:
    """The scoring process: the replay's engine and alert book, fed rows and watermarks through `conn`, after
    the `Setup` (it imports what it needs while that comes)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the ingest decides when it stops
    logging.basicConfig(level=level, format="fraudwatch detect: %(levelname)s %(message)s")
    import polars as pl

    from fraudwatch.batchgc import for_batch
    from fraudwatch.detect.base import Context
    from fraudwatch.detect.decide import Alert, AlertBook
    from fraudwatch.detect.engine import PARALLEL, Engine, load_rules

    for_batch()
    try:
        kind, setup = conn.recv()
    except (EOFError, OSError):
        return  # not needed after all
    if kind != "setup":
        return
    rules = list(load_rules(setup.rule_dirs).rules.values())
    engine = Engine(rules, Context(setup.lists_dir, setup.credit, setup.names), setup.trusted)
    book = AlertBook({r.common.id: r for r in rules}, setup.trusted, setup.trusted_accounts, setup.next_id)
    held: dict[str, list[pl.DataFrame]] = {s: [] for s in engine.sources}
    alerts: dict[int, Alert] = {}
    counts = dict.fromkeys(engine.sources, 0)

    def score(upto: dt.datetime | None) -> None:
        """Score what is older than `upto` in whole steps (all that is held when None: the end)."""
        for source in engine.sources:
            step_rows = setup.steps[source]
            if not held[source] or (upto is not None and sum(f.height for f in held[source]) < step_rows):
                continue  # not a step's worth yet: sorting it on every chunk would cost more than it saves
            col = TIME_COLUMN[source]
            frame = pl.concat(held[source]).sort(ORDER[source].split(", "), maintain_order=True)
            cut = frame.height if upto is None else frame.get_column(col).search_sorted(upto, side="left")
            steps = _steps(frame.slice(0, cut), col, step_rows)
            if upto is not None and steps and steps[-1].height < step_rows:
                steps.pop()  # short of a step: it waits, with the rows above the watermark
            done = sum(step.height for step in steps)
            held[source] = [frame.slice(done)] if done < frame.height else []
            for step in steps:
                counts[source] += step.height
                # the end's steps on PARALLEL threads: the ingest, done, only waits for them
                for alert in book.apply(engine.process(source, step, PARALLEL if upto is None else 1)):
                    alerts[alert.id] = alert

    # The pipe is read by a thread of its own, so that the ingest never waits for a chunk's scoring to send the
    # next one (a pipe holds a few KB; a chunk's rows are MBs).
    inbox: queue.Queue[tuple[str, Any]] = queue.Queue(QUEUED)

    def receive() -> None:
        while True:
            try:
                message = conn.recv()
                if message[0] == "rows":
                    message = ("rows", (message[1], _read_exactly(conn.fileno(), message[2]), message[3]))
            except (EOFError, OSError):
                message = ("gone", None)
            inbox.put(message)
            if message[0] in ("end", "gone"):
                return

    threading.Thread(target=receive, name="fraudwatch-detect-inbox", daemon=True).start()
    while True:
        kind, value = inbox.get()
        if kind == "rows":
            table, data, path = value
            if table in held:
                rows: pl.DataFrame = pl.from_arrow(pa.ipc.open_stream(data).read_all())  # type: ignore[assignment]
                held[table].append(rows if path is None else rows.with_columns(pl.lit(path).alias("source")))
                if sum(f.height for fs in held.values() for f in fs) > setup.held_rows:
                    conn.send(("gave_way", f"more than {setup.held_rows:,} rows waited for other files"))
                    return
        elif kind == "upto":
            score(value)
        elif kind == "end":
            score(None)
            # the alerts as the store's rows, made here while the ingest checkpoints: as Arrow they cross the pipe
            # without pickling thousands of objects one way and unpickling them the other
            conn.send(("done", counts))
            conn.send_bytes(memoryview(_ipc(alerts_table(sorted(alerts.values(), key=lambda a: a.id)))))
            conn.close()
            # Nothing is left to write, and the ingest waits for this process to end: leave without freeing its
            # heap (a flood's held rows, windows and alerts took 0.4 s to free).
            logging.shutdown()
            os._exit(0)
        else:
            return  # the ingest is gone


def _write_all(fd: int, data: memoryview) -> None:
    """Write `data` whole to the pipe: a chunk's rows follow the message that gives their size, as they are
    (`send_bytes` would frame them for `recv_bytes`, which reads through a growing buffer: below)."""
    while data:
        data = data[os.write(fd, data):]


def _read_exactly(fd: int, size: int) -> bytearray:
    """`size` bytes from the pipe, read straight into a buffer of that size, which the rows made from them keep.
    `recv_bytes` appends reads to a growing buffer and copies it out: twice the page faults, and 0.7 against
    0.45 CPU-s for a flood's nine 40 MB chunks."""
    buf = bytearray(size)
    view, got = memoryview(buf), 0
    while got < size:
        n = os.readv(fd, [view[got:]])
        if not n:
            raise EOFError("the pipe closed within a message")
        got += n
    return buf


def _ipc(table: pa.Table) -> pa.Buffer:
    """`table` as an Arrow IPC stream, to send through a pipe. Measured first and written once into a buffer of
    that size: a growing output stream copied a flood chunk's 40 MB over and over (0.13 against 0.01 s)."""
    size = pa.MockOutputStream()
    with pa.ipc.new_stream(size, table.schema) as writer:
        writer.write_table(table)
    buffer = pa.allocate_buffer(size.size())
    with pa.ipc.new_stream(pa.FixedSizeBufferWriter(buffer), table.schema) as writer:
        writer.write_table(table)
    return buffer


def _steps(frame: Any, col: str, rows: int) -> list[Any]:
    """`frame` (sorted by `col`) in slices of about `rows` rows, never cutting an instant, as the replay's
    steps do: a watermark can release many files' rows at once."""
    out, start = [], 0
    times = frame.get_column(col)
    while start < frame.height:
        end = frame.height
        if start + rows < frame.height:
            t = times[start + rows]
            end = int(times.search_sorted(t, side="left"))
            if end <= start:  # one instant fills the step: take it whole
                end = int(times.search_sorted(t, side="right"))
        out.append(frame.slice(start, end - start))
        start = end
    return out
