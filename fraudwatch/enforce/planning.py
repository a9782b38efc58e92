"""Ban planning: what a round of decisions does to the bans, as a function of the bans in memory, the config,
the allowlist and the time — no store, no kernel, no lock.

`plan_alerts` reads alerts (or early decisions) and says, per alert, what was done: a new ban (its TTL by rule,
severity and escalation level), an extension, a refusal (not an address, allowlisted, the set is full), or
report-only. It updates the index of active bans it is given in place (copying 100k bans per round would cost
more than the round), and returns the bans to write and the kernel entries to add. `plan_reconcile` compares the
active bans with what the kernel holds. The enforcer (`fraudwatch.enforce.enforcer`) applies both.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from fraudwatch.config.firewall import FirewallConfig
from fraudwatch.enforce.backends.base import Entry
from fraudwatch.enforce.capacity import Room, high_water
from fraudwatch.enforce.index import BanIndex
from fraudwatch.enforce.results import Words, is_new_ban, span, when
from fraudwatch.enforce.state import Ban
from fraudwatch.enforce.targets import Allowlist, Target, TargetError, parse_target

EARLY = "early"  # `bans.source` of a ban decided on the log's newest lines (fraudwatch.detect.runners.early)
BANS = Words()  # a backend that bans: its texts say "banned"
LAPSE_SECONDS = 5  # a stale kernel entry this close to its timeout is left to lapse rather than deleted


class Proposal(Protocol):
    """What `plan_alerts` reads of an alert, or of an early decision (which has no alert id yet)."""

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


@dataclass
class Plan:
    """What one round of decisions does. `out`: alert id (early decisions: -1, -2, ...) -> what was done."""

    out: dict[int, str] = field(default_factory=dict)
    new: list[Ban] = field(default_factory=list)
    extended: list[Ban] = field(default_factory=list)
    superseded: list[Ban] = field(default_factory=list)  # bans inside a new network ban, now replaced by it
    entries: list[Entry] = field(default_factory=list)  # to put in the kernel: the new and extended bans
    linked: list[Ban] = field(default_factory=list)  # early bans whose alert came: their alert id is set
    refused: list[tuple[str, str, int]] = field(default_factory=list)  # (input, why, log level), in order
    evicted: list[Ban] = field(default_factory=list)  # ended to make room in a nearly full set
    made_room: list[str] = field(default_factory=list)  # what the full policy did, for the log and the status
    next_id: int = 0  # the id the next ban gets


def ttl(cfg: FirewallConfig, base: int, level: int) -> int:
    """A ban's time at escalation `level` (1: the first ban): `base` times the factor per level, capped."""
    return int(min(cfg.ttl_max, base * cfg.escalation_factor ** (level - 1)))


def kernel_timeout(cfg: FirewallConfig, ban: Ban, t_now: float) -> int:
    """The kernel timeout of a ban's element: its time left, rounded up, capped at `kernel_timeout_max`."""
    return max(1, min(math.ceil(ban.expires - t_now), cfg.kernel_timeout_max))


def allowed(allowlist: Allowlist, net: Target, text: str) -> tuple[Target, str | None]:
    """The target to ban and, when none may be, why. An aggregated IPv6 /64 that holds an allowlisted
    address falls back to the single address."""
    why = allowlist.refusal(net)
    if why and net.version == 6 and not net.is_host:
        host = parse_target(text, 128, allow_network=False)
        if allowlist.refusal(host) is None:
            return host, None
    return net, why


def supersede(active: BanIndex, net: Target) -> list[Ban]:
    """Active bans strictly inside `net`, taken out of `active`: the network ban replaces them (and nftables
    refuses overlapping intervals)."""
    inside = active.inside(net)
    for b in inside:
        active.discard(b)
    return inside


def plan_alerts(alerts: Sequence[Proposal], t_now: float, cfg: FirewallConfig, allowlist: Allowlist,
                active: BanIndex, prior: dict[str, int], next_id: int,
                caps: Mapping[int, int | None], evidence: Callable[[str, bool], str | None] | None = None,
                protected: Collection[str] = (), words: Words = BANS) -> Plan:
    """Ban the keys of `ban_ip` alerts. `prior`: network -> its level within the escalation window (updated
    here); `caps`: IP version -> how many entries its set holds (None: no limit); `evidence`: (address, early)
    -> why a new ban of it is not made (`fraudwatch.enforce.evidence`); `protected`: the recent customers, whom
    an aggregated network ban must not hold (`fraudwatch.enforce.capacity`); `words`: the texts' verbs (the
    dry run says "would ban"). One pass with its lookups hoisted: a botnet brings 100k alerts in a batch."""
    plan = Plan()
    out, new, extended, superseded, entries, linked = (plan.out, plan.new, plan.extended, plan.superseded,
                                                      plan.entries, plan.linked)
    counts = {v: active.count(v) if caps[v] is not None else 0 for v in (4, 6)}
    highs = {v: high_water(c, cfg.full_at) if c is not None else None for v, c in caps.items()}
    room = Room(active)
    trial = set(cfg.report_only)
    ttls: dict[tuple[str, str, int], tuple[int, int]] = {}  # (rule, severity, level) -> (ttl, kernel timeout)
    refusal = allowlist.refusal
    by_target, hosts = active.by_target, active.hosts
    kernel_max = cfg.kernel_timeout_max
    v6_prefix = cfg.ipv6_prefix

    def refuse(text: str, why: str, level: int = logging.WARNING) -> str:
        plan.refused.append((text, why, level))
        return why

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
            out[aid] = refuse(text, f"not banned: {exc}")
            continue
        if refusal(net):
            net, why = allowed(allowlist, net, text)
            if why:
                out[aid] = refuse(text, f"not banned: {why}")
                continue
        existing = by_target.get(net) if not active.nets else active.covering(net)
        # a repeat alert during a ban extends it at the ban's level; escalation counts separate bans
        level = existing.level if existing is not None else prior.get(net.text, 0) + 1
        key = (a.rule, a.severity, level)
        known = ttls.get(key)
        if known is None:
            seconds = ttl(cfg, cfg.ttl_for(a.rule, a.severity), level)
            known = ttls[key] = (seconds, min(seconds, kernel_max))
        seconds, timeout = known
        expires = t_now + seconds
        if existing is None and evidence is not None:
            why = evidence(text, a.id is None)
            if why:
                out[aid] = refuse(text, why)
                continue
        if a.report_only or a.rule in trial:
            already = f" ({words.already} until {when(existing.expires)})" if existing else ""
            out[aid] = f"report-only: would ban {net.text} for {span(seconds)} (level {level}){already}"
            continue
        if existing is not None:
            if existing.net == net and expires > existing.expires + 1:
                existing.expires = expires
                extended.append(existing)
                entries.append(Entry(net, timeout))
                out[aid] = f"{words.extend} ban #{existing.id} on {net.text} until {when(expires)}{words.note}"
            else:
                out[aid] = (f"{words.already}: {existing.net.text} until {when(existing.expires)} "
                            f"(ban #{existing.id})")
            if existing.source == EARLY and existing.alert_id is None and existing.rule == a.rule \
                    and a.id is not None:  # the alert behind an early ban: it is this alert's ban
                existing.alert_id = a.id
                linked.append(existing)
                ahead = f", {t_now - existing.created:.1f} s before this alert" if existing.created else ""
                out[aid] = (f"{words.ban} {existing.net.text} until {when(existing.expires)} (level "
                            f"{existing.level}; ban #{existing.id}, decided early on the log's newest lines{ahead})"
                            f"{words.note}")
            continue
        version = net.version
        cap, high = caps[version], highs[version]
        if cap is not None and high is not None and counts[version] >= high:
            counts[version] -= _make_room(plan, room, cfg, allowlist, protected, version, counts[version] - high + 1,
                                          t_now, next_id)
            if plan.next_id > next_id:
                next_id = plan.next_id
            if counts[version] >= cap:
                out[aid] = refuse(text, f"not banned: the IPv{version} set is full ({cap} entries, [firewall] "
                                        f"maxelem) and nothing could be evicted or aggregated", level=logging.ERROR)
                continue
            cover = active.covering(net) if active.nets else None
            if cover is not None:  # the room made was a network ban that holds it
                out[aid] = f"{words.already}: {cover.net.text} until {when(cover.expires)} (ban #{cover.id})"
                continue
        ban = Ban(next_id, net, level, expires, t_now, "rule" if a.id is not None else EARLY, a.rule, a.id,
                  a.severity, a.description)
        next_id += 1
        counts[version] += 1
        if net.prefixlen == (32 if version == 4 else 128):
            by_target[net] = ban
            hosts[version][net.value] = ban
        else:  # a network (an IPv6 /64): it replaces the bans inside it
            superseded += supersede(active, net)
            active.add(ban)
        prior[net.text] = level
        new.append(ban)
        entries.append(Entry(net, timeout))
        out[aid] = f"{words.ban} {net.text} until {when(expires)} (level {level}){words.note}"
    plan.next_id = next_id
    return plan


def _make_room(plan: Plan, room: Room, cfg: FirewallConfig, allowlist: Allowlist, protected: Collection[str],
               version: int, needed: int, t_now: float, next_id: int) -> int:
    """Free `needed` entries of `version`'s set by the full policy; how many were freed. An aggregated network
    ban takes the next id (`plan.next_id`)."""
    freed = 0
    while freed < needed:
        if cfg.full_policy == "aggregate":
            got = room.aggregate(version, allowlist, protected)
            if got is not None:
                net, inside = got
                ban = Ban(next_id, net, max(b.level for b in inside), max(b.expires for b in inside), t_now, "rule",
                          "full-policy", None, None, f"aggregated {len(inside)} bans: the IPv{version} set was "
                          f"nearly full")
                next_id += 1
                room.active.add(ban)
                plan.superseded.extend(_unplanned(plan, inside))
                plan.new.append(ban)
                plan.entries.append(Entry(net, min(cfg.kernel_timeout_max, max(1, math.ceil(ban.expires - t_now)))))
                plan.made_room.append(f"aggregated {len(inside)} bans into {net.text}")
                freed += len(inside) - 1
                continue
        victim = room.evict(version)
        if victim is None:
            break
        plan.evicted.extend(_unplanned(plan, [victim]))
        plan.made_room.append(f"evicted ban #{victim.id} on {victim.net.text} (level {victim.level})")
        freed += 1
    plan.next_id = max(plan.next_id, next_id)
    return freed


def _unplanned(plan: Plan, ended: list[Ban]) -> list[Ban]:
    """Of bans ended while making room, those made earlier in this round are taken out of it (neither written
    nor put in the kernel); the others are returned, to end in the store and the kernel."""
    fresh = {id(b) for b in plan.new}
    gone = {b.net for b in ended if id(b) in fresh}
    if gone:
        plan.new[:] = [b for b in plan.new if b.net not in gone]
        plan.entries[:] = [e for e in plan.entries if e.net not in gone]
        texts = {n.text for n in gone}
        for aid, text in plan.out.items():  # rare (a set filled within one round): their results say so
            if is_new_ban(text) and text.removeprefix("would ban ").removeprefix("banned ").split(" ", 1)[0] in texts:
                plan.out[aid] = "not banned after all: " + text + " (the set was nearly full: made room for later bans)"
    return [b for b in ended if id(b) not in fresh]


@dataclass
class ReconcilePlan:
    """What makes the kernel hold exactly the active bans: entries to add (missing, or renewed) and to remove."""

    add: list[Entry]
    remove: list[Target]
    added: int
    renewed: int


def plan_reconcile(active: BanIndex, kernel: Mapping[Target, float | None], t_now: float,
                   margin: float, timeouts: bool, kernel_max: int) -> ReconcilePlan:
    """`kernel`: what the kernel holds, network -> seconds to its timeout; `margin`: the seconds an element
    must outlast (the next reconciles); `timeouts`: the backend's elements expire by themselves."""
    add: list[Entry] = []
    added = renewed = 0
    for net, ban in active.items():
        left_ban = ban.expires - t_now
        if net in kernel:
            if not timeouts:
                continue
            k = kernel[net]
            if k is not None and (k >= left_ban - 2 or k >= margin) and k <= left_ban + 5:
                continue
            renewed += 1
        else:
            added += 1
        whole = int(left_ban)  # the kernel timeout: the ban's time left, rounded up, capped
        add.append(Entry(net, kernel_max if whole >= kernel_max else (whole + (whole < left_ban) or 1)))
    remove = [n for n, left in kernel.items() if n not in active and (left is None or left > LAPSE_SECONDS)]
    return ReconcilePlan(add, remove, added, renewed)
