"""What may be banned: strict parsing of addresses and networks, and the allowlist that always wins.

A `Target` is an address or network in canonical form: (version, integer value, prefix length, text). Every
target comes from `parse_target`, and every address in a firewall command is a target's `text`, so what reaches
a command is the parser's canonical output, never the input string.

Parsing: the input must consist of address characters only (so an IPv6 zone id, spaces, quotes, newlines or shell
metacharacters are refused outright; `ipaddress` itself would accept "fe80::1%<anything>"). A plain dotted-quad
IPv4 address is validated by the C library's `inet_pton` (four decimal octets, no leading zeros: the same
verdicts as `ipaddress`, which tests check, for far less; figures: benchmarks/RESULTS.md, "IPv4 addresses
validated by `inet_pton`"); everything else by `ipaddress`.
IPv4-mapped IPv6 folds to IPv4. Networks must have no host bits set and may not be broader than `MIN_PREFIX`.
"""

from __future__ import annotations

import bisect
import ipaddress
import json
import re
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from fraudwatch.netaddr import IPNetwork

_ADDRESS_CHARS = re.compile(r"^[0-9A-Fa-f:.]{2,45}(/[0-9]{1,3})?$")
_DOTTED_QUAD = re.compile(r"^[0-9.]{7,15}$")
_RENDERED = re.compile(r"^[0-9a-f:.]{2,45}(/[0-9]{1,3})?$")
# Networks broader than these are never banned: a typo must not cut the host off from the internet.
MIN_PREFIX = {4: 16, 6: 32}
_BITS = {4: 32, 6: 128}

SPECIAL = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "255.255.255.255/32",
    "::/128", "::1/128", "fe80::/10", "ff00::/8",
))


class TargetError(ValueError):
    """The text is not a bannable address or network; str() says why."""


class Target(NamedTuple):
    """An address (prefixlen 32/128) or network, canonical. Cheap to build and hash: 100k in a batch."""

    version: int
    value: int  # the network address as an integer
    prefixlen: int
    text: str  # canonical: "192.0.2.7", "198.51.100.0/24", "2001:db8:1:2::/64"

    @property
    def is_host(self) -> bool:
        return self.prefixlen == _BITS[self.version]

    @property
    def last(self) -> int:
        return self.value | ((1 << (_BITS[self.version] - self.prefixlen)) - 1)

    def within(self, other: Target) -> bool:
        """True when self lies inside other (or is other)."""
        return (self.version == other.version and other.prefixlen <= self.prefixlen
                and other.value <= self.value <= other.last)

    @property
    def net(self) -> IPNetwork:
        return ipaddress.ip_network((self.value, self.prefixlen)) if self.version == 4 else \
            ipaddress.IPv6Network((self.value, self.prefixlen))

    def __str__(self) -> str:
        return self.text


def target_of(net: IPNetwork) -> Target:
    text = str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)
    return Target(net.version, int(net.network_address), net.prefixlen, text)


def parse_target(text: str, ipv6_prefix: int = 128, allow_network: bool = True) -> Target:
    """The target to ban for `text` (an address or, when `allow_network`, a CIDR network).

    IPv4-mapped IPv6 folds to IPv4; an IPv6 address widens to its /`ipv6_prefix`; host bits of a network must be
    zero (198.51.100.7/24 is refused: say 198.51.100.0/24).
    """
    if not isinstance(text, str):
        raise TargetError(f"{_shown(text)} is not an IP address or network")
    if _DOTTED_QUAD.match(text):  # the common case, fast: a plain IPv4 address
        try:
            return Target(4, int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big"), 32, text)
        except OSError:
            raise TargetError(f"{_shown(text)} is not an IP address or network") from None
    if not _ADDRESS_CHARS.match(text):
        raise TargetError(f"{_shown(text)} is not an IP address or network")
    if "/" not in text and "." not in text and (ipv6_prefix == 128 or not allow_network):
        fast = _v6_host(text, ipv6_prefix)
        if fast is not None:
            return fast
    addr_text, _, plen_text = text.partition("/")
    try:
        addr = ipaddress.ip_address(addr_text)
    except ValueError:
        raise TargetError(f"{_shown(text)} is not an IP address or network") from None
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.scope_id is not None:  # unreachable given _ADDRESS_CHARS, kept as a second lock
            raise TargetError(f"{_shown(text)}: zone ids are not accepted")
        if addr.ipv4_mapped is not None:
            if plen_text:
                raise TargetError(f"{_shown(text)}: IPv4-mapped networks are not accepted; use the IPv4 form")
            addr = addr.ipv4_mapped
    if plen_text:
        if not allow_network:
            raise TargetError(f"{_shown(text)}: a single address is expected here")
        try:
            net: IPNetwork = ipaddress.ip_network(f"{addr}/{int(plen_text)}", strict=True)
        except ValueError as exc:
            raise TargetError(f"{_shown(text)} is not a network ({exc})") from None
    elif addr.version == 6 and ipv6_prefix < 128:
        net = ipaddress.IPv6Network((int(addr), 128)).supernet(new_prefix=ipv6_prefix)
    else:
        return Target(addr.version, int(addr), _BITS[addr.version], str(addr))
    if net.prefixlen < MIN_PREFIX[net.version]:
        raise TargetError(f"{net} is too broad to ban (at most /{MIN_PREFIX[net.version]} for IPv{net.version})")
    return target_of(net)


def _v6_host(text: str, prefix: int) -> Target | None:
    """A plain IPv6 address (no embedded IPv4) through inet_pton/inet_ntop, which print RFC 5952 text as
    `ipaddress` does; None (use `ipaddress`) for anything unusual, including text inet_ntop writes with dots."""
    try:
        value = int.from_bytes(socket.inet_pton(socket.AF_INET6, text), "big")
    except OSError:
        return None
    if value >> 32 == 0xFFFF or value >> 32 == 0:  # IPv4-mapped or -compatible: the careful path
        return None
    if prefix < 128:
        value &= ~((1 << (128 - prefix)) - 1)
    canonical = socket.inet_ntop(socket.AF_INET6, value.to_bytes(16, "big"))
    if "." in canonical:
        return None
    if prefix < 128:
        return Target(6, value, prefix, f"{canonical}/{prefix}")
    return Target(6, value, 128, canonical)


def render(t: Target) -> str:
    """The target's text for a command, checked once more against the only characters it can have."""
    if not _RENDERED.match(t.text):  # cannot happen for parsed targets; refuse rather than emit
        raise TargetError(f"refusing to render {t.text!r}")
    return t.text


def _shown(text: object) -> str:
    """The refused input, quoted and cut, safe for one log line."""
    return json.dumps(str(text)[:80], ensure_ascii=True)


@dataclass(frozen=True)
class _Range:
    start: int
    end: int
    why: str


class Allowlist:
    """Networks that are never banned, with why; `refusal(target)` names one a ban would touch."""

    def __init__(self, entries: Iterable[tuple[IPNetwork, str]]) -> None:
        ranges: dict[int, list[_Range]] = {4: [], 6: []}
        for net, why in entries:
            ranges[net.version].append(_Range(int(net.network_address), int(net.broadcast_address), why))
        self._ranges = {v: sorted(r, key=lambda x: (x.start, -x.end)) for v, r in ranges.items()}
        self._starts = {v: [r.start for r in rs] for v, rs in self._ranges.items()}
        # the furthest end among ranges up to i: one bisect tells whether any range can touch a target
        self._max_end: dict[int, list[int]] = {}
        for v, rs in self._ranges.items():
            best, ends = -1, []
            for r in rs:
                best = max(best, r.end)
                ends.append(best)
            self._max_end[v] = ends

    @classmethod
    def build(cls, trusted: Sequence[IPNetwork], allow: Sequence[IPNetwork],
              host_addresses: Sequence[IPNetwork] = ()) -> Allowlist:
        entries: list[tuple[IPNetwork, str]] = [(n, f"special-purpose network {n}") for n in SPECIAL]
        entries += [(n, f"trusted network {n}") for n in trusted]
        entries += [(n, f"allowlisted network {n} ([firewall] allow)") for n in allow]
        entries += [(n, f"this host's own address {n.network_address}") for n in host_addresses]
        return cls(entries)

    def refusal(self, t: Target) -> str | None:
        """Why `t` must not be banned (it overlaps an allowlisted network), or None."""
        version, start, plen = t[0], t[1], t[2]
        end = start if plen == _BITS[version] else t.last
        i = bisect.bisect_right(self._starts[version], end) - 1  # ranges starting at or before our end
        if i < 0 or self._max_end[version][i] < start:
            return None
        ranges = self._ranges[version]
        for j in range(i, -1, -1):
            if ranges[j].end >= start:
                return ranges[j].why
        return None
