"""The original log line behind a piece of an alert's evidence, found where it is now.

An alert points at its lines by (file, line number, byte offset). After logrotate the file of that name holds
other lines, and the line pointed at lives in a rotated copy (`sipproxy.log.1`, `sipproxy.log.2.gz`,
`sipproxy.log-20261120`): reading the named file at the offset would print the wrong line. So a line is only
taken when `check` (the caller's test of its content against what was stored of it) accepts it, in the named
file or in one of its rotated copies; otherwise the answer says it was not found, and where it looked.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from fraudwatch.sources.reader import open_binary

LINE_BYTES = 64 << 10  # the longest line ingest takes
TEXT_CHARS = 2000  # of a line, shown
COPIES = 20  # rotated copies looked at, at most (logrotate's `rotate` is rarely more)
_ROTATED = re.compile(r"[.\-_](\d+)?")  # what follows the name in a rotated copy's: .1, -20261120, .1.gz, _2

Check = Callable[[bytes], bool]  # does this line (bytes, without its newline) hold the event pointed at?


@dataclass(frozen=True)
class Found:
    """Where an evidence line is now: its text and the file holding it, or why it cannot be shown."""

    text: str | None
    path: str | None  # the file it was read from: the one named, or a rotated copy of it
    note: str | None = None  # in plain words, when text is None


def rotated_copies(path: Path) -> list[Path]:
    """The rotated copies of `path` beside it, newest rotation first (`.1` before `.2.gz`; dated names newest
    first), at most COPIES."""
    try:
        names = [p for p in path.parent.iterdir() if p.name != path.name and p.name.startswith(path.name)]
    except OSError:
        return []
    copies = []
    for p in names:
        m = _ROTATED.match(p.name, len(path.name))
        if m is not None and p.is_file():
            copies.append((0 if m.group(1) is None else 1, int(m.group(1) or 0), p.name, p))
    # numbered copies count up from the newest (.1, .2.gz, ...), then dated ones (a large number) newest first
    copies.sort(key=lambda c: (c[0], c[1] >= 10_000, c[1] if c[1] < 10_000 else -c[1], c[2]))
    return [c[3] for c in copies[:COPIES]]


def line_at(path: Path, line_no: int | None, offset: int | None) -> bytes | None:
    """The line starting at byte `offset` (uncompressed) of `path`, without its newline; by `line_no` when the
    offset is not known (CSV rows). None when the file is gone, too short, or no line starts there."""
    try:
        if offset is not None and not path.name.endswith(".gz") and path.stat().st_size <= offset:
            return None
        with open_binary(path) as f:
            if offset is not None:
                if offset > 0:
                    _skip(f, offset - 1)
                    if f.read(1) != b"\n":  # not the start of a line: this file is not the one
                        return None
                raw = f.readline(LINE_BYTES)
            elif line_no is not None and line_no > 0:
                raw = b""
                for i, line in enumerate(f, 1):
                    if i == line_no:
                        raw = line
                        break
            else:
                return None
    except (OSError, EOFError):
        return None
    if not raw:
        return None
    return raw.rstrip(b"\r\n")


def _skip(f: BinaryIO, n: int) -> None:
    """Move to byte `n`: a seek, or for a compressed file, reading (and dropping) what comes before."""
    if isinstance(f, gzip.GzipFile):
        while n > 0:
            got = f.read(min(n, 1 << 22))
            if not got:
                return
            n -= len(got)
    else:
        f.seek(n)


def find_line(source: str, line_no: int | None, offset: int | None, check: Check | None) -> Found:
    """The line (source, line_no, offset) points at, in `source` or a rotated copy of it, as `check` accepts it.
    Without a check nothing is shown: an unchecked line could be another file's."""
    path = Path(source)
    if check is None:
        return Found(None, None, "cannot be checked: the event read from this line is not in the store (not "
                                 "yet, or no longer), so no file's line can be shown as it")
    looked = [path, *rotated_copies(path)]
    for candidate in looked:
        raw = line_at(candidate, line_no, offset)
        if raw is not None and check(raw):
            return Found(raw.decode("utf-8", "backslashreplace")[:TEXT_CHARS], str(candidate))
    names = ", ".join(p.name for p in looked)
    return Found(None, None, f"not found: looked in {names}, none holds it now (rotated away beyond these, "
                             "deleted or rewritten)")
