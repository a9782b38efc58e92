"""The enforcer: turns ban decisions into bans (one kernel batch, then the store) and keeps the kernel in step.

The `bans` table is the desired state. `reconcile` compares it with what the kernel holds: re-applies active bans
that are missing (a restart, a wiped ruleset), removes entries no active ban explains, and renews entries whose
kernel timeout (capped at `kernel_timeout_max`) would run out before the ban does. The allowlist always wins.

Decisions reach the kernel first and are written to the store behind it (`_behind`, drained by whoever leaves
the enforcer last, outside its lock). Under a flood the watcher's ingest holds the store's commit for hundreds
of milliseconds at a time (benchmarks/ban_latency.py measured a ban's store write at up to 0.8 s); a ban must not
wait for it, nor must the next decision wait for the lock while one does. Every use of the store goes through
`_store`, which writes what is behind first, so the enforcer never reads the store without its own writes. If a
write fails, the next reconcile finds the store without the ban and lifts it: the store stays the desired state,
and a crash between the kernel and the store at worst lifts the bans of that instant.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import functools
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import duckdb

from fraudwatch.enforce import state
from fraudwatch.enforce.backend import Backend, Entry, FirewallError, SetFullError, host_addresses, make_backend
from fraudwatch.enforce.config import FirewallConfig
from fraudwatch.enforce.early import kernel_target
from fraudwatch.enforce.index import BanIndex
from fraudwatch.enforce.results import BanRefused, NotBanned, ReconcileReport, err_suffix, no_gc, span, when
from fraudwatch.enforce.state import Ban
from fraudwatch.enforce.targets import Allowlist, Target, TargetError, parse_target, render
from fraudwatch.netaddr import IPNetwork

if TYPE_CHECKING:
    from fraudwatch.detect.decide import Alert
    from fraudwatch.detect.runners.early import Decision

log = logging.getLogger("fraudwatch.enforce")
BULK = 2000  # batches larger than this run with the cyclic GC paused (it rescans every live object, often)
LAPSE_SECONDS = 5  # a stale kernel entry this close to its timeout is left to lapse rather than deleted
COST_FACTOR = 50  # a reconcile that took s seconds waits at least 50 s before the next
EARLY = "early"  # `bans.source` of a ban decided on the log's newest lines (fraudwatch.detect.runners.early)

_F = TypeVar("_F", bound=Callable[..., Any])


class Proposal(Protocol):
    """What `_on_alerts` reads of an alert, or of an early decision (which has no alert id yet)."""

    @property
    def id(self) -> int | None: ...
    @property
    def rule(self) -> str: ...
    @property
    def severity(self) -> str: ...
    @property
    def key_type(self) -> str: ...
    @property
    def key(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def report_only(self) -> bool: ...
    @property
    def description(self) -> str: ...


def _locked(method: _F) -> _F:
    """One caller at a time: the acting thread (alerts, ticks), the early-ban thread and control requests. The
    store writes a call left behind are made once it has let go of the lock (`write_behind`)."""

    @functools.wraps(method)
    def wrapper(self: Enforcer, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            out = method(self, *args, **kwargs)
        self.write_behind()
        return out

    return wrapper  # type: ignore[return-value]


class Enforcer:
    """Bans in the store and the kernel. The watcher calls `start`, `on_alerts`, `tick`, `stop`; the CLI calls
    `ban`, `unban`, `flush`, `reconcile`; the early-ban thread calls `on_early`. All store writes go through `con`,
    and the public methods take `lock`, so those threads may share it."""

    def __init__(self, con: duckdb.DuckDBPyConnection, cfg: FirewallConfig, trusted: Sequence[IPNetwork], *,
                 command_prefix: Sequence[str] = (), backend: Backend | None = None,
                 host_addresses: Sequence[IPNetwork] | None = None) -> None:
        self.con = con
        self.cfg = cfg
        self.trusted = tuple(trusted)
        self.backend = backend or make_backend(cfg, command_prefix)
        self._host_given = host_addresses
        self.allowlist = Allowlist.build(self.trusted, cfg.allow, host_addresses or ())
        self._allowlist_ready = host_addresses is not None or not cfg.allow_host_addresses
        self._active = BanIndex()
        self._kernel: dict[Target, float | None] = {}  # what we believe the kernel holds: target -> expiry (epoch)
        self._loaded = False
        self._last_reconcile: float | None = None  # monotonic
        self._last_cost = 0.0  # seconds the last reconcile took
        self._next_expiry: float | None = None
        self._dirty = False
        self._prior: dict[str, int] | None = None  # network -> its bans within the escalation window (levels)
        self.refused: list[tuple[str, str]] = []  # the latest refusals: (input, why), for the watcher's status
        self.lock = threading.RLock()
        # store writes not made yet, in order, and the lock every use of `con` holds (taken after `lock`, never
        # before it: see the module docstring)
        self._behind: collections.deque[Callable[[duckdb.DuckDBPyConnection], None]] = collections.deque()
        self._store_lock = threading.Lock()
        self._next_id: int | None = None  # the next ban id (ids are given before their bans are written)

    # -- the watcher's interface ---------------------------------------------------------------------------
    @_locked
    def start(self, now: dt.datetime) -> ReconcileReport:
        """Idempotent setup of our table/sets/chain, then a reconcile (restores active bans after a restart)."""
        self.refresh_allowlist()
        self.backend.setup()
        return self.reconcile(now)

    @_locked
    def on_alerts(self, alerts: Sequence[Alert], now: dt.datetime) -> dict[int, str]:
        """Ban the sources of alerts whose action is `ban_ip`; alert id -> what was done. One kernel batch."""
        with no_gc(len(alerts) > BULK):
            return self._on_alerts(alerts, now)

    def on_early(self, decisions: Sequence[Decision], now: dt.datetime) -> list[str]:
        """Ban the keys of early decisions (`fraudwatch.detect.runners.early`) at once, as their rules' alerts would;
        what was done, per decision. The alert comes later from the rules and finds its ban (see `_on_alerts`).
        The early-ban thread never waits for the store: when it is busy, the next caller writes these bans."""
        with self.lock, no_gc(len(decisions) > BULK):
            # what the sentry put in the kernel itself (fraudwatch.enforce.early) is there: a ban renews it
            applied = {i: net for i, d in enumerate(decisions)
                       if d.applied and (net := kernel_target(d, self.cfg.ipv6_prefix)) is not None}
            for net in applied.values():
                self._kernel.setdefault(net, None)
            results = self._on_alerts(decisions, now)
            self._settle_early(applied, results, now.timestamp())
        self.write_behind(wait=False)
        return list(results.values())

    def _settle_early(self, applied: dict[int, Target], results: dict[int, str], t_now: float) -> None:
        """The elements the sentry added, put right where this call did not ban them itself: the timeout of
        the ban that holds the address (adding may have reset it), or out if none does (refused, or inside a
        network ban)."""
        add: list[Entry] = []
        remove: list[Target] = []
        for i, net in applied.items():
            if results.get(-1 - i, "").startswith(("banned", "extended")):
                continue  # banned here: the element was renewed with the ban's timeout
            ban = self._active.get(net)
            if ban is not None and ban.net == net:
                add.append(Entry(net, self._kernel_timeout(ban, t_now)))
            else:
                remove.append(net)
        if add or remove:
            self._apply(add, remove, t_now)

    def _on_alerts(self, alerts: Sequence[Proposal], now: dt.datetime) -> dict[int, str]:
        """One pass with its lookups hoisted: a botnet brings 100k alerts in a batch. Early decisions have no
        alert id: their results are keyed by -1, -2, ... and their bans say `early`."""
        self._ensure_loaded(now)
        out: dict[int, str] = {}
        t_now = now.timestamp()
        new: list[Ban] = []
        extended: list[Ban] = []
        superseded: list[Ban] = []
        entries: list[Entry] = []
        next_id = self._ids()
        caps = {v: self.backend.capacity(v) for v in (4, 6)}
        counts = {v: self._active.count(v) if caps[v] is not None else 0 for v in (4, 6)}
        trial = set(self.cfg.report_only)
        ttls: dict[tuple[str, str, int], tuple[int, int]] = {}  # (rule, severity, level) -> (ttl, kernel timeout)
        refusal = self.allowlist.refusal
        active = self._active
        by_target, hosts = active.by_target, active.hosts
        prior = self._prior_counts(now)
        kernel_max = self.cfg.kernel_timeout_max
        v6_prefix = self.cfg.ipv6_prefix
        linked: list[Ban] = []
        for i, a in enumerate(alerts):
            if a.action != "ban_ip":
                continue
            aid = -1 - i if a.id is None else a.id
            if a.key_type != "ip":
                article = "an" if a.key_type[:1] in "aeiou" else "a"
                out[aid] = f"not banned: the key is {article} {a.key_type}, not an address"
                continue
            text = a.key
            if "|" in text:
                text = text.split("|", 1)[0]
            try:
                net = parse_target(text, v6_prefix, False)
            except TargetError as exc:
                out[aid] = self._refuse(text, f"not banned: {exc}")
                continue
            if refusal(net):
                net, why = self._allowed(net, text)
                if why:
                    out[aid] = self._refuse(text, f"not banned: {why}")
                    continue
            existing = by_target.get(net) if not active.nets else active.covering(net)
            # a repeat alert during a ban extends it at the ban's level; escalation counts separate bans
            level = existing.level if existing is not None else prior.get(net.text, 0) + 1
            key = (a.rule, a.severity, level)
            known = ttls.get(key)
            if known is None:
                ttl = self._ttl(self.cfg.ttl_for(a.rule, a.severity), level)
                known = ttls[key] = (ttl, min(ttl, kernel_max))
            ttl, kernel_timeout = known
            expires = t_now + ttl
            if a.report_only or a.rule in trial:
                already = f" (already banned until {when(existing.expires)})" if existing else ""
                out[aid] = f"report-only: would ban {net.text} for {span(ttl)} (level {level}){already}"
                continue
            if existing is not None:
                if existing.net == net and expires > existing.expires + 1:
                    existing.expires = expires
                    extended.append(existing)
                    entries.append(Entry(net, kernel_timeout))
                    out[aid] = f"extended ban #{existing.id} on {net.text} until {when(expires)}"
                else:
                    out[aid] = (f"already banned: {existing.net.text} until {when(existing.expires)} "
                                f"(ban #{existing.id})")
                if existing.source == EARLY and existing.alert_id is None and existing.rule == a.rule \
                        and a.id is not None:  # the alert behind an early ban: it is this alert's ban
                    existing.alert_id = a.id
                    linked.append(existing)
                    ahead = f", {t_now - existing.created:.1f} s before this alert" if existing.created else ""
                    out[aid] = (f"banned {existing.net.text} until {when(existing.expires)} (level {existing.level}; "
                                f"ban #{existing.id}, decided early on the log's newest lines{ahead})")
                continue
            version = net.version
            cap = caps[version]
            if cap is not None and counts[version] >= cap:
                out[aid] = self._refuse(text, f"not banned: the IPv{version} set is full ({cap} entries, "
                                              "[firewall] maxelem)", level=logging.ERROR)
                continue
            ban = Ban(next_id, net, level, expires, t_now, "rule" if a.id is not None else EARLY, a.rule, a.id,
                      a.severity, a.description)
            next_id = self._next_id = next_id + 1
            counts[version] += 1
            if net.prefixlen == (32 if version == 4 else 128):
                by_target[net] = ban
                hosts[version][net.value] = ban
            else:  # a network (an IPv6 /64): it replaces the bans inside it
                superseded += self._supersede(net)
                active.add(ban)
            prior[net.text] = level
            new.append(ban)
            entries.append(Entry(net, kernel_timeout))
            out[aid] = f"banned {net.text} until {when(expires)} (level {level})"
        if new:
            first = min(b.expires for b in new)
            if self._next_expiry is None or first < self._next_expiry:
                self._next_expiry = first
        error = self._commit(new, extended, superseded, t_now, entries)
        if linked:
            pairs = [(b.id, b.alert_id) for b in linked]
            self._behind.append(lambda con: state.link(con, pairs))
        if new or extended:
            log.info("firewall: banned %d, extended %d, superseded %d (%s)%s", len(new), len(extended),
                     len(superseded), self.backend.name, f"; error: {error}" if error else "")
        if error:
            for aid, text in out.items():
                if text.startswith(("banned", "extended")):
                    out[aid] = text + err_suffix(error)
        return out

    @_locked
    def tick(self, now: dt.datetime) -> ReconcileReport | None:
        """Cheap: closes bans whose time is up; runs a reconcile when one is due (or after a failure)."""
        self._ensure_loaded(now)
        if self._next_expiry is not None and now.timestamp() >= self._next_expiry:
            self._expire(now)
        due = (self._last_reconcile is None or self._dirty
               or time.monotonic() - self._last_reconcile >= self.reconcile_interval)
        return self.reconcile(now) if due else None

    @_locked
    def stop(self, now: dt.datetime) -> None:
        """Bans stay in the kernel (and expire there) unless `unban_on_stop`; the store keeps them either way,
        so the next start restores what is still due."""
        if self.cfg.unban_on_stop:
            self.backend.teardown()
            self._kernel.clear()
            log.info("firewall: removed our %s objects on stop (unban_on_stop)", self.backend.name)

    # -- operations for the CLI (and the watcher's control channel) -------------------------------------------
    @_locked
    def ban(self, text: str, now: dt.datetime, ttl: int | None = None, reason: str | None = None) -> str:
        """Ban an address or network by hand; raises BanRefused for allowlisted or invalid input."""
        self._ensure_loaded(now)
        try:
            net = parse_target(text, 128, allow_network=True)
        except TargetError as exc:
            raise BanRefused(self._refuse(text, f"not banned: {exc}")) from None
        why = self.allowlist.refusal(net)
        if why:
            what = "is allowlisted" if net.is_host else "overlaps the allowlist"
            raise BanRefused(self._refuse(text, f"not banned: {render(net)} {what} ({why})"))
        t_now = now.timestamp()
        expires = t_now + (ttl or self.cfg.ttl_manual)
        existing = self._active.covering(net)
        if existing is not None:
            if existing.net == net and expires > existing.expires:
                existing.expires = expires
                error = self._commit([], [existing], [], t_now)
                return f"extended ban #{existing.id} on {render(net)} until {when(expires)}" + err_suffix(error)
            return f"already banned: {render(existing.net)} until {when(existing.expires)} (ban #{existing.id})"
        cap = self.backend.capacity(net.version)
        if cap is not None and self._active.count(net.version) >= cap:
            raise BanRefused(f"not banned: the IPv{net.version} set is full ({cap} entries, [firewall] maxelem)")
        ban = Ban(self._ids(), net, 1, expires, t_now, "cli", None, None, None, reason or "manual ban")
        self._next_id = ban.id + 1
        superseded = self._supersede(net) if not net.is_host else []
        self._remember(ban)
        error = self._commit([ban], [], superseded, t_now)
        extra = f" (replaces {len(superseded)} ban(s) inside it)" if superseded else ""
        return f"banned {render(net)} until {when(expires)} (ban #{ban.id}){extra}" + err_suffix(error)

    @_locked
    def unban(self, text: str, now: dt.datetime) -> str:
        self._ensure_loaded(now)
        try:
            net = parse_target(text, 128, allow_network=True)
        except TargetError as exc:
            raise NotBanned(str(exc)) from None
        ban = self._active.get(net)
        if ban is None:
            cover = self._active.covering(net)
            hint = f" (it is inside ban #{cover.id} on {render(cover.net)})" if cover else ""
            raise NotBanned(f"{render(net)} is not banned{hint}")
        self._forget(ban)
        with self._store() as con:
            state.remove(con, [ban.id], now, "cli")
        error = self._apply([], [net], now.timestamp())
        return f"unbanned {render(net)} (ban #{ban.id})" + err_suffix(error)

    @_locked
    def flush(self, now: dt.datetime) -> int:
        """End every active ban and empty our sets/chain; how many bans ended."""
        self._ensure_loaded(now)
        ids = [b.id for b in self._active.values()]
        with self._store() as con:
            state.remove(con, ids, now, "flush")
        self._active.clear()
        self._next_expiry = None
        self.backend.flush()
        self._kernel.clear()
        return len(ids)

    @_locked
    def reconcile(self, now: dt.datetime) -> ReconcileReport:
        """Make the kernel hold exactly the active bans, with timeouts that outlast the next reconcile."""
        with no_gc(not self._loaded or len(self._active) > BULK):  # a restore loads 100k bans at once
            return self._reconcile(now)

    def _reconcile(self, now: dt.datetime) -> ReconcileReport:
        t0 = time.perf_counter()
        report = ReconcileReport(at=now)
        with self._store() as con:
            report.expired = len(state.expire(con, now))
        wanted = self._prior is not None
        self._load(now)
        if wanted:  # here, not on the next decision: that may be an early one, which must not wait for the store
            self._prior_counts(now)
        try:
            kernel = self.backend.list()
        except FirewallError as exc:
            report.errors.append(str(exc))
            self._dirty = True
            return report
        t_now = now.timestamp()
        self._kernel = {n: (None if left is None else t_now + left) for n, left in kernel.items()}
        report.active, report.kernel = len(self._active), len(kernel)
        margin = 2 * self.reconcile_interval + 10
        timeouts = self.backend.kernel_timeouts
        add: list[Entry] = []
        kernel_max = self.cfg.kernel_timeout_max
        for net, ban in self._active.items():
            left_ban = ban.expires - t_now
            if net in kernel:
                if not timeouts:
                    continue
                k = kernel[net]
                if k is not None and (k >= left_ban - 2 or k >= margin) and k <= left_ban + 5:
                    continue
                report.renewed += 1
            else:
                report.added += 1
            whole = int(left_ban)  # the kernel timeout: the ban's time left, rounded up, capped
            add.append(Entry(net, kernel_max if whole >= kernel_max else (whole + (whole < left_ban) or 1)))
        remove = [n for n, left in kernel.items()
                  if n not in self._active and (left is None or left > LAPSE_SECONDS)]
        report.removed = len(remove)
        error = self._apply(add, remove, t_now)
        if error:
            report.errors.append(error)
        self._last_reconcile = time.monotonic()
        report.seconds = self._last_cost = time.perf_counter() - t0
        if report.added or report.removed or report.errors:
            log.info("firewall reconcile: %s", report)
        return report

    @property
    def reconcile_interval(self) -> float:
        """`[firewall] reconcile_interval`, stretched so reconciling never takes more than 2% of the time: listing
        100k kernel entries costs seconds (nft's own listing dominates)."""
        stretched = min(self._last_cost * COST_FACTOR, self.cfg.kernel_timeout_max / 4)  # renewals stay in time
        return max(float(self.cfg.reconcile_interval), stretched)

    def refresh_allowlist(self) -> None:
        hosts = self._host_given if self._host_given is not None else (
            host_addresses(self.backend.runner) if self.cfg.allow_host_addresses else ())
        self.allowlist = Allowlist.build(self.trusted, self.cfg.allow, hosts)
        self._allowlist_ready = True

    # -- internals ----------------------------------------------------------------------------------------
    def _allowed(self, net: Target, text: str) -> tuple[Target, str | None]:
        """The target to ban and, when none may be, why. An aggregated IPv6 /64 that holds an allowlisted
        address falls back to the single address."""
        why = self.allowlist.refusal(net)
        if why and net.version == 6 and not net.is_host:
            host = parse_target(text, 128, allow_network=False)
            if self.allowlist.refusal(host) is None:
                return host, None
        return net, why

    def _refuse(self, text: str, why: str, level: int = logging.WARNING) -> str:
        shown = json.dumps(text[:80])
        log.log(level, "firewall: %s%s", why, "" if shown in why else f" (input {shown})")
        self.refused = [*self.refused[-99:], (text[:80], why)]
        return why

    def _ttl(self, base: int, level: int) -> int:
        return int(min(self.cfg.ttl_max, base * self.cfg.escalation_factor ** (level - 1)))

    def _kernel_timeout(self, ban: Ban, t_now: float) -> int:
        return max(1, min(math.ceil(ban.expires - t_now), self.cfg.kernel_timeout_max))

    def _supersede(self, net: Target) -> list[Ban]:
        """Active bans strictly inside `net`, forgotten: the network ban replaces them (and nftables refuses
        overlapping intervals)."""
        inside = self._active.inside(net)
        for b in inside:
            self._active.discard(b)
        return inside

    def _remember(self, ban: Ban) -> None:
        self._active.add(ban)
        if self._next_expiry is None or ban.expires < self._next_expiry:
            self._next_expiry = ban.expires

    def _forget(self, ban: Ban) -> None:
        self._active.discard(ban)

    def _prior_counts(self, now: dt.datetime) -> dict[str, int]:
        if self._prior is None:
            self._prior = {}
            if self.cfg.escalation_factor > 1.0:
                since = now - dt.timedelta(seconds=self.cfg.escalation_window)
                with self._store() as con:
                    self._prior = state.ban_counts(con, since)
        return self._prior

    def _ensure_loaded(self, now: dt.datetime) -> None:
        if not self._allowlist_ready:  # decisions before start(): learn this host's addresses first
            self.refresh_allowlist()
        if not self._loaded:
            self._load(now)

    def _load(self, now: dt.datetime) -> None:
        with self._store() as con:
            bans = state.active(con, now)
            self._next_id = max(self._next_id or 0, state.next_id(con))
        self._active = BanIndex.of(bans)
        self._next_expiry = min((b.expires for b in bans), default=None)
        self._prior = None  # loaded when a decision needs it (a restore does not)
        self._loaded = True

    def _expire(self, now: dt.datetime) -> None:
        t_now = now.timestamp()
        with self._store() as con:
            gone = state.expire(con, now)
        ended = [b for b in self._active.values() if b.expires <= t_now]
        for b in ended:
            self._forget(b)
        nets = [b.net for b in ended]
        self._next_expiry = min((b.expires for b in self._active.values()), default=None)
        if gone:
            log.info("firewall: %d ban(s) expired", len(gone))
        if nets and not self.backend.kernel_timeouts:
            self._apply([], [n for n in nets if n in self._kernel], t_now)

    def _commit(self, new: Sequence[Ban], extended: Sequence[Ban], superseded: Sequence[Ban],
                t_now: float, entries: list[Entry] | None = None) -> str | None:
        """One kernel batch, then the store (one short transaction, written behind: see the module docstring)."""
        if not (new or extended or superseded):
            return None
        if entries is None:
            entries = [Entry(b.net, self._kernel_timeout(b, t_now)) for b in (*new, *extended)]
        error = self._apply(entries, [b.net for b in superseded if b.net in self._kernel], t_now)
        new, extended, superseded = list(new), list(extended), list(superseded)
        self._behind.append(lambda con: self._record(con, new, extended, superseded, t_now))
        return error

    def _ids(self) -> int:
        """The next ban id (from the store once, then counted here)."""
        if self._next_id is None:
            with self._store() as con:
                self._next_id = state.next_id(con)
        return self._next_id

    @contextlib.contextmanager
    def _store(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The store, with every write left behind made first."""
        with self._store_lock:
            self._write()
            yield self.con

    def write_behind(self, wait: bool = True) -> None:
        """Make the store writes left behind (by this thread or another). Called by every public method once
        it has let go of the lock; a write that fails raises here, once, and the next reconcile lifts its bans.
        Without `wait`, a store in use by another thread is left to it (it writes until nothing is behind) or
        to the next caller (the watcher ticks the enforcer several times a second)."""
        if not self._behind:
            return
        if not self._store_lock.acquire(blocking=wait):
            return
        try:
            self._write()
        finally:
            self._store_lock.release()

    def _write(self) -> None:
        behind = self._behind
        with no_gc(len(behind) > 1 or len(self._active) > BULK):  # a round's record can hold 100k bans
            while behind:
                work = behind.popleft()  # atomic: another thread may append meanwhile
                try:
                    work(self.con)
                except Exception:
                    self._dirty = True  # the next tick reconciles the kernel to what the store holds
                    raise

    def _record(self, con: duckdb.DuckDBPyConnection, new: Sequence[Ban], extended: Sequence[Ban],
                superseded: Sequence[Ban], t_now: float) -> None:
        con.execute("BEGIN")
        try:
            state.insert(con, new, self.backend.name)
            state.extend(con, extended)
            state.remove(con, [b.id for b in superseded], dt.datetime.fromtimestamp(t_now, dt.UTC), "superseded")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    def _apply(self, add: Sequence[Entry], remove: Sequence[Target], t_now: float) -> str | None:
        """One backend batch; on failure the kernel is listed again and the batch retried once against what is
        really there. Returns the error text when it still fails (the next tick reconciles)."""
        if not add and not remove:
            return None
        for attempt in (1, 2):
            try:
                self.backend.apply(add, remove, self._kernel.keys())
            except FirewallError as exc:
                if attempt == 2 or isinstance(exc, SetFullError):
                    log.error("firewall: %s", exc)
                    self._dirty = True
                    return str(exc)
                try:
                    listed = self.backend.list()
                except FirewallError:
                    listed = {}
                self._kernel = {n: (None if v is None else t_now + v) for n, v in listed.items()}
                remove = [n for n in remove if n in self._kernel]
                continue
            break
        for n in remove:
            self._kernel.pop(n, None)
        for e in add:
            self._kernel[e.net] = t_now + e.timeout
        self._dirty = False
        return None
