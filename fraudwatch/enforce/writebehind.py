"""The enforcer's writes: one backend batch per round (with what we believe the kernel holds), then the store,
written behind it.

Decisions reach the kernel first and are written to the store behind it (`behind`, drained by whoever leaves the
enforcer last, outside its lock). Under a flood the watcher's ingest holds the store's commit for long stretches,
and a ban's store write waits for it (figures: benchmarks/RESULTS.md, "Kernel first, store written behind"); a ban
must not wait for it, nor must the next decision wait for the enforcer's lock while one does. Every use of the store
goes through `store()`, which writes what is behind first, so the enforcer never reads the store without its own
writes. If a write fails, `dirty` is set and the next reconcile finds the store without the ban and lifts it: the
store stays the desired state, and a crash between the kernel and the store at worst lifts the bans of that instant.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterator, Sequence

import duckdb

import fraudwatch.enforce.state as state
from fraudwatch import tuning
from fraudwatch.enforce.backends.base import Backend, Entry, FirewallError, SetFullError
from fraudwatch.enforce.state import Ban
from fraudwatch.enforce.targets import Target

log = logging.getLogger("fraudwatch.enforce")
Work = Callable[[duckdb.DuckDBPyConnection], None]


class WriteBehind:
    """The backend's batches and the store's writes behind them. `bulky()`: whether the store writes may touch
    enough objects for the cyclic GC to be paused meanwhile (a round's record can hold 100k bans)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, backend: Backend, bulky: Callable[[], bool]) -> None:
        self.con = con
        self.backend = backend
        self.bulky = bulky
        self.kernel: dict[Target, float | None] = {}  # what we believe the kernel holds: target -> expiry (epoch)
        self.dirty = False  # a batch or a store write failed: the next tick reconciles
        # store writes not made yet, in order, and the lock every use of `con` holds (taken after the enforcer's
        # lock, never before it: see the module docstring)
        self.behind: collections.deque[Work] = collections.deque()
        self._store_lock = threading.Lock()

    # -- the kernel ------------------------------------------------------------------------------------------
    def listed(self, kernel: dict[Target, float | None], t_now: float) -> None:
        """What the backend listed (network -> seconds left) is what the kernel holds."""
        self.kernel = {n: (None if left is None else t_now + left) for n, left in kernel.items()}

    def apply(self, add: Sequence[Entry], remove: Sequence[Target], t_now: float) -> str | None:
        """One backend batch; on failure the kernel is listed again and the batch retried once against what is
        really there. Returns the error text when it still fails (the next tick reconciles)."""
        if not add and not remove:
            return None
        for attempt in (1, 2):
            try:
                self.backend.apply(add, remove, self.kernel.keys())
            except FirewallError as exc:
                if attempt == 2 or isinstance(exc, SetFullError):
                    log.error("firewall: %s", exc)
                    self.dirty = True
                    return str(exc)
                try:
                    listed = self.backend.list()
                except FirewallError:
                    listed = {}
                self.listed(listed, t_now)
                remove = [n for n in remove if n in self.kernel]
                continue
            break
        for n in remove:
            self.kernel.pop(n, None)
        for e in add:
            self.kernel[e.net] = t_now + e.timeout
        self.dirty = False
        return None

    def commit(self, new: Sequence[Ban], extended: Sequence[Ban], superseded: Sequence[Ban], t_now: float,
               entries: list[Entry], evicted: Sequence[Ban] = ()) -> str | None:
        """One kernel batch, then the store (one short transaction, written behind). `evicted`: bans ended to make
        room in a nearly full set (`fraudwatch.enforce.capacity`), removed in the same batch as the new ones go in."""
        if not (new or extended or superseded or evicted):
            return None
        error = self.apply(entries, [b.net for b in (*superseded, *evicted) if b.net in self.kernel], t_now)
        new, extended, superseded, ended = list(new), list(extended), list(superseded), list(evicted)
        self.behind.append(lambda con: self._record(con, new, extended, superseded, t_now, ended))
        return error

    # -- the store -------------------------------------------------------------------------------------------
    def later(self, work: Work) -> None:
        """A store write to make behind the ones queued."""
        self.behind.append(work)

    @contextlib.contextmanager
    def store(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The store, with every write left behind made first."""
        with self._store_lock:
            self._write()
            yield self.con

    def write_behind(self, wait: bool = True) -> None:
        """Make the store writes left behind (by this thread or another). Called by every public method of the
        enforcer once it has let go of its lock; a write that fails raises here, once, and the next reconcile
        lifts its bans. Without `wait`, a store in use by another thread is left to it (it writes until nothing
        is behind) or to the next caller (the watcher ticks the enforcer several times a second)."""
        if not self.behind:
            return
        if not self._store_lock.acquire(blocking=wait):
            return
        try:
            self._write()
        finally:
            self._store_lock.release()

    def _write(self) -> None:
        behind = self.behind
        with tuning.gc_paused(len(behind) > 1 or self.bulky()):
            while behind:
                work = behind.popleft()  # atomic: another thread may append meanwhile
                try:
                    work(self.con)
                except Exception:
                    self.dirty = True  # the next tick reconciles the kernel to what the store holds
                    self._abort()
                    raise

    def _abort(self) -> None:
        """No transaction left open by a write that failed, whatever failed in it: an open one would refuse
        every later BEGIN, and every ban after it would be lost to the store."""
        try:
            self.con.execute("ROLLBACK")
        except duckdb.Error as exc:
            if "no transaction is active" not in str(exc):
                log.error("firewall: the store's transaction could not be rolled back: %s", exc)

    def _record(self, con: duckdb.DuckDBPyConnection, new: Sequence[Ban], extended: Sequence[Ban],
                superseded: Sequence[Ban], t_now: float, evicted: Sequence[Ban] = ()) -> None:
        at = dt.datetime.fromtimestamp(t_now, dt.UTC)
        con.execute("BEGIN")
        state.insert(con, new, self.backend.name)
        state.extend(con, extended)
        state.remove(con, [b.id for b in superseded], at, "superseded")
        state.remove(con, [b.id for b in evicted], at, "evicted: the set was nearly full")
        con.execute("COMMIT")  # on failure, `_write` rolls back
