"""The sentry's tail (fraudwatch.watch.tail): from the files' ends, only what is appended, parsed like ingest;
rotation, truncation, half-written lines, hostile bytes and falling behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fraudwatch.config import IngestConfig, SourceConfig
from fraudwatch.detect.rows import Rows
from fraudwatch.formats.registry import load_formats
from fraudwatch.watch.tail import LogTail
from tests.watch.harness import fail_line, sip_line

COLUMNS = {"sip_events": ["id", "ts", "source", "byte_offset", "event", "method", "status", "src_ip", "username",
                          "call_id"]}


def _tail(log: Path, max_behind: int = 1 << 20) -> LogTail:
    return LogTail([SourceConfig(log, "vos3000-sipproxy")], load_formats(), IngestConfig(), COLUMNS, max_behind)


def _ips(frames: dict[str, Rows]) -> list[str]:
    frame = frames.get("sip_events")
    return [] if frame is None else frame.columns["src_ip"]


def test_only_lines_appended_after_the_start_are_read(tmp_path: Path) -> None:
    log = tmp_path / "sipproxy.log"
    log.write_text("".join(sip_line(i) for i in range(5)), encoding="utf-8")
    tail = _tail(log)
    assert tail.poll() == {}  # what was there is the watcher's
    with log.open("a", encoding="utf-8") as f:
        f.write(fail_line(1, "192.0.2.7", 1) + fail_line(2, "192.0.2.8", 2))
    frames = tail.poll()
    assert _ips(frames) == ["192.0.2.7", "192.0.2.8"]
    frame = frames["sip_events"]
    assert frame.columns["status"] == [403, 403]
    assert frame.columns["source"] == [str(log)] * 2
    size = len("".join(sip_line(i) for i in range(5)).encode())
    assert frame.columns["byte_offset"][0] == size
    assert tail.poll() == {}


def test_a_half_written_line_waits_for_its_end(tmp_path: Path) -> None:
    log = tmp_path / "sipproxy.log"
    log.touch()
    tail = _tail(log)
    tail.poll()
    line = fail_line(1, "192.0.2.9", 1)
    with log.open("a", encoding="utf-8") as f:
        f.write(line[:40])
    assert tail.poll() == {}
    with log.open("a", encoding="utf-8") as f:
        f.write(line[40:])
    assert _ips(tail.poll()) == ["192.0.2.9"]


def test_rotation_and_truncation_are_followed_from_the_start(tmp_path: Path) -> None:
    log = tmp_path / "sipproxy.log"
    log.write_text(sip_line(0), encoding="utf-8")
    tail = _tail(log)
    tail.poll()
    os.rename(log, tmp_path / "sipproxy.log.1")  # rotated: a new file under the name
    log.write_text(fail_line(1, "192.0.2.10", 1), encoding="utf-8")
    assert _ips(tail.poll()) == ["192.0.2.10"]
    log.write_text("", encoding="utf-8")  # copytruncate: emptied in place, then written again
    assert tail.poll() == {}
    with log.open("a", encoding="utf-8") as f:
        f.write(fail_line(2, "192.0.2.11", 2))
    assert _ips(tail.poll()) == ["192.0.2.11"]


def test_hostile_lines_are_left_out_and_the_rest_read(tmp_path: Path) -> None:
    log = tmp_path / "sipproxy.log"
    log.touch()
    tail = _tail(log)
    tail.poll()
    with log.open("ab") as f:
        f.write(b"\x00\xff\xfe binary junk\n" + b"A" * 200_000 + b"\n")
        f.write(fail_line(3, "999.1.2.3", 1).encode())  # not an address: rejected by ingest too
        f.write(fail_line(4, "192.0.2.12", 2).encode())
    assert _ips(tail.poll()) == ["192.0.2.12"]


def test_falling_behind_skips_the_oldest_and_counts_them(tmp_path: Path) -> None:
    log = tmp_path / "sipproxy.log"
    log.touch()
    tail = _tail(log, max_behind=4096)
    tail.poll()
    with log.open("a", encoding="utf-8") as f:
        f.write("".join(sip_line(i) for i in range(200)))
        f.write(fail_line(5, "192.0.2.13", 1))
    ips = _ips(tail.poll())
    assert "192.0.2.13" in ips and len(ips) < 201
    assert tail.stats.skipped_bytes > 0
    assert tail.stats.skipped_bytes + tail.stats.bytes == log.stat().st_size


def test_an_error_on_a_file_is_noted_and_passed_not_met_on_every_tick(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from fraudwatch.formats.engine import LineParser

    log = tmp_path / "sipproxy.log"
    log.touch()
    tail = _tail(log)
    tail.poll()
    original = LineParser.parse_rows

    def broken(*args: object, **kwargs: object) -> object:
        raise ValueError("a line no one foresaw")

    monkeypatch.setattr(LineParser, "parse_rows", broken)
    with log.open("a", encoding="utf-8") as f:
        f.write(fail_line(6, "192.0.2.14", 1))
    assert tail.poll() == {}
    assert "ValueError: a line no one foresaw" in tail.stats.errors[-1]
    assert tail.stats.skipped_bytes == log.stat().st_size
    monkeypatch.setattr(LineParser, "parse_rows", original)
    with log.open("a", encoding="utf-8") as f:
        f.write(fail_line(7, "192.0.2.15", 2))
    assert _ips(tail.poll()) == ["192.0.2.15"]
