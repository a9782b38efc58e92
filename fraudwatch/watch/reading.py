"""The watcher's reader: a pass over every file of every source, reading what changed into the store, then the
rows it committed handed to the acting thread (`fraudwatch.watch.acting`).

A pass stats every file, reads the files whose signature changed (at most `chunk_bytes` per file per pass, so
signals, control requests and the other sources are served between chunks), and feeds the rows it committed to
live detection. The log files themselves are the queue: nothing is read that cannot be committed at once.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import duckdb
import polars as pl

from fraudwatch.detect.runners.replay import ORDER, TIME_COLUMN
from fraudwatch.errors import FraudwatchError
from fraudwatch.formats.csvspec import CsvFormat
from fraudwatch.formats.detect import detect_format
from fraudwatch.formats.registry import Format
from fraudwatch.sources.reader import fingerprint_of, identify
from fraudwatch.store import positions
from fraudwatch.store.failures import classify
from fraudwatch.store.schema import TABLES
from fraudwatch.watch.acting import Acting
from fraudwatch.watch.base import FileState
from fraudwatch.watch.files import Signature, files_of, gzip_size

log = logging.getLogger("fraudwatch.watch")

# Reads of one file failing in a row after which it is parked: not read again (the failure, whatever it is, would
# come back on every change or every pass) until a new file takes its name or the watcher restarts or reloads;
# `fraudwatch status` lists it, and the log says so once.
PARK_AFTER = 3


class Reading(Acting):
    """The pass, on the loop's thread (`_pass`); what it committed goes to the acting thread (`Acting._put`)."""

    def _pass(self) -> bool:
        """Read every file that changed; returns True when some file has more to read right away."""
        more = False
        present: set[Path] = set()
        self._check_sources()
        for src in self.cfg.sources:
            for path in files_of(src):
                present.add(path)
                state = self.files.get(path)
                if state is None or state.source != src:
                    state = self.files[path] = FileState(src)
                more |= self._read_file(path, state)
                if self.stopping:
                    return False
        self.tracker.forget_missing(present)
        for gone in [p for p in self.files if p not in present]:
            del self.files[gone]
        self.stats.forget_missing(present)
        t0 = time.monotonic()
        self._detect()
        log.debug("detect %.3fs", time.monotonic() - t0)
        return more

    def _check_sources(self) -> None:
        """Which sources' paths are missing now (a stat each): logged, and error rows in `fraudwatch status`."""
        missing = self.missing_sources.check(self.cfg.sources)
        with self.stats.lock:
            self.stats.missing = missing

    def _format_of(self, path: Path, state: FileState) -> Format | None:
        name = state.format or state.source.format
        if name is None:
            try:
                fmt = detect_format(path, self.formats)
            except FraudwatchError:
                return None  # too little to tell yet; try again when it grows
            state.format = fmt.name
            return fmt
        fmt_or_none = self.formats.get(name)
        if fmt_or_none is None:
            self.stats.error(path, f"unknown format '{name}'")
        return fmt_or_none

    def _read_file(self, path: Path, state: FileState) -> bool:
        sig = Signature.of(path)
        if sig is None:
            return False
        if state.parked is not None:
            if state.parked_file is None or self._same_content(path, *state.parked_file):
                return False
            state.parked, state.parked_file, state.failures = None, None, 0  # a new file under the name
            self.stats.parked(path, None)
        fmt = self._format_of(path, state)
        if fmt is None:
            return False
        is_csv = isinstance(fmt, CsvFormat)
        settle = self.cfg.watch.settle_seconds if is_csv and path.suffix != ".gz" else 0.0
        if not self.tracker.due(path, sig, settle):  # unchanged, or a CSV not settled yet (the timer returns)
            self.stats.seen(path, fmt.name, sig.size)
            return False
        assert self.ingestor is not None and self.store is not None
        if path.suffix == ".gz" and self._gzip_done(path):
            self.tracker.done(path, sig)
            self.stats.seen(path, fmt.name, sig.size)
            return False
        started = time.monotonic()
        try:
            summary = self.ingestor.ingest(path, fmt.name, state.source.timezone,
                                           budget_bytes=None if is_csv else self.cfg.ingest.chunk_bytes,
                                           until=None if is_csv or path.suffix == ".gz" else sig.size)
        except duckdb.Error:  # the store's fault, not the file's: the pass fails (and the service says so)
            raise
        except Exception as exc:  # this file's content broke its reading: the other files are read all the same
            if classify(exc, self.cfg.store_path) is not None:  # unless the store is full, corrupt or locked
                raise
            log.exception("reading %s failed", path)
            self._failed(path, fmt.name, state, sig, f"{type(exc).__name__}: {exc}")
            return False
        self.stats.read(path, fmt.name, summary, sig.size, time.monotonic() - started)
        if summary.error:
            self.tracker.done(path, sig)  # not again until it changes
            self._failed(path, fmt.name, state, sig, summary.error)
            return False
        state.failures = 0
        if not summary.more:
            self.tracker.done(path, sig)
        if fmt.name == "vos3000-customers" and summary.lines:
            self._refresh_credit()
        return summary.more

    def _failed(self, path: Path, fmt: str, state: FileState, sig: Signature, error: str) -> None:
        """Count a failed read of `path`; the PARK_AFTER-th in a row parks it."""
        self.stats.seen(path, fmt, sig.size)
        self.stats.error(path, error)
        state.failures += 1
        if state.failures < PARK_AFTER:
            return
        try:
            ident = identify(path)
        except (OSError, EOFError):
            ident = None
        state.parked, state.parked_file = error, (ident.fingerprint, ident.fp_bytes) if ident is not None else None
        self.stats.parked(path, error)
        log.error("parked %s after %d failed reads in a row: not read again until another file takes its name or "
                  "the watcher restarts (last error: %s)", path, state.failures, error)

    @staticmethod
    def _same_content(path: Path, fingerprint: str, nbytes: int) -> bool:
        """Whether `path` still begins with the bytes a parked file began with (a few KB read, once a pass)."""
        try:
            return fingerprint_of(path, nbytes) == fingerprint
        except (OSError, EOFError):
            return True  # unreadable now: left parked

    def _gzip_done(self, path: Path) -> bool:
        """A .gz file whose stored position is its uncompressed end: skip it without decompressing."""
        assert self.store is not None
        try:
            ident = identify(path)
        except (OSError, EOFError):
            return False
        if ident is None:
            return True
        pos = positions.find(self.store.con, path, ident)
        size = gzip_size(path)
        return pos is not None and size is not None and pos.byte_offset % (1 << 32) == size

    def _refresh_credit(self) -> None:
        """New balances and limits for the credit-limit rules."""
        from fraudwatch.detect.runners.replay import credit_context

        assert self.store is not None
        if self.detection is None:
            return
        credit, names = credit_context(self.store.con)
        with self.act_lock:
            self.detection.engine.update_credit(credit, names)

    def _detect(self) -> None:
        """Feed the rows committed since the last pass to live detection, then act on what it decided."""
        assert self.store is not None
        for table, order in ORDER.items():
            rows = self.store.segments.take(table)  # what this pass committed, as stored
            if rows is None:
                continue
            frame = pl.from_arrow(rows.select(self._columns(table)))
            assert isinstance(frame, pl.DataFrame)
            frame = frame.sort(order.split(", "), nulls_last=True)  # as SQL's ORDER BY
            self.stats.events(table, frame)
            if self.detection is not None and frame.height:
                self._put((table, frame))

    def _columns(self, table: str) -> list[str]:
        """What the rules of `table` read (and the status needs): reading every column costs more than the rules."""
        engine = getattr(self.detection, "engine", None)
        needed = set(engine.columns(table)) if engine is not None and engine.detectors.get(table) else set()
        needed |= {"source", TIME_COLUMN[table], *ORDER[table].split(", ")}
        return [c for c in TABLES[table].names if c in needed]
