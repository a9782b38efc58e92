"""The enforcer: turns ban decisions into bans (one kernel batch, then the store) and keeps the kernel in step.

The `bans` table is the desired state. `reconcile` compares it with what the kernel holds: re-applies active bans
that are missing (a restart, a wiped ruleset), removes entries no active ban explains, and renews entries whose
kernel timeout (capped at `kernel_timeout_max`) would run out before the ban does. The allowlist always wins.

What a round of decisions does is planned without I/O (`fraudwatch.enforce.planning`); the kernel batch and the
store writes behind it are `fraudwatch.enforce.writebehind`'s. This module holds the state between rounds (the
active bans, escalation counts, ids), the lock, and the loading, expiry and reconcile that use the store.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import duckdb

import fraudwatch.enforce.state as state
from fraudwatch import tuning
from fraudwatch.config.firewall import FirewallConfig
from fraudwatch.enforce.backends import make_backend
from fraudwatch.enforce.backends.base import Backend, Entry, FirewallError
from fraudwatch.enforce.early import kernel_target
from fraudwatch.enforce.evidence import early_refusal, lookup, recent_customers
from fraudwatch.enforce.hostaddrs import host_addresses
from fraudwatch.enforce.index import BanIndex
from fraudwatch.enforce.planning import Proposal, kernel_timeout, plan_alerts, plan_reconcile, supersede
from fraudwatch.enforce.results import BanRefused, NotBanned, ReconcileReport, Words, err_suffix, is_ban, when
from fraudwatch.enforce.state import Ban
from fraudwatch.enforce.targets import Allowlist, Target, TargetError, parse_target, render
from fraudwatch.enforce.writebehind import WriteBehind
from fraudwatch.netaddr import IPNetwork

if TYPE_CHECKING:
    from fraudwatch.detect.decide import Alert
    from fraudwatch.detect.runners.early import Decision

log = logging.getLogger("fraudwatch.enforce")
BULK = 2000  # batches larger than this run with the cyclic GC paused (it rescans every live object, often)
COST_FACTOR = 50  # a reconcile that took s seconds waits at least 50 s before the next
CUSTOMERS_REFRESH = 30.0  # seconds between lookups of the recent customers (for early bans and the sentry)
SEEN_SECONDS = 600.0  # how long a customer the sentry saw is kept without the store's word for it
MAX_MANUAL_TTL = 10 * 365 * 86400  # a hand-made ban's longest time: ten years (reconcile renews kernel timeouts)

_F = TypeVar("_F", bound=Callable[..., Any])


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


def manual_ttl(value: object) -> int | None:
    """A hand-made ban's time in whole seconds (None: `ttl_manual`), or BanRefused saying why not. Over the
    control socket the value is whatever JSON the client sent: -100 or 1e300 must not reach the kernel or the
    expiry arithmetic (1e300 seconds from now is no time a datetime can hold)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BanRefused(f"not banned: ttl must be a whole number of seconds, got {json.dumps(str(value))[:40]}")
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise BanRefused(f"not banned: ttl must be a whole number of seconds, got {value!r}"[:80])
    if not 1 <= value <= MAX_MANUAL_TTL:
        raise BanRefused(f"not banned: ttl must be from 1 to {MAX_MANUAL_TTL} seconds (ten years), got "
                         f"{value!r}"[:100])
    return int(value)


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
        self._loaded = False
        self._last_reconcile: float | None = None  # monotonic
        self._last_cost = 0.0  # seconds the last reconcile took
        self._next_expiry: float | None = None
        self._prior: dict[str, int] | None = None  # network -> its bans within the escalation window (levels)
        self.refused: list[tuple[str, str]] = []  # the latest refusals: (input, why), for the watcher's status
        self.lock = threading.RLock()
        self.writes = WriteBehind(con, self.backend, lambda: len(self._active) > BULK)
        self._next_id: int | None = None  # the next ban id (ids are given before their bans are written)
        self.customers: frozenset[str] = frozenset()  # recent customers (`evidence.recent_customers`)
        self._customers_at: float | None = None  # monotonic time of that lookup
        self._customers_asof: dt.datetime | None = None  # the `now` it was made for
        self._seen: dict[str, float] = {}  # customers the sentry saw succeed -> monotonic time (`add_customers`)
        self._customers_lock = threading.Lock()  # the early-ban thread adds while the acting thread looks up
        self.words = Words(dry_run=self.dry_run)
        # called with the bans each round or command made (the watcher's log lines and per-rule counters)
        self.on_banned: Callable[[Sequence[Ban]], None] | None = None

    @property
    def dry_run(self) -> bool:
        """The backend changes no firewall: bans are recorded and listed, and every text says "would ban"."""
        return not self.backend.changes_firewall

    # -- the watcher's interface ---------------------------------------------------------------------------
    @_locked
    def start(self, now: dt.datetime) -> ReconcileReport:
        """Idempotent setup of our table/sets/chain, then a reconcile (restores active bans after a restart)."""
        self.refresh_allowlist()
        self.backend.setup()
        report = self.reconcile(now)
        self.refresh_customers(now, force=True)
        return report

    def on_alerts(self, alerts: Sequence[Alert], now: dt.datetime) -> dict[int, str]:
        """Ban the sources of alerts whose action is `ban_ip`; alert id -> what was done. One kernel batch. The
        evidence (`fraudwatch.enforce.evidence`) is looked up first, outside the enforcer's lock: the early-ban
        thread never waits for a read of the store."""
        evidence = self._evidence(alerts, now, early=False)
        return self._on_alerts_locked(alerts, now, evidence)

    @_locked
    def _on_alerts_locked(self, alerts: Sequence[Alert], now: dt.datetime,
                          evidence: Callable[[str, bool], str | None] | None) -> dict[int, str]:
        with tuning.gc_paused(len(alerts) > BULK):
            return self._on_alerts(alerts, now, evidence=evidence)

    def on_early(self, decisions: Sequence[Decision], now: dt.datetime) -> list[str]:
        """Ban the keys of early decisions (`fraudwatch.detect.runners.early`) at once, as their rules' alerts
        would; what was done, per decision. The alert comes later from the rules and finds its ban (see
        `planning.plan_alerts`).
        The early-ban thread never waits for the store: when it is busy, the next caller writes these bans."""
        with self.lock, tuning.gc_paused(len(decisions) > BULK):
            # what the sentry put in the kernel itself (fraudwatch.enforce.early) is there: a ban renews it
            applied = {i: net for i, d in enumerate(decisions)
                       if d.applied and (net := kernel_target(d, self.cfg.ipv6_prefix)) is not None}
            kernel = self.writes.kernel
            for net in applied.values():
                kernel.setdefault(net, None)
            results = self._on_alerts(decisions, now, early=True,
                                      evidence=self._evidence(decisions, now, early=True))
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
            if is_ban(results.get(-1 - i, "")):
                continue  # banned here: the element was renewed with the ban's timeout
            ban = self._active.get(net)
            if ban is not None and ban.net == net:
                add.append(Entry(net, kernel_timeout(self.cfg, ban, t_now)))
            else:
                remove.append(net)
        if add or remove:
            self.writes.apply(add, remove, t_now)

    def _on_alerts(self, alerts: Sequence[Proposal], now: dt.datetime, early: bool = False,
                   evidence: Callable[[str, bool], str | None] | None = None) -> dict[int, str]:
        """Plan the round (`planning.plan_alerts`), then one kernel batch and the store behind it. Early
        decisions have no alert id: their results are keyed by -1, -2, ... and their bans say `early`."""
        self._ensure_loaded(now)
        t_now = now.timestamp()
        next_id = self._ids()
        caps = {v: self.backend.capacity(v) for v in (4, 6)}
        plan = plan_alerts(alerts, t_now, self.cfg, self.allowlist, self._active, self._prior_counts(now), next_id,
                           caps, evidence, self.customers, self.words)
        self._next_id = plan.next_id
        for text, why, level in plan.refused:
            self._refuse(text, why, level)
        if plan.made_room:
            shown = "; ".join(plan.made_room[:3]) + (f"; and {len(plan.made_room) - 3} more"
                                                     if len(plan.made_room) > 3 else "")
            self._refuse("(full policy)", f"ban set nearly full ([firewall] full_policy = {self.cfg.full_policy}, "
                         f"full_at = {self.cfg.full_at}%): {shown}", logging.WARNING)
        new, extended, superseded, out = plan.new, plan.extended, plan.superseded, plan.out
        if new:
            first = min(b.expires for b in new)
            if self._next_expiry is None or first < self._next_expiry:
                self._next_expiry = first
        error = self.writes.commit(new, extended, superseded, t_now, plan.entries, plan.evicted)
        if plan.linked:
            pairs = [(b.id, b.alert_id) for b in plan.linked]
            self.writes.later(lambda con: state.link(con, pairs))
        if not early:
            self._note_refusals(alerts, out)
        if new or extended:  # one line a round here; a line per ban is the watcher's (`on_banned`)
            log.debug("firewall: %s %d, %s %d, superseded %d (%s)%s", self.words.ban, len(new), self.words.extend,
                      len(extended), len(superseded), self.backend.name, f"; error: {error}" if error else "")
        if error:
            for aid, text in out.items():
                if is_ban(text):
                    out[aid] = text + err_suffix(error)
        self._tell(new)
        return out

    def _tell(self, new: Sequence[Ban]) -> None:
        if new and self.on_banned is not None:
            try:
                self.on_banned(new)
            except Exception:  # a listener's failure is no firewall's
                log.exception("firewall: reporting %d new ban(s) failed", len(new))

    def tick(self, now: dt.datetime) -> ReconcileReport | None:
        """Cheap: closes bans whose time is up; runs a reconcile when one is due (or after a failure). The recent
        customers are looked up again when due, outside the enforcer's lock (early bans use the last list
        meanwhile)."""
        self.refresh_customers(now)
        return self._tick(now)

    @_locked
    def _tick(self, now: dt.datetime) -> ReconcileReport | None:
        self._ensure_loaded(now)
        if self._next_expiry is not None and now.timestamp() >= self._next_expiry:
            self._expire(now)
        due = (self._last_reconcile is None or self.writes.dirty
               or time.monotonic() - self._last_reconcile >= self.reconcile_interval)
        return self.reconcile(now) if due else None

    @_locked
    def stop(self, now: dt.datetime) -> None:
        """Bans stay in the kernel (and expire there) unless `unban_on_stop`; the store keeps them either way,
        so the next start restores what is still due."""
        if self.cfg.unban_on_stop:
            self.backend.teardown()
            self.writes.kernel.clear()
            log.info("firewall: removed our %s objects on stop (unban_on_stop)", self.backend.name)

    # -- operations for the CLI (and the watcher's control channel) -------------------------------------------
    @_locked
    def ban(self, text: str, now: dt.datetime, ttl: int | None = None, reason: str | None = None) -> str:
        """Ban an address or network by hand; raises BanRefused for allowlisted or invalid input (a `ttl` that is
        not a whole number of seconds from 1 to `MAX_MANUAL_TTL`)."""
        ttl = manual_ttl(ttl)
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
                return (f"{self.words.extend} ban #{existing.id} on {render(net)} until {when(expires)}"
                        f"{self.words.note}" + err_suffix(error))
            return (f"{self.words.already}: {render(existing.net)} until {when(existing.expires)} "
                    f"(ban #{existing.id})")
        cap = self.backend.capacity(net.version)
        if cap is not None and self._active.count(net.version) >= cap:
            raise BanRefused(f"not banned: the IPv{net.version} set is full ({cap} entries, [firewall] maxelem)")
        ban = Ban(self._ids(), net, 1, expires, t_now, "cli", None, None, None, reason or "manual ban")
        self._next_id = ban.id + 1
        superseded = supersede(self._active, net) if not net.is_host else []
        self._remember(ban)
        error = self._commit([ban], [], superseded, t_now)
        extra = f" (replaces {len(superseded)} ban(s) inside it)" if superseded else ""
        self._tell([ban])
        return (f"{self.words.ban} {render(net)} until {when(expires)} (ban #{ban.id}){extra}{self.words.note}"
                + err_suffix(error))

    def listing(self, now: dt.datetime, include_history: bool = False,
                limit: int | None = None) -> list[dict[str, Any]]:
        """The bans as the store holds them (`state.listing`), the writes left behind made first. Through the
        store's lock like every use of `con`: a DuckDB connection refuses a second thread's call while it runs
        one (the early-ban thread's writes). Not `_locked`: a listing waits for the store, not for decisions."""
        with self._store() as con:
            return state.listing(con, now, include_history, limit)

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
        error = self.writes.apply([], [net], now.timestamp())
        if self.dry_run:
            return f"ended dry-run ban #{ban.id} on {render(net)} (dry run: no firewall held it)"
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
        self.writes.kernel.clear()
        return len(ids)

    @_locked
    def reconcile(self, now: dt.datetime) -> ReconcileReport:
        """Make the kernel hold exactly the active bans, with timeouts that outlast the next reconcile."""
        with tuning.gc_paused(not self._loaded or len(self._active) > BULK):  # a restore loads 100k bans at once
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
            self.writes.dirty = True
            return report
        t_now = now.timestamp()
        self.writes.listed(kernel, t_now)
        report.active, report.kernel = len(self._active), len(kernel)
        plan = plan_reconcile(self._active, kernel, t_now, 2 * self.reconcile_interval + 10,
                              self.backend.kernel_timeouts, self.cfg.kernel_timeout_max)
        report.added, report.renewed, report.removed = plan.added, plan.renewed, len(plan.remove)
        error = self.writes.apply(plan.add, plan.remove, t_now)
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
    def _note_refusals(self, alerts: Sequence[Proposal], out: dict[int, str]) -> None:
        """A ban the alert proposed and that was not made says why in the alert itself (`enforcement` in its
        evidence, which `alerts show` prints), not only in the log and the notification: kept in the alert the
        rules hold, so their next update of it keeps it, and written to its row behind the round."""
        rows: list[tuple[str, int]] = []
        for a in alerts:
            evidence, aid = getattr(a, "evidence", None), a.id
            text = out.get(aid) if aid is not None else None
            if aid is None or text is None or not isinstance(evidence, dict) or a.action != "ban_ip":
                continue
            if text.startswith("not banned") or "enforcement" in evidence:
                evidence["enforcement"] = text
                rows.append((json.dumps(evidence, default=str, ensure_ascii=False), aid))
        if rows:
            def record(con: duckdb.DuckDBPyConnection) -> None:
                con.executemany("UPDATE alerts SET evidence = ? WHERE id = ?", rows)

            self.writes.later(record)

    def _evidence(self, alerts: Sequence[Proposal], now: dt.datetime,
                  early: bool) -> Callable[[str, bool], str | None] | None:
        """What `planning.plan_alerts` asks before a new ban (`fraudwatch.enforce.evidence`). Early decisions
        never wait for the store: they are checked against the recent customers looked up every
        `CUSTOMERS_REFRESH` seconds. Alerts: one lookup for the round's addresses, made before the round takes
        the enforcer's lock (the planning asks only about the addresses it would newly ban)."""
        if not self.cfg.ban_evidence:
            return None
        window = self.cfg.customer_window
        if early:
            customers = self.customers
            return lambda ip, _early: early_refusal(ip, customers, window)
        since: dict[str, dt.datetime] = {}
        for a in alerts:
            if a.action != "ban_ip" or a.key_type != "ip" or a.id is None:
                continue
            ip = a.key.split("|", 1)[0]
            first = getattr(a, "first_seen", None)
            start = first if isinstance(first, dt.datetime) else now - dt.timedelta(hours=1)
            if ip not in since or start < since[ip]:
                since[ip] = start
        if not since:
            return None
        try:
            with self._store() as con:
                found = lookup(con, since, now, window, self.customers, self._customers_asof)
        except duckdb.Error as exc:  # no evidence to be had: ban as before rather than never
            log.error("firewall: looking up the evidence for %d address(es) failed (banning without it): %s",
                      len(since), exc)
            return None
        customers = self.customers

        def check(ip: str, is_early: bool) -> str | None:
            return early_refusal(ip, customers, window) if is_early else found.refusal(ip)

        return check

    def add_customers(self, addresses: Sequence[str]) -> None:
        """Recent customers seen before the store has them (the sentry's log tail): kept `SEEN_SECONDS` through
        the lookups, which may run before the watcher has stored their lines."""
        with self._customers_lock:
            t = time.monotonic()
            for ip in addresses:
                self._seen[ip] = t
            self.customers = self.customers | frozenset(addresses)

    def refresh_customers(self, now: dt.datetime, force: bool = False) -> frozenset[str]:
        """The recent customers, looked up again when `CUSTOMERS_REFRESH` seconds old (or `force`)."""
        due = self._customers_at is None or time.monotonic() - self._customers_at >= CUSTOMERS_REFRESH
        if self.cfg.ban_evidence and (due or force):
            try:
                with self._store() as con:
                    found = recent_customers(con, now, self.cfg.customer_window)
                with self._customers_lock:
                    cut = time.monotonic() - SEEN_SECONDS
                    self._seen = {ip: t for ip, t in self._seen.items() if t >= cut and ip not in found}
                    self.customers = found | frozenset(self._seen)
                self._customers_asof = now
            except duckdb.Error as exc:
                log.error("firewall: looking up the recent customers failed: %s", exc)
            self._customers_at = time.monotonic()
        return self.customers

    def _refuse(self, text: str, why: str, level: int = logging.WARNING) -> str:
        shown = json.dumps(text[:80])
        log.log(level, "firewall: %s%s", why, "" if shown in why else f" (input {shown})")
        self.refused = [*self.refused[-99:], (text[:80], why)]
        return why

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
            kernel = self.writes.kernel
            self.writes.apply([], [n for n in nets if n in kernel], t_now)

    def _commit(self, new: Sequence[Ban], extended: Sequence[Ban], superseded: Sequence[Ban],
                t_now: float) -> str | None:
        entries = [Entry(b.net, kernel_timeout(self.cfg, b, t_now)) for b in (*new, *extended)]
        return self.writes.commit(new, extended, superseded, t_now, entries)

    def _ids(self) -> int:
        """The next ban id (from the store once, then counted here)."""
        if self._next_id is None:
            with self._store() as con:
                self._next_id = state.next_id(con)
        return self._next_id

    @contextlib.contextmanager
    def _store(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The store, with every write left behind made first."""
        with self.writes.store() as con:
            yield con

    def write_behind(self, wait: bool = True) -> None:
        """The store writes left behind (`WriteBehind.write_behind`)."""
        self.writes.write_behind(wait)
