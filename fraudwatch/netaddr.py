"""IP address validation and canonical form, shared by parsing, trust checks and (later) the firewall.

Canonical form is what `ipaddress` prints (`compressed`), with IPv4-mapped IPv6 (::ffff:a.b.c.d) folded to the
IPv4 address, since the kernel and the switch see the same host either way. Text that is not an address —
including IPv4 with leading zeros, which is ambiguous (octal in some parsers), and IPv6 with a zone id
(`fe80::1%eth0`: `ipaddress` keeps any text after the `%`, which must never reach a log, a store or a firewall
command) — has no canonical form.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable

import pyarrow as pa

from fraudwatch.arrays import strings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_ip(text: str) -> IPAddress | None:
    """The address `text` denotes, or None. Surrounding brackets ([2001:db8::1]) are accepted."""
    if not text or len(text) > 64:
        return None
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if "%" in text:  # a scope id: local to one host's interfaces, and free text to `ipaddress`
        return None
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


@functools.lru_cache(maxsize=1 << 16)
def canonical_ip(text: str) -> str | None:
    """Cached: a flood repeats the same few thousand addresses millions of times."""
    addr = parse_ip(text)
    return None if addr is None else addr.compressed


def canonical_ip_array(values: pa.Array) -> pa.Array:
    """`canonical_ip` over an Arrow array, for DuckDB's `fw_ip` function. DuckDB calls it per vector (a few
    hundred values: the lines whose address is not plain IPv4), so a list through `canonical_ip`'s cache is
    cheaper than Arrow's unique, index and take, even with `strings` (which keeps pandas out) building the result
    (figures: benchmarks/RESULTS.md, "`fw_ip` through `canonical_ip`'s cache")."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    return strings([None if v is None else canonical_ip(v) for v in values.to_pylist()])


def parse_networks(items: Iterable[str]) -> list[IPNetwork]:
    """Networks from config text ("203.0.113.0/24", "198.51.100.7"); raises ValueError naming the bad one."""
    out: list[IPNetwork] = []
    for item in items:
        try:
            net = ipaddress.ip_network(item.strip(), strict=False)
        except ValueError:
            raise ValueError(f"'{item}' is not an IP address or network") from None
        out.append(net)
    return out
