"""Honest store errors on real files: a corrupt store, a store another process holds, and a full disk are three
different one-line errors that name the file and say what to do; a corrupt store never falls back to the read
copy."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import Run
from tests.test_ingest import sip_lines, write

BLOCK = 256 * 1024  # DuckDB's block size; the file starts with 3 headers of 4 KiB
HEADERS = 3 * 4096


def _ingested(tmp_path: Path, cli: Callable[..., Run], lines: int = 4000) -> Path:
    log = tmp_path / "sipproxy.log"
    write(log, sip_lines(lines))
    db = tmp_path / "s.duckdb"
    assert cli("--db", db, "ingest", "--quiet", "--format", "vos3000-sipproxy", log).code == 0
    return db


def _flip_blocks(db: Path) -> None:
    """Flip bytes inside every data block (after the headers), so that their stored checksums no longer match."""
    size = db.stat().st_size
    with db.open("r+b") as f:
        for at in range(HEADERS + 64, size, BLOCK):
            f.seek(at)
            data = f.read(32)
            f.seek(at)
            f.write(bytes(b ^ 0xFF for b in data))


def test_a_corrupt_store_is_reported_as_corrupt_not_as_locked(tmp_path: Path, cli: Callable[..., Run]) -> None:
    db = _ingested(tmp_path, cli)
    _flip_blocks(db)
    for argv in (["sql", "SELECT count(*) FROM sip_events"], ["summary"], ["ingest", "--quiet", tmp_path / "x.log"]):
        (tmp_path / "x.log").write_text("", encoding="utf-8")
        run = cli("--db", db, *argv)
        assert run.code == 3, (argv, run)
        assert run.err.count("\n") == 1 and run.err.startswith(f"fraudwatch: {db}: the store file is corrupt"), run.err
        assert "in use" not in run.err and "restore it from a backup" in run.err
        assert run.out == ""  # nothing served from a read copy


def test_a_store_held_by_another_process_is_reported_as_in_use(tmp_path: Path, cli: Callable[..., Run]) -> None:
    db = _ingested(tmp_path, cli, lines=40)
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); "
                               "print('held', flush=True); sys.stdin.read()", str(db)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        run = cli("--db", db, "ingest", "--quiet", "--format", "vos3000-sipproxy", tmp_path / "sipproxy.log")
        assert run.code == 3
        assert run.err.startswith(f"fraudwatch: {db}: the store is in use by another fraudwatch process"), run.err
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1.5 MB tmpfs mounted for this test (root only), unmounted after it."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    where = tmp_path / f"disk-{uuid.uuid4().hex[:8]}"
    where.mkdir()
    got = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1500k,mode=0700", "tmpfs", str(where)],
                         capture_output=True, text=True, timeout=30)
    if got.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {got.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True, timeout=30)


def test_a_full_disk_says_no_space_left_on_device(tmp_path: Path, small_disk: Path) -> None:
    log = tmp_path / "sipproxy.log"
    noise = [os.urandom(40).hex() for _ in range(40_000)]  # what no compression shrinks: 3 MB of random text
    write(log, [f'2026-11-20 03:{i // 1200 % 60:02d}:{i // 20 % 60:02d}.{i % 1000:03d} [INFO] RECV REGISTER from '
                f'198.51.100.{i % 250 + 1}:5060 user="{1000 + i}" callid="c{i}" ua="{n}"' for i, n in enumerate(noise)])
    db = small_disk / "s.duckdb"
    run = subprocess.run([sys.executable, "-m", "fraudwatch", "--db", str(db), "ingest", "--quiet", "--format",
                          "vos3000-sipproxy", str(log)], capture_output=True, text=True, timeout=240)
    assert run.returncode == 3, run.stderr
    assert run.stderr.count("\n") == 1, run.stderr
    assert run.stderr.startswith(f"fraudwatch: {db}: no space left on device"), run.stderr
    assert "free space on the filesystem" in run.stderr
    assert "internal error" not in run.stderr and "Traceback" not in run.stderr


def test_a_watcher_whose_disk_fills_says_no_space_left_on_device(tmp_path: Path, small_disk: Path) -> None:
    src = tmp_path / "sip.log"
    noise = [os.urandom(40).hex() for _ in range(40_000)]
    write(src, [f'2026-11-20 03:{i // 1200 % 60:02d}:{i // 20 % 60:02d}.{i % 1000:03d} [INFO] RECV REGISTER from '
                f'198.51.100.{i % 250 + 1}:5060 user="{1000 + i}" callid="c{i}" ua="{n}"' for i, n in enumerate(noise)])
    cfg = tmp_path / "fraudwatch.toml"
    cfg.write_text(f'[store]\npath = "{small_disk / "s.duckdb"}"\n[[sources]]\npath = "{src}"\n'
                   'format = "vos3000-sipproxy"\n', encoding="utf-8")
    run = subprocess.run([sys.executable, "-m", "fraudwatch", "--config", str(cfg), "watch"],
                         capture_output=True, text=True, timeout=240)
    assert run.returncode != 0, run.stderr  # it retries each pass, then gives up for systemd to restart it
    assert "no space left on device while writing the store" in run.stderr, run.stderr
    assert "internal error" not in run.stderr and "Traceback" not in run.stderr
