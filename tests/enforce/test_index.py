"""The active-ban index: covering and inside lookups across prefix lengths, and the store's loader."""

from __future__ import annotations

from pathlib import Path

from fraudwatch.enforce import state
from fraudwatch.enforce.index import BanIndex
from fraudwatch.enforce.state import Ban
from fraudwatch.enforce.targets import parse_target
from tests.enforce.helpers import T0, store_con


def ban(i: int, text: str) -> Ban:
    return Ban(i, parse_target(text), 1, 2e9)


def test_covering_and_inside() -> None:
    bans = [ban(1, "192.0.2.7"), ban(2, "198.51.100.0/24"), ban(3, "2001:db8:1:2::/64"), ban(4, "2001:db8:1:2::9"),
            ban(5, "203.0.113.0/28"), ban(6, "203.0.113.64/26")]
    for index in (BanIndex.of(bans), _added(bans)):
        assert index.covering(parse_target("192.0.2.7")) is bans[0]
        assert index.covering(parse_target("192.0.2.8")) is None
        assert index.covering(parse_target("198.51.100.200")) is bans[1]
        assert index.covering(parse_target("198.51.100.0/25")) is bans[1]
        assert index.covering(parse_target("2001:db8:1:2::abcd")) is bans[2]
        assert index.covering(parse_target("2001:db8:1:3::1")) is None
        assert index.covering(parse_target("203.0.113.70")) is bans[5]
        assert index.covering(parse_target("203.0.113.20")) is None
        assert index.inside(parse_target("2001:db8:1::/48")) == [bans[3], bans[2]]
        assert sorted(b.id for b in index.inside(parse_target("203.0.113.0/24"))) == [5, 6]
        assert index.inside(parse_target("192.0.2.0/24")) == [bans[0]]
        assert index.count(4) == 4 and index.count(6) == 2 and len(index) == 6
    index = BanIndex.of(bans)
    index.discard(bans[1])
    assert index.covering(parse_target("198.51.100.200")) is None and (4, 24) not in index.nets


def _added(bans: list[Ban]) -> BanIndex:
    index = BanIndex()
    for b in bans:
        index.add(b)
    return index


def test_store_loader_skips_rows_it_did_not_write(tmp_path: Path) -> None:
    con = store_con(tmp_path / "s.duckdb")
    state.insert(con, [Ban(1, parse_target("192.0.2.1"), 1, T0.timestamp() + 60, T0.timestamp()),
                       Ban(2, parse_target("2001:db8::/64"), 1, T0.timestamp() + 60, T0.timestamp())], "dry-run")
    con.execute("INSERT INTO bans (id, network, expires_at, level) VALUES (3, '192.0.2.2; reboot', ?, 1), "
                "(4, '192.0.2.010', ?, 1)", [T0.replace(year=2027), T0.replace(year=2027)])
    assert [b.net.text for b in state.active(con, T0)] == ["192.0.2.1", "2001:db8::/64"]
