"""Canonical IPs: what may reach the store, a trust check or a firewall command."""

from __future__ import annotations

import ipaddress
import random
import re

import pytest

from fraudwatch.netaddr import canonical_ip, parse_networks


@pytest.mark.parametrize(("text", "want"), [
    ("192.0.2.1", "192.0.2.1"),
    ("[2001:db8::1]", "2001:db8::1"),
    ("2001:0db8:0000::0001", "2001:db8::1"),
    ("::ffff:198.51.100.7", "198.51.100.7"),  # IPv4-mapped folds to IPv4
    ("fe80::1", "fe80::1"),
])
def test_canonical_forms(text: str, want: str) -> None:
    assert canonical_ip(text) == want


@pytest.mark.parametrize("text", [
    "", "192.0.2.256", "192.0.2.01", "1.2.3", "192.0.2.1; rm -rf /", "fe80::1%eth0", "2001:db8::1%$(reboot)",
    "2001:db8::1%\nadd rule", "[192.0.2.1", "a" * 100, "192.0.2.1/24", " 192.0.2.1",
])
def test_not_addresses(text: str) -> None:
    assert canonical_ip(text) is None


def test_networks_name_the_bad_item() -> None:
    assert [str(n) for n in parse_networks(["203.0.113.0/24", "198.51.100.7"])] == ["203.0.113.0/24",
                                                                                  "198.51.100.7/32"]
    with pytest.raises(ValueError, match=r"'10\.0\.0\.0/33' is not an IP address or network"):
        parse_networks(["10.0.0.0/33"])


def test_canonical_ip_array_is_canonical_ip_value_by_value_nulls_and_chunks_included() -> None:
    """DuckDB's `fw_ip`: the same answers as `canonical_ip`, in order, over chunked arrays with nulls."""
    import pyarrow as pa

    from fraudwatch.netaddr import canonical_ip_array

    texts = ["2001:DB8::0:1", None, "::ffff:192.0.2.7", "fe80::1%eth0", "010.0.0.1", "[2001:db8::2]", "", "x" * 80,
             "2001:DB8::0:1"]
    got = canonical_ip_array(pa.chunked_array([texts[:4], texts[4:]], type=pa.string()))
    assert got.type == pa.string()
    assert got.to_pylist() == [None if t is None else canonical_ip(t) for t in texts]
    assert got.to_pylist()[:3] == ["2001:db8::1", None, "192.0.2.7"]


def _spellings(rng: random.Random, n: int) -> list[str]:
    """IPv6 addresses with many zero hextets, each written several ways: as `ipaddress` prints it, exploded, in
    upper case, uncompressed, and with some run of zeros (not always the longest) as '::'; some IPv4-mapped."""
    out: list[str] = []
    for _ in range(n):
        hextets = [0 if rng.random() < 0.35 else rng.choice([rng.randrange(1, 16), rng.randrange(1, 1 << 16), 0xffff])
                   for _ in range(8)]
        if rng.random() < 0.1:
            hextets[:6] = [0, 0, 0, 0, 0, 0xffff]
        addr = ipaddress.IPv6Address(int("".join(f"{h:04x}" for h in hextets), 16))
        plain = [f"{h:x}" for h in hextets]
        out += [addr.compressed, addr.exploded, addr.compressed.upper(), ":".join(plain)]
        zeros = [i for i, h in enumerate(hextets) if h == 0]
        if zeros:
            i = j = rng.choice(zeros)
            while j + 1 < 8 and hextets[j + 1] == 0 and rng.random() < 0.8:
                j += 1
            out.append(":".join(plain[:i]) + "::" + ":".join(plain[j + 1:]))
    return out


def test_the_sql_passes_as_they_are_only_addresses_canonical_ip_leaves_unchanged() -> None:
    """The parse's `ip_expr` spares `fw_ip` (a Python call) IPv4 and IPv6 text already in canonical form. Over
    addresses in many spellings, what its IPv6 check lets through is what `canonical_ip` returns unchanged, and
    the SQL gives `canonical_ip`'s answer for every text."""
    import duckdb
    import pyarrow as pa

    from fraudwatch.formats.compile import IPV6_AS_PRINTED, ip_expr
    from fraudwatch.formats.engine import prepare_connection

    texts = [*_spellings(random.Random(5), 4000), "::", "::1", "1::", "1:2:3:4:5:6::8", "::ffff:1:2", "::ffff:c000:207",
             "fe80::1%eth0", "2001:db8::1]", "192.0.2.1", "192.0.2.01", "", "2001:db8::g"]
    passed = [t for t in texts if re.fullmatch(IPV6_AS_PRINTED, t) and not t.startswith("::ffff:")]
    assert len(passed) > 500
    assert [t for t in passed if canonical_ip(t) != t] == []
    con = duckdb.connect()
    prepare_connection(con)
    con.register("texts", pa.table({"x": pa.array(texts, pa.string())}))
    got = [row[0] for row in con.sql(f"SELECT {ip_expr('x')} FROM texts").fetchall()]
    assert got == [canonical_ip(t) for t in texts]
