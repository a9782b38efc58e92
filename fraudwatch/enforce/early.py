"""Early bans put in the kernel by the sentry's own process, before the watcher hears of them.

Under a flood the watcher's Python is busy: a decision the sentry sent waited long for the watcher's interpreter
lock before its enforcer could act (figures: benchmarks/RESULTS.md, "Early bans put in the kernel by the sentry").
With the nftables backend the sentry therefore adds each decided address to our host set itself, then sends the
decision, marked `applied`. The watcher's enforcer does with it what it does with any decision (the allowlist,
escalation, the store) and then puts the element right: the ban's own timeout, or out again if it does not ban after
all (`Enforcer.on_early`). A dying watcher leaves at worst an element that expires by its own timeout.

What the sentry adds can never be more than the enforcer would ban: the same allowlist (trusted networks,
`[firewall] allow`, this host's addresses, special-purpose networks), no rule on trial (`report_only`), and the
first level's time (escalation only lengthens a ban), and no recent customer's address (`[firewall] ban_evidence`:
the addresses the watcher's store knows registered or called successfully, which the watcher hands the sentry,
and those the sentry saw succeed in the log tail itself, which it hands the watcher with its decisions; the
enforcer then leaves such a ban to the rule's alert, checked against the whole dialog in the store: see
`fraudwatch.enforce.evidence`). Only single addresses: a network (IPv6 aggregated to
/`ipv6_prefix`) goes in an interval set, where the kernel refuses overlaps that only the enforcer can see
coming. Adding an element that is already there cannot fail; on this kernel it resets the element's timeout,
which the enforcer then sets back to its ban's (`Enforcer._settle_early`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from fraudwatch.enforce.backends import make_backend
from fraudwatch.enforce.backends.base import Backend, Entry, FirewallError
from fraudwatch.enforce.hostaddrs import host_addresses
from fraudwatch.enforce.targets import Allowlist, Target, TargetError, parse_target

if TYPE_CHECKING:
    from fraudwatch.config import Config
    from fraudwatch.detect.runners.early import Decision

log = logging.getLogger("fraudwatch.watch")


def kernel_target(decision: Decision, ipv6_prefix: int) -> Target | None:
    """The target the enforcer bans for an early decision (None: not an address), as the enforcer's planning
    (`fraudwatch.enforce.planning.plan_alerts`) reads its key."""
    if decision.action != "ban_ip" or decision.key_type != "ip":
        return None
    try:
        return parse_target(decision.key.split("|", 1)[0], ipv6_prefix, False)
    except TargetError:
        return None


class SentryFirewall:
    """The sentry's hand on the kernel: `apply` puts the decided single addresses in our nftables host sets."""

    def __init__(self, cfg: Config, backend: Backend | None = None) -> None:
        self.cfg = cfg.firewall
        self.backend = backend or make_backend(cfg.firewall, in_process=True)
        hosts = host_addresses(self.backend.runner) if self.cfg.allow_host_addresses else []
        self.allowlist = Allowlist.build(cfg.trusted_networks, self.cfg.allow, hosts)
        self.trial = set(self.cfg.report_only)
        self.applied = 0  # elements added, for the sentry's counters
        self.customers: set[str] = set()  # recent customers (the watcher's and the sentry's own): never added here
        self.held = 0  # decisions on a recent customer's address, left to the enforcer, for the counters

    @staticmethod
    def wanted(cfg: Config) -> bool:
        return cfg.firewall.backend == "nftables"

    def apply(self, decisions: Sequence[Decision]) -> list[Decision]:
        """The decisions, those whose address is now in the kernel marked `applied` (all unmarked if the
        batch failed: the enforcer bans them as before)."""
        entries: dict[Target, Entry] = {}
        out: list[Decision] = []
        for d in decisions:
            net = kernel_target(d, self.cfg.ipv6_prefix)
            if net is None or not net.is_host or d.report_only or d.rule in self.trial \
                    or self.allowlist.refusal(net) is not None:
                out.append(d)
                continue
            if self.cfg.ban_evidence and d.key.split("|", 1)[0] in self.customers:
                self.held += 1
                out.append(d)
                continue
            ttl = min(self.cfg.ttl_max, self.cfg.ttl_for(d.rule, d.severity))
            timeout = max(1, min(ttl, self.cfg.kernel_timeout_max))
            entries[net] = Entry(net, max(timeout, entries[net].timeout) if net in entries else timeout)
            out.append(dataclasses.replace(d, applied=True))
        if not entries:
            return out
        try:
            self.backend.apply(list(entries.values()), [], ())
        except FirewallError as exc:
            log.warning("early bans: the sentry could not ban %d address(es) itself (the watcher will): %s",
                        len(entries), exc)
            return list(decisions)
        self.applied += len(entries)
        return out
