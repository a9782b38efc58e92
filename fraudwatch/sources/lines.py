"""Turning a chunk of whole lines into an Arrow batch without a Python object per line.

The fast path (plain ASCII or valid UTF-8, no NUL, no CR, no overlong line) finds the newlines with numpy and
wraps the chunk's own bytes as an Arrow string array, zero-copy: each value is one line *with* its trailing
newline (the compiled regexes allow it). Anything unusual drops the offending lines into `bad` with a reason and
rebuilds the array from the remaining lines.
"""

from __future__ import annotations

from dataclasses import dataclass

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


def _bounds(buf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ends = np.flatnonzero(buf == 10)  # index of each line's newline
    starts = np.empty_like(ends)
    if len(ends):
        starts[0] = 0
        starts[1:] = ends[:-1] + 1
    return starts, ends


def to_batch(chunk: Chunk, max_line_bytes: int = 64 << 10, max_raw_bytes: int = 4096) -> LineBatch:
    data = chunk.data
    bad = list(chunk.bad)
    if not data:
        return LineBatch(SCHEMA.empty_table(), chunk.first_line_no, len(bad), bad)
    buf = np.frombuffer(data, dtype=np.uint8)
    starts, ends = _bounds(buf)
    n = len(ends)
    reject: dict[int, str] = {}

    lengths = ends - starts
    for i in np.flatnonzero(lengths > max_line_bytes).tolist():
        reject[i] = f"line too long ({int(lengths[i])} bytes)"
    if not buf.all():  # a NUL byte somewhere
        for i in np.unique(np.searchsorted(ends, np.flatnonzero(buf == 0))).tolist():
            reject.setdefault(i, "NUL byte in line")
    if int(buf.max()) >= 0x80:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            for i in np.unique(np.searchsorted(ends, np.flatnonzero(buf >= 0x80))).tolist():
                if i in reject:
                    continue
                try:
                    data[starts[i]:ends[i]].decode("utf-8")
                except UnicodeDecodeError as exc:
                    reject[i] = f"invalid UTF-8 at byte {exc.start}"
    has_cr = bool(np.any(buf[ends[lengths > 0] - 1] == 13)) if n else False

    offsets = np.empty(n + 1, dtype=np.int64)
    offsets[:n] = starts
    offsets[n] = len(data)
    idx = np.arange(n, dtype=np.int64)
    line_arr = pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))
    if reject or has_cr:
        keep = np.ones(n, dtype=bool)
        for i, reason in sorted(reject.items()):
            keep[i] = False
            raw = data[starts[i]:ends[i]]
            bad.append(BadLine(chunk.first_line_no + i, chunk.offset + int(starts[i]), reason,
                               raw[:max_raw_bytes], len(raw)))
        kept = np.flatnonzero(keep)
        if has_cr:  # rare (CRLF logs): rebuild the kept lines without their CR
            texts = [data[starts[i]:ends[i]].rstrip(b"\r").decode("utf-8") + "\n" for i in kept.tolist()]
            line_arr = pa.array(texts, type=pa.large_string())
        else:  # filtering copies only the kept values, so the invalid ones never reach DuckDB
            line_arr = line_arr.filter(pa.array(keep))
        idx = kept.astype(np.int64)
        starts = starts[kept]
    table = pa.Table.from_arrays([int64s(idx), int64s(starts + chunk.offset), line_arr], schema=SCHEMA)
    return LineBatch(table, chunk.first_line_no, n + len(chunk.bad), bad)
