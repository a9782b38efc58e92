"""The Asterisk log writer of benchmarks/vs_fail2ban.py: deterministic, the promised failure share, and every line
read by the asterisk format as its kind says (a failure as a failure, ordinary traffic as no failure)."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

from fraudwatch.formats.registry import load_formats
from fraudwatch.formats.spec import LineFormat
from fraudwatch.formats.trial import trial
from fraudwatch.sim.asterisk import FAILURE_KINDS, write_asterisk_log

LINES = 4000
REF = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
FAILURE_EVENTS = {"auth_failure", "invalid_user", "acl_reject"}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    a = write_asterisk_log(tmp_path / "a.log", LINES, seed=7)
    b = write_asterisk_log(tmp_path / "b.log", LINES, seed=7)
    c = write_asterisk_log(tmp_path / "c.log", LINES, seed=8)
    assert a == b and _digest(tmp_path / "a.log") == _digest(tmp_path / "b.log")
    assert _digest(tmp_path / "a.log") != _digest(tmp_path / "c.log")
    assert a != c


def test_failure_share_and_line_count(tmp_path: Path) -> None:
    path = tmp_path / "asterisk.log"
    counts = write_asterisk_log(path, LINES, seed=1)
    assert sum(counts.values()) == LINES
    assert path.read_text(encoding="utf-8").count("\n") == LINES
    share = sum(n for kind, n in counts.items() if kind in FAILURE_KINDS) / LINES
    assert 0.085 <= share <= 0.115, share  # 10% +- 3 standard deviations at 4000 lines
    assert all(counts.values()), f"kinds never written: {[k for k, n in counts.items() if not n]}"
    other = write_asterisk_log(tmp_path / "quarter.log", LINES, seed=1, failure_share=0.25)
    assert 0.22 <= sum(n for kind, n in other.items() if kind in FAILURE_KINDS) / LINES <= 0.28


def test_every_line_read_as_its_kind(tmp_path: Path) -> None:
    """fraudwatch's count of failures is the writer's: every failure parsed as one (the unknown-extension calls as
    requests that say so), nothing rejected, no ordinary line taken for a failure."""
    path = tmp_path / "asterisk.log"
    counts = write_asterisk_log(path, 2000, seed=3)
    fmt = load_formats()["asterisk"]
    assert isinstance(fmt, LineFormat)
    results = trial(fmt, path.read_text(encoding="utf-8").splitlines(), ref_time=REF)
    assert not [r for r in results if r.reason is not None]
    failures = [r for r in results if r.matched and r.fields.get("event") in FAILURE_EVENTS]
    noexten = [r for r in results if r.matched and r.pattern == "unknown-extension"]
    assert len(failures) == sum(n for kind, n in counts.items() if kind in FAILURE_KINDS - {"noexten"})
    assert len(noexten) == counts["noexten"]
    assert all(str(r.fields["src_ip"]).startswith(("203.0.113.", "192.0.2.")) for r in failures + noexten)
