"""Files and folders fraudwatch creates are private (0640 / 0750 at most) even when started with umask 000: the
store, its write-ahead log, its segments, the read copy, the status file."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.test_ingest import sip_lines, write
from tests.watch.harness import WatcherProcess, sip_line, wait_until, write_config


@contextmanager
def umask(value: int) -> Iterator[None]:
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


def _loose(folder: Path, skip: set[Path]) -> list[str]:
    """Everything under `folder` (itself excluded) that others may read or the group may write."""
    return [f"{p} {stat.filemode(p.lstat().st_mode)}" for p in sorted(folder.rglob("*"))
            if p not in skip and not p.is_symlink() and p.lstat().st_mode & 0o027]


def test_ingest_with_umask_000_creates_private_files(tmp_path: Path) -> None:
    log = tmp_path / "in" / "sipproxy.log"
    log.parent.mkdir()
    write(log, sip_lines(2000))
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "fraudwatch", "--db", str(out / "db" / "s.duckdb"), "ingest",
                          "--quiet", "--format", "vos3000-sipproxy", str(log)],
                         capture_output=True, text=True, timeout=120, umask=0)
    assert run.returncode == 0, run.stderr
    made = sorted(p.relative_to(out) for p in out.rglob("*"))
    assert Path("db/s.duckdb") in made and any(p.suffix == ".parquet" for p in made), made
    assert _loose(out, set()) == []


def test_a_store_left_world_readable_is_tightened_at_open(tmp_path: Path) -> None:
    log = tmp_path / "sipproxy.log"
    write(log, sip_lines(40))
    db = tmp_path / "s.duckdb"
    argv = [sys.executable, "-m", "fraudwatch", "--db", str(db), "ingest", "--quiet", "--format", "vos3000-sipproxy"]
    assert subprocess.run([*argv, str(log)], capture_output=True, timeout=120).returncode == 0
    db.chmod(0o666)
    assert subprocess.run([*argv, str(log)], capture_output=True, timeout=120).returncode == 0
    assert stat.S_IMODE(db.stat().st_mode) == 0o640


def test_the_watcher_with_umask_000_creates_private_files(tmp_path: Path) -> None:
    home = tmp_path / "w"
    home.mkdir(mode=0o700)
    src = home / "sip.log"
    src.write_text("".join(sip_line(i) for i in range(50)), encoding="utf-8")
    cfg = write_config(home, [("sip.log", "vos3000-sipproxy")])
    with umask(0):
        w = WatcherProcess(cfg, home / "store.duckdb").start()
    try:
        assert wait_until(lambda: w.count("SELECT count(*) FROM sip_events") == 50, timeout=30)
        assert wait_until(lambda: (home / "store.duckdb.read").is_dir() and
                          any((home / "store.duckdb.read").glob("*.parquet")), timeout=30)
        assert wait_until(lambda: any(home.glob("*status*")), timeout=30)
        assert w.stop() == 0
    finally:
        w.close()
    ours = {src, cfg, w.log}  # the test's own files
    assert _loose(home, ours) == []
