"""Turning a chunk of whole lines into an Arrow batch without a Python object per line.

The fast path (plain ASCII or valid UTF-8, no NUL, no CR, no overlong line) finds the newlines with numpy and
wraps the chunk's own bytes as an Arrow string array, zero-copy: each value is one line *with* its trailing
newline (the compiled regexes allow it).

A line's bytes never cost it its place: the attacker writes the User-Agent, the user and the Call-ID, so an
invalid UTF-8 byte or a NUL there must not turn a password guess into a reject (issue 22: one `\xff` in a
flood's User-Agent hid the whole flood). Such a line is *repaired* — each invalid sequence and each NUL becomes
U+FFFD, the Unicode replacement character — parsed like any other, and listed in `LineBatch.repaired` so its row
says so (`repaired` in the store). Only an overlong line goes to `bad` (it never entered memory whole).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from fraudwatch.arrays import int64s
from fraudwatch.sources.reader import BadLine, Chunk

SCHEMA = pa.schema([("idx", pa.int64()), ("off", pa.int64()), ("line", pa.large_string())])


@dataclass
class LineBatch:
    table: pa.Table  # idx (line index within the chunk), off (file offset), line (text incl. newline)
    first_line_no: int
    lines: int  # all lines of the chunk, good and bad
    bad: list[BadLine]
    repaired: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))  # idx of repaired lines


def _bounds(buf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ends = np.flatnonzero(buf == 10)  # index of each line's newline
    starts = np.empty_like(ends)
    if len(ends):
        starts[0] = 0
        starts[1:] = ends[:-1] + 1
    return starts, ends


REPLACEMENT = "\ufffd"


def repair(raw: bytes) -> str:
    """A line's bytes as text: invalid UTF-8 and NUL bytes each become U+FFFD (DuckDB's text, and the regexes,
    take neither), whatever the attacker put there."""
    return raw.decode("utf-8", "replace").replace("\x00", REPLACEMENT)


def to_batch(chunk: Chunk, max_line_bytes: int = 64 << 10, max_raw_bytes: int = 4096) -> LineBatch:
    data = chunk.data
    bad = list(chunk.bad)
    if not data:
        return LineBatch(SCHEMA.empty_table(), chunk.first_line_no, len(bad), bad)
    buf = np.frombuffer(data, dtype=np.uint8)
    starts, ends = _bounds(buf)
    n = len(ends)
    reject: dict[int, str] = {}
    fix: set[int] = set()  # lines whose bytes are repaired

    lengths = ends - starts
    for i in np.flatnonzero(lengths > max_line_bytes).tolist():
        reject[i] = f"line too long ({int(lengths[i])} bytes)"
    if not buf.all():  # a NUL byte somewhere
        fix.update(np.unique(np.searchsorted(ends, np.flatnonzero(buf == 0))).tolist())
    if int(buf.max()) >= 0x80:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            for i in np.unique(np.searchsorted(ends, np.flatnonzero(buf >= 0x80))).tolist():
                if i in fix or i in reject or i >= n:
                    continue
                try:
                    data[starts[i]:ends[i]].decode("utf-8")
                except UnicodeDecodeError:
                    fix.add(i)
    fix.difference_update(reject)
    fix.discard(n)  # bytes after the last newline (none: a chunk holds whole lines)
    has_cr = bool(np.any(buf[ends[lengths > 0] - 1] == 13)) if n else False

    offsets = np.empty(n + 1, dtype=np.int64)
    offsets[:n] = starts
    offsets[n] = len(data)
    idx = np.arange(n, dtype=np.int64)
    line_arr = pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))
    if reject or has_cr or fix:
        keep = np.ones(n, dtype=bool)
        for i, reason in sorted(reject.items()):
            keep[i] = False
            raw = data[starts[i]:ends[i]]
            bad.append(BadLine(chunk.first_line_no + i, chunk.offset + int(starts[i]), reason,
                               raw[:max_raw_bytes], len(raw)))
        kept = np.flatnonzero(keep)
        if has_cr or fix:  # rare (CRLF logs, hostile bytes): rebuild the kept lines, without their CR, repaired
            texts = [(repair(line) if i in fix else line.decode("utf-8")) + "\n"
                     for i in kept.tolist() for line in (data[starts[i]:ends[i]].rstrip(b"\r"),)]
            line_arr = pa.array(texts, type=pa.large_string())
        else:  # filtering copies only the kept values, so the overlong ones never reach DuckDB
            line_arr = line_arr.filter(pa.array(keep))
        idx = kept.astype(np.int64)
        starts = starts[kept]
    table = pa.Table.from_arrays([int64s(idx), int64s(starts + chunk.offset), line_arr], schema=SCHEMA)
    return LineBatch(table, chunk.first_line_no, n + len(chunk.bad), bad, np.array(sorted(fix), dtype=np.int64))
