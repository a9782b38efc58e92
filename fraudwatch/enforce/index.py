"""The enforcer's in-memory view of the active bans, indexed for the two questions a new ban asks:
is this target already covered by a ban (itself or a network holding it), and which bans lie inside a network.

Both answers cost a few dictionary lookups per distinct network prefix length, not a scan of the bans: a botnet
round brings 100k targets, and with IPv6 /64 aggregation every IPv6 ban is a network.
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterator, ValuesView

from fraudwatch.enforce.state import Ban
from fraudwatch.enforce.targets import Target

BITS = {4: 32, 6: 128}


class BanIndex:
    def __init__(self) -> None:
        self.by_target: dict[Target, Ban] = {}
        self.hosts: dict[int, dict[int, Ban]] = {4: {}, 6: {}}  # version -> address value -> ban
        self.nets: dict[tuple[int, int], dict[int, Ban]] = {}  # (version, prefixlen) -> network value -> ban

    @classmethod
    def of(cls, bans: list[Ban]) -> BanIndex:
        """An index of `bans`, built in bulk (a restore loads 100k)."""
        index = cls()
        index.by_target = {b.net: b for b in bans}
        for version, bits in BITS.items():
            index.hosts[version] = {b.net.value: b for b in bans
                                    if b.net.version == version and b.net.prefixlen == bits}
        for b in bans:
            if b.net.prefixlen != BITS[b.net.version]:
                index.nets.setdefault((b.net.version, b.net.prefixlen), {})[b.net.value] = b
        return index

    def __len__(self) -> int:
        return len(self.by_target)

    def __contains__(self, t: object) -> bool:
        return t in self.by_target

    def __iter__(self) -> Iterator[Target]:
        return iter(self.by_target)

    def get(self, t: Target) -> Ban | None:
        return self.by_target.get(t)

    def items(self) -> ItemsView[Target, Ban]:
        return self.by_target.items()

    def values(self) -> ValuesView[Ban]:
        return self.by_target.values()

    def count(self, version: int) -> int:
        return len(self.hosts[version]) + sum(len(g) for (v, _), g in self.nets.items() if v == version)

    def add(self, ban: Ban) -> None:
        t = ban.net
        self.by_target[t] = ban
        if t.prefixlen == BITS[t.version]:
            self.hosts[t.version][t.value] = ban
        else:
            self.nets.setdefault((t.version, t.prefixlen), {})[t.value] = ban

    def discard(self, ban: Ban) -> None:
        t = ban.net
        if self.by_target.get(t) is not ban:
            return
        del self.by_target[t]
        if t.prefixlen == BITS[t.version]:
            self.hosts[t.version].pop(t.value, None)
        else:
            group = self.nets.get((t.version, t.prefixlen))
            if group is not None:
                group.pop(t.value, None)
                if not group:
                    del self.nets[(t.version, t.prefixlen)]

    def clear(self) -> None:
        self.by_target.clear()
        self.hosts = {4: {}, 6: {}}
        self.nets.clear()

    def covering(self, t: Target) -> Ban | None:
        """The active ban on `t` itself or on a network holding it."""
        ban = self.by_target.get(t)
        if ban is not None or not self.nets:
            return ban
        bits = BITS[t.version]
        for (version, plen), group in self.nets.items():
            if version == t.version and plen < t.prefixlen:
                ban = group.get(t.value & ~((1 << (bits - plen)) - 1))
                if ban is not None:
                    return ban
        return None

    def inside(self, t: Target) -> list[Ban]:
        """Active bans strictly inside network `t` (scans only the hosts and longer networks of its family)."""
        first, last = t.value, t.last
        out = [b for value, b in self.hosts[t.version].items() if first <= value <= last and b.net != t]
        for (version, plen), group in self.nets.items():
            if version == t.version and plen > t.prefixlen:
                out += [b for value, b in group.items() if first <= value <= last]
        return out
