"""The scoring process of `ingest --detect` (the ingest's side: `runners.alongside`): the replay's engine and alert
book, fed the ingest's committed rows and watermarks through a pipe, scoring what is older than the watermark in
the replay's steps, in event-time order.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import queue
import threading
from multiprocessing.connection import Connection
from typing import Any

import pyarrow as pa

from fraudwatch.detect.runners.alongside_pipe import ipc_stream, read_exactly
from fraudwatch.detect.runners.alongside_setup import QUEUED
from fraudwatch.detect.runners.replay import ORDER, TIME_COLUMN, alerts_table


def score_alongside(conn: Connection, level: int) -> None:
    """The scoring process: the replay's engine and alert book, fed rows and watermarks through `conn`, after
    the `Setup` (it imports what it needs while that comes)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the ingest decides when it stops
    logging.basicConfig(level=level, format="fraudwatch detect: %(levelname)s %(message)s")
    import polars as pl

    from fraudwatch.detect.base import Context
    from fraudwatch.detect.decide import Alert, AlertBook
    from fraudwatch.detect.ruleset import load_rules
    from fraudwatch.detect.runners.engine import PARALLEL, Engine

    try:
        kind, setup = conn.recv()
    except (EOFError, OSError):
        return  # not needed after all
    if kind != "setup":
        return
    rules = list(load_rules(setup.rule_dirs).rules.values())
    engine = Engine(rules, Context(setup.lists_dir, setup.credit, setup.names), setup.trusted)
    book = AlertBook({r.common.id: r for r in rules}, setup.trusted, setup.trusted_accounts, setup.next_id,
                     setup.lock_in_trusted)
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
                    message = ("rows", (message[1], read_exactly(conn.fileno(), message[2]), message[3]))
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
            conn.send_bytes(memoryview(ipc_stream(alerts_table(sorted(alerts.values(), key=lambda a: a.id)))))
            conn.close()
            # Nothing is left to write, and the ingest waits for this process to end: leave without freeing its
            # heap, which a flood's held rows, windows and alerts make slow to free (figures:
            # benchmarks/RESULTS.md, "Scoring process leaves without freeing its heap").
            logging.shutdown()
            os._exit(0)
        else:
            return  # the ingest is gone



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
