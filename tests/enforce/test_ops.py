"""The bans operations the running watcher serves over its control socket (same code as the CLI's local path)."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path
from types import SimpleNamespace

from fraudwatch.enforce import Enforcer, FirewallConfig, ops
from fraudwatch.watch.ops import OPS
from tests.enforce.helpers import T0, store_con


def test_operations_are_registered_and_run_on_the_watchers_enforcer(tmp_path: Path) -> None:
    assert set(ops.NAMES) <= set(OPS)
    e = Enforcer(store_con(tmp_path / "s.duckdb"), FirewallConfig(), [ipaddress.ip_network("198.51.100.0/24")],
                 host_addresses=[])
    watcher = SimpleNamespace(enforcer=e)
    r = OPS[ops.ADD](watcher, {"target": "203.0.113.5", "ttl": 600, "reason": "test"})  # type: ignore[arg-type]
    assert r["ok"] and r["message"].startswith("would ban 203.0.113.5 until ")
    r = OPS[ops.ADD](watcher, {"target": "198.51.100.5"})  # type: ignore[arg-type]
    assert r == {"ok": False, "exit_code": 6, "backend": "dry-run", "dry_run": True,
                 "error": "not banned: 198.51.100.5 is allowlisted (trusted network 198.51.100.0/24)"}
    r = OPS[ops.LIST](watcher, {})  # type: ignore[arg-type]
    assert [row["network"] for row in r["rows"]] == ["203.0.113.5"]
    assert isinstance(r["rows"][0]["expires_at"], str)
    assert OPS[ops.SYNC](watcher, {})["ok"]  # type: ignore[arg-type]
    assert OPS[ops.REMOVE](watcher, {"target": "203.0.113.5"})["message"] == ("ended dry-run ban #1 on "
                                                                                    "203.0.113.5 (dry run: no "
                                                                                    "firewall held it)")  # type: ignore[arg-type]
    assert OPS[ops.REMOVE](watcher, {"target": "203.0.113.5"})["exit_code"] == 1  # type: ignore[arg-type]
    assert OPS[ops.FLUSH](watcher, {})["count"] == 0  # type: ignore[arg-type]
    assert OPS[ops.ADD](SimpleNamespace(enforcer=None), {"target": "203.0.113.5"})["exit_code"] == 5  # type: ignore[arg-type]


def test_apply_with_a_fixed_time(tmp_path: Path) -> None:
    e = Enforcer(store_con(tmp_path / "s.duckdb"), FirewallConfig(), [], host_addresses=[])
    r = ops.apply(e, ops.ADD, {"target": "2001:db8::/48", "ttl": 3600}, now=T0)
    assert r["message"] == "would ban 2001:db8::/48 until 2026-11-26 13:00 UTC (ban #1) (dry run)"
    assert ops.apply(e, "bans.nope", {}, now=T0)["exit_code"] == 2
    assert ops.apply(e, ops.LIST, {"all": True}, now=T0 + dt.timedelta(hours=2))["rows"][0]["active"] is False


def test_bans_add_refuses_a_ttl_out_of_range_and_the_tick_goes_on(tmp_path: Path) -> None:
    """Over the socket `ttl` is whatever JSON the client sent: -100 and 1e300 were accepted, and 1e300 then broke
    the enforcer's tick (a datetime cannot hold it). Each is refused in one line, and nothing is banned."""
    e = Enforcer(store_con(tmp_path / "s.duckdb"), FirewallConfig(), [], host_addresses=[])
    for bad in (-100, 0, 1e300, float("nan"), 1.5, "3600", True, [1]):
        r = ops.apply(e, ops.ADD, {"target": "203.0.113.5", "ttl": bad}, now=T0)
        assert r["ok"] is False and r["exit_code"] == 6, (bad, r)
        assert r["error"].startswith("not banned: ttl must be"), r["error"]
        assert "\n" not in r["error"]
    assert ops.apply(e, ops.LIST, {}, now=T0)["rows"] == []
    e.tick(T0 + dt.timedelta(seconds=1))
    e.tick(T0 + dt.timedelta(hours=1))
    r = ops.apply(e, ops.ADD, {"target": "203.0.113.5", "ttl": 3600.0}, now=T0)
    assert r["message"] == "would ban 203.0.113.5 until 2026-11-26 13:00 UTC (ban #1) (dry run)"
