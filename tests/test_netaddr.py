"""Canonical IPs: what may reach the store, a trust check or a firewall command."""

from __future__ import annotations

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
