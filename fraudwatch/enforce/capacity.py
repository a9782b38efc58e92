"""Bounded ban sets: what a round does when a family's set is nearly full (`[firewall] full_policy`, `full_at`).

Every backend's set holds at most `maxelem` entries per family. Refusing new bans at the limit would let forged
addresses crowd out real attackers; so from `full_at` percent on, each new ban first makes room:

- `evict`: end the active ban with the lowest level that expires soonest (never a ban made by hand): the bans a
  flood of forged addresses adds are first-level ones, so a repeat offender's longer ban outlives them;
- `aggregate`: replace the host bans inside the /24 (IPv4) or /64 (IPv6) holding most of them by one network ban
  (at least two; never a network that holds an allowlisted address or a recent customer's); when none qualifies,
  evict as above.

Pure, like the planning that calls it: the index of active bans is changed in place, the bans ended are returned.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection

from fraudwatch.enforce.index import BITS, BanIndex
from fraudwatch.enforce.state import Ban
from fraudwatch.enforce.targets import Allowlist, Target, TargetError, parse_target

PREFIX = {4: 24, 6: 64}  # what `aggregate` bans instead of the hosts inside


def high_water(cap: int, full_at: int) -> int:
    """The count from which a family's set makes room before a new ban: `full_at` percent of `cap`, rounded up
    (the ended bans leave the kernel in the same batch as the new one goes in)."""
    return max(1, min(cap, -(-cap * full_at // 100)))


class Room:
    """Makes room in one round, per family: `evict` pops the next victim (sorted once per round and family)."""

    def __init__(self, active: BanIndex) -> None:
        self.active = active
        self._queues: dict[int, list[Ban]] = {}
        self._counts: dict[int, Counter[int]] = {}  # version -> network (value >> host bits) -> host bans in it
        self._shielded: dict[int, set[int]] = {}  # version -> networks never aggregated (customers, allowlist)

    def evict(self, version: int) -> Ban | None:
        queue = self._queues.get(version)
        if queue is None:
            queue = sorted((b for b in self.active.values() if b.net.version == version and b.source != "cli"),
                           key=lambda b: (-b.level, -b.expires, -b.id))  # the victim last: popped first
            self._queues[version] = queue
        while queue:
            ban = queue.pop()
            if self.active.get(ban.net) is ban:
                self.active.discard(ban)
                return ban
        return None

    def aggregate(self, version: int, allowlist: Allowlist,
                  protected: Collection[str]) -> tuple[Target, list[Ban]] | None:
        """The network holding most host bans of `version` (two or more) that may be banned, and those bans, taken
        out of the index; None when there is none. The bans per network are counted once per round and family
        (integer shifts: 100k bans in a few tens of milliseconds), then kept up to date as networks are taken."""
        shift = BITS[version] - PREFIX[version]
        counts = self._counts.get(version)
        if counts is None:
            counts = self._counts[version] = Counter(
                b.net.value >> shift for b in self.active.values()
                if b.net.version == version and b.net.is_host and b.source != "cli")
            self._shielded[version] = {t.value >> shift for t in _targets(protected) if t.version == version}
        shielded = self._shielded[version]
        for top, n in counts.most_common():
            if n < 2:
                return None
            if top in shielded:
                continue
            target = Target(version, top << shift, PREFIX[version], "")
            target = parse_target(f"{target.net}", allow_network=True)
            if allowlist.refusal(target) is not None:
                shielded.add(top)
                continue
            inside = self.active.inside(target)
            if any(b.source == "cli" for b in inside):
                shielded.add(top)  # a ban by hand inside: left as it is
                continue
            for b in inside:
                self.active.discard(b)
            del counts[top]
            return target, inside
        return None


def _targets(texts: Collection[str]) -> list[Target]:
    out = []
    for text in texts:
        try:
            out.append(parse_target(text))
        except TargetError:
            continue
    return out
