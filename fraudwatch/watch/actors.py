"""What the watcher does with alerts: the firewall enforcer (bans) and the notifier (outbox + dispatcher).

Built from the config at start (and again on SIGHUP). The enforcer always runs — with the `dry-run` backend it
records what it would ban — so `fraudwatch bans` is meaningful on every host; the notifier runs when
`[alerts]` names channels. The control socket reaches both through the watcher's table of operations
(`fraudwatch.watch.ops`).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fraudwatch.watch.base import WatcherBase

log = logging.getLogger("fraudwatch.watch")


def build_actors(w: WatcherBase) -> None:
    from fraudwatch.enforce.backends import make_backend
    from fraudwatch.enforce.enforcer import Enforcer
    from fraudwatch.notify.dispatch import start_notifier

    assert w.store is not None
    w.enforcer = w.notifier = None
    try:
        # a cursor of its own: the early-ban thread calls it while the acting thread saves alerts; element
        # changes through nftables' library in process, no `nft` process each (fraudwatch.enforce.backends.nft)
        enforcer = Enforcer(w.act_con.cursor(), w.cfg.firewall, w.cfg.trusted_networks,
                            backend=make_backend(w.cfg.firewall, in_process=True))
        enforcer.on_banned = lambda bans: on_banned(w, bans)
        report = enforcer.start(dt.datetime.now(dt.UTC))
        w.enforcer = enforcer
        w.stats.firewall = {"backend": enforcer.backend.name, "dry_run": enforcer.dry_run}
        if enforcer.dry_run:
            log.info("firewall: dry run: bans are recorded and listed as 'would ban', never put in a firewall; %s",
                     report)
        else:
            log.info("firewall: %s backend; %s", enforcer.backend.name, report)
    except Exception as exc:  # e.g. nft missing or no CAP_NET_ADMIN: detection and alerts go on without bans
        log.error("firewall not started, no bans will be applied: %s", exc)
    start_sentry(w)
    if w.cfg.alerts.channels:
        try:
            w.notifier = start_notifier(w.act_con, w.cfg.alerts, rules=w.ruleset.rules if w.ruleset else None,
                                        country=country_of,
                                        firewall=w.cfg.firewall.backend if w.enforcer is not None else None)
            log.info("notifications: %d channel(s)", len(w.cfg.alerts.channels))
        except Exception as exc:
            log.error("notifications not started: %s", exc)


def on_banned(w: WatcherBase, bans: Sequence[Any]) -> None:
    """New bans (any thread that banned): a log line each, and the per-rule counters."""
    from fraudwatch.watch.eventlog import log_bans

    enforcer = w.enforcer
    log_bans(bans, bool(enforcer is not None and enforcer.dry_run), enforcer.backend.name if enforcer else "?")
    w.stats.banned([b.rule for b in bans])


def country_of(ip: str) -> str | None:
    """ISO country of an address, offline (iptocc), for the 'who' line of a notification."""
    import iptocc

    got = iptocc.country_code([ip])
    return got[0] if got else None


def start_sentry(w: WatcherBase) -> None:
    """Early bans (fraudwatch.watch.sentry) when they are on and can do something: a firewall that bans, rules
    they can stand in for, and log sources."""
    from fraudwatch.detect.runners.early import early_rules
    from fraudwatch.enforce.results import is_new_ban

    w.sentry = None
    w.stats.early = None
    if not w.cfg.watch.early_bans or w.enforcer is None or w.cfg.firewall.backend == "dry-run" \
            or not w.cfg.sources or not early_rules(list(w.ruleset.rules.values()) if w.ruleset else []):
        return
    from fraudwatch.watch.sentry import Sentry

    enforcer = w.enforcer

    def on_bans(decisions: list[Any]) -> None:
        t0 = time.monotonic()
        done = enforcer.on_early(decisions, dt.datetime.now(dt.UTC))
        log.debug("early bans: %d decision(s) acted on in %.3fs (store included)", len(decisions),
                  time.monotonic() - t0)
        banned = [(d, what) for d, what in zip(decisions, done, strict=True) if is_new_ban(what)]
        if banned:  # one line per batch (the bans have theirs): a flood's botnet is decided a few hundred at a time
            log.info("early bans: %d decided on the log's newest lines, before the rules' alerts", len(banned))

    def customers(seen: list[str] | None) -> list[str]:
        """The sentry saw `seen` succeed in the log tail; the recent customers, for the sentry (see
        fraudwatch.enforce.early)."""
        if seen:
            enforcer.add_customers(seen)
        return sorted(enforcer.customers)

    try:
        sentry = Sentry(w.cfg, on_bans, customers if w.cfg.firewall.ban_evidence else None)
        sentry.start()
    except Exception as exc:  # bans still come from the rules' alerts
        log.error("early bans not started: %s", exc)
        return
    w.sentry = sentry
    w.stats.early = sentry
