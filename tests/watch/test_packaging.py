"""The shipped systemd unit and the example VOS3000 config: valid, least privilege, and what the README says."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from fraudwatch.config import parse_config
from tests.conftest import ROOT

UNIT = ROOT / "packaging" / "fraudwatch.service"
EXAMPLE = ROOT / "packaging" / "fraudwatch.vos3000.toml"


def test_example_config_parses_with_vos3000_paths() -> None:
    cfg = parse_config(EXAMPLE, EXAMPLE.read_text(encoding="utf-8"))
    paths = [str(s.path) for s in cfg.sources]
    assert all(p.startswith(("/home/kunshi/mbx3000/", "/var/log/", "/var/lib/fraudwatch/")) for p in paths)
    assert {s.format for s in cfg.sources} >= {"vos3000-sipproxy", "vos3000-mbx", "vos3000-cdr", "linux-netfilter"}
    assert str(cfg.store_path).startswith("/var/lib/fraudwatch/")
    assert cfg.watch.metrics.startswith("127.0.0.1:")


def test_unit_runs_unprivileged_with_only_net_admin() -> None:
    text = UNIT.read_text(encoding="utf-8")
    directives = dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))
    assert directives["User"] == "fraudwatch"
    assert directives["CapabilityBoundingSet"] == "CAP_NET_ADMIN"
    assert directives["AmbientCapabilities"] == "CAP_NET_ADMIN"
    assert directives["NoNewPrivileges"] == "yes" and directives["ProtectSystem"] == "strict"
    assert directives["ExecReload"] == "/bin/kill -HUP $MAINPID" and directives["KillSignal"] == "SIGTERM"
    assert " watch" in directives["ExecStart"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_unit_verifies(tmp_path: Path) -> None:
    unit = tmp_path / "fraudwatch.service"
    unit.write_text(UNIT.read_text(encoding="utf-8").replace("/opt/fraudwatch/.venv/bin/fraudwatch", "/bin/true"),
                    encoding="utf-8")
    got = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert got.returncode == 0, got.stderr


def _settings(text: str) -> dict[str, list[str]]:
    """Each directive of the unit with all its values (SystemCallFilter= may be given more than once)."""
    got: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            got.setdefault(key.strip(), []).append(value.strip())
    return got


def test_unit_is_hardened_and_adds_no_group() -> None:
    s = _settings(UNIT.read_text(encoding="utf-8"))
    assert "SupplementaryGroups" not in s  # adm would open all of /var/log; docs/watcher.md says how to read kern.log
    assert s["CapabilityBoundingSet"] == s["AmbientCapabilities"] == ["CAP_NET_ADMIN"]
    for key, value in {"ProtectProc": "invisible", "ProcSubset": "pid", "PrivateMounts": "yes", "RemoveIPC": "yes",
                       "PrivateIPC": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes", "NoNewPrivileges": "yes",
                       "ProtectSystem": "strict", "RestrictNamespaces": "yes", "LockPersonality": "yes",
                       "SystemCallArchitectures": "native", "SystemCallErrorNumber": "EPERM", "UMask": "0027"}.items():
        assert s.get(key) == [value], key
    assert s["SystemCallFilter"] == ["@system-service", "~@privileged @resources"]
    assert s["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6 AF_NETLINK"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_unit_security_exposure_is_at_most_2(tmp_path: Path) -> None:
    """`systemd-analyze security --offline=true`: 3.6 before this unit was hardened, 1.7 after (systemd 252)."""
    unit = tmp_path / "fraudwatch.service"
    unit.write_text(UNIT.read_text(encoding="utf-8").replace("/opt/fraudwatch/.venv/bin/fraudwatch", "/bin/true"),
                    encoding="utf-8")
    got = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)],
                         capture_output=True, text=True, timeout=60)
    level = [line for line in got.stdout.splitlines() if "Overall exposure level" in line]
    assert len(level) == 1, got.stdout + got.stderr
    score = float(level[0].split(":")[-1].split()[0])
    assert score <= 2.0, level[0]
