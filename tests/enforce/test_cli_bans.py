"""`fraudwatch bans list|add|remove|flush|sync` in-process, with the dry-run backend."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Run


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    path = tmp_path / "fraudwatch.toml"
    path.write_text('[store]\npath = "store.duckdb"\n[trusted]\nnetworks = ["198.51.100.0/24"]\n'
                    '[firewall]\nbackend = "dry-run"\nttl_manual = "2h"\nallow = ["192.0.2.250"]\n'
                    'allow_host_addresses = false\n')
    return path


def _says_banned(text: str) -> bool:
    """Whether `text` claims a ban was made ("banned", "unbanned", "extended"), not "not banned" or "would ban"."""
    return re.search(r"(?<!not )\b(un)?banned\b|\bextended\b", text) is not None


def test_add_list_remove_flush_sync(cli: Callable[..., Run], conf: Path) -> None:
    """With the dry-run backend every answer says "would ban ... (dry run)", never "banned"."""
    r = cli("bans", "add", "203.0.113.7", "--ttl", "1h", "--reason", "scanner", "--config", conf)
    assert r.code == 0 and r.out.startswith("would ban 203.0.113.7 until ") and "(ban #1) (dry run)" in r.out, r
    outputs = [r.out]
    r = cli("--config", conf, "bans", "add", "2001:db8::/48")
    assert r.code == 0 and "would ban 2001:db8::/48" in r.out
    outputs.append(r.out)
    r = cli("--config", conf, "bans", "add", "203.0.113.7", "--ttl", "60")
    assert r.code == 0 and r.out.startswith("already a dry-run ban: 203.0.113.7")
    outputs.append(r.out)
    r = cli("--config", conf, "bans", "add", "203.0.113.7", "--ttl", "86400")
    assert r.code == 0 and r.out.startswith("would extend ban #1 on 203.0.113.7 until ") and "(dry run)" in r.out
    outputs.append(r.out)
    r = cli("--config", conf, "bans", "list", "--json")
    rows = json.loads(r.out)
    assert [(b["network"], b["source"], b["reason"]) for b in rows] == [
        ("2001:db8::/48", "cli", "manual ban"), ("203.0.113.7", "cli", "scanner")]
    r = cli("--config", conf, "bans", "list")
    assert r.code == 0 and "203.0.113.7" in r.out and "2 dry-run ban(s) active (dry run: would ban" in r.out
    outputs.append(r.out)
    r = cli("--config", conf, "bans", "remove", "203.0.113.7")
    assert r.code == 0 and r.out.strip() == "ended dry-run ban #1 on 203.0.113.7 (dry run: no firewall held it)"
    outputs.append(r.out)
    r = cli("--config", conf, "bans", "remove", "203.0.113.7")
    assert r.code == 1 and r.err.strip() == "fraudwatch: 203.0.113.7 is not banned"
    r = cli("--config", conf, "bans", "sync")
    assert r.code == 0 and "1 active" in r.out and r.out.startswith("dry run: no firewall to reconcile")
    outputs.append(r.out)
    r = cli("--config", conf, "bans", "sync", "--json")
    assert json.loads(r.out)["active"] == 1
    r = cli("--config", conf, "bans", "flush")
    assert r.code == 2 and "--yes" in r.err
    r = cli("--config", conf, "bans", "flush", "--yes")
    assert r.code == 0 and r.out.startswith("ended 1 dry-run ban(s) (dry run")
    outputs.append(r.out)
    r = cli("--config", conf, "bans", "list", "--all", "--json")
    assert [(b["network"], b["removed_reason"], b["active"]) for b in json.loads(r.out)] == [
        ("2001:db8::/48", "flush", False), ("203.0.113.7", "cli", False)]
    claims = [o for o in outputs if _says_banned(o)]
    assert not claims, claims


@pytest.mark.parametrize(("target", "message"), [
    ("198.51.100.9", "fraudwatch: not banned: 198.51.100.9 is allowlisted (trusted network 198.51.100.0/24)"),
    ("198.51.100.0/25", "fraudwatch: not banned: 198.51.100.0/25 overlaps the allowlist (trusted network "
                        "198.51.100.0/24)"),
    ("192.0.2.250", "fraudwatch: not banned: 192.0.2.250 is allowlisted (allowlisted network 192.0.2.250/32 "
                    "([firewall] allow))"),
    ("127.0.0.1", "fraudwatch: not banned: 127.0.0.1 is allowlisted (special-purpose network 127.0.0.0/8)"),
    ("1.2.3.4;reboot", 'fraudwatch: not banned: "1.2.3.4;reboot" is not an IP address or network'),
])
def test_refused_with_one_line_and_exit_6(cli: Callable[..., Run], conf: Path, target: str, message: str) -> None:
    r = cli("--config", conf, "bans", "add", target)
    assert r.code == 6
    assert r.err.strip() == message
    assert json.loads(cli("--config", conf, "bans", "list", "--json").out) == []


def test_usage_errors(cli: Callable[..., Run], conf: Path) -> None:
    r = cli("--config", conf, "bans", "add", "192.0.2.1", "--ttl", "forever")
    assert r.code == 2 and "--ttl" in r.err
    r = cli("--config", conf, "bans")
    assert r.code == 2 and "list, add, remove, flush or sync" in r.err


def test_bad_firewall_config_names_file_and_line(cli: Callable[..., Run], tmp_path: Path) -> None:
    path = tmp_path / "fw.toml"
    path.write_text('[firewall]\nbackend = "nftables"\nttl_critical = "1 fortnight"\n')
    r = cli("--config", path, "bans", "list")
    assert r.code == 2
    assert r.err.startswith(f"fraudwatch: {path}:3: 'ttl_critical' must be a positive duration")
