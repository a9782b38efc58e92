"""Where an evidence line is looked for: the rotated copies of a log, in rotation order, and only at a line's
start (fraudwatch.sources.evidence)."""

from __future__ import annotations

import gzip
from pathlib import Path

from fraudwatch.sources.evidence import find_line, line_at, rotated_copies


def test_rotated_copies_newest_rotation_first(tmp_path: Path) -> None:
    log = tmp_path / "sipproxy.log"
    names = ["sipproxy.log", "sipproxy.log.1", "sipproxy.log.2.gz", "sipproxy.log.10", "sipproxy.log-20261120",
             "sipproxy.log-20261121.gz", "sipproxy.logger", "mbx.log.1"]
    for n in names:
        (tmp_path / n).write_text("x\n")
    assert [p.name for p in rotated_copies(log)] == [
        "sipproxy.log.1", "sipproxy.log.2.gz", "sipproxy.log.10", "sipproxy.log-20261121.gz",
        "sipproxy.log-20261120"]


def test_a_line_is_read_only_where_one_starts(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_bytes(b"first line\nsecond line\n")
    assert line_at(log, 2, 11) == b"second line"
    assert line_at(log, 2, 12) is None  # inside a line: not the file the pointer meant
    assert line_at(log, 2, 99) is None
    assert line_at(log, 2, None) == b"second line"  # by number (CSV rows)
    gz = tmp_path / "a.log.1.gz"
    gz.write_bytes(gzip.compress(log.read_bytes()))
    assert line_at(gz, 2, 11) == b"second line" and line_at(gz, 2, 12) is None


def test_only_the_line_the_check_accepts_is_shown(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_bytes(b"new 1\nnew 2\n")
    (tmp_path / "a.log.1").write_bytes(b"old 1\nold 2\n")
    found = find_line(str(log), 2, 6, lambda raw: raw.startswith(b"old"))
    assert (found.text, found.path) == ("old 2", str(tmp_path / "a.log.1"))
    gone = find_line(str(log), 2, 6, lambda raw: raw == b"older")
    assert gone.text is None and gone.path is None and gone.note and "a.log, a.log.1" in gone.note
    unchecked = find_line(str(log), 2, 6, None)
    assert unchecked.text is None and unchecked.note
