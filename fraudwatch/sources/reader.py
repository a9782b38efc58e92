"""Reading input files as chunks of whole lines, from a byte offset, with hostile input contained.

A chunk holds only complete lines (each ending in a newline) as one `bytes` object, so the next stage can split
it with numpy and hand it to DuckDB without a Python object per line. Lines longer than `max_line_bytes` never
enter memory whole: they are cut off, reported as a `BadLine` with their real length, and skipped to their end.
A partial last line of a plain file stays unread (the writer may still be writing it); a compressed file is
complete, so its last line counts even without a newline.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

FP_BYTES = 4096


@dataclass(frozen=True)
class BadLine:
    """A line rejected before parsing: where it is, why, and (a bounded prefix of) what it was."""

    line_no: int
    offset: int
    reason: str
    raw: bytes
    length: int


@dataclass
class Chunk:
    data: bytes  # whole lines, each ending in b"\n" (possibly empty when only bad lines were found)
    offset: int  # file offset of data[0]
    first_line_no: int  # 1-based number of the first line in data
    lines: int  # lines in data
    bad: list[BadLine] = field(default_factory=list)  # oversized lines met before data (numbered before it)
    end_offset: int = 0  # offset just after this chunk: the position to commit
    end_line_no: int = 0  # lines consumed up to end_offset


@dataclass(frozen=True)
class Identity:
    """What identifies a file regardless of its name: a hash of its first bytes, and where it lives now."""

    fingerprint: str
    fp_bytes: int
    dev: int
    inode: int
    size: int
    mtime: float


def is_compressed(path: Path) -> bool:
    return path.suffix == ".gz"


def open_binary(path: Path) -> BinaryIO:
    raw = path.open("rb")
    if is_compressed(path):
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    return raw


def identify(path: Path) -> Identity | None:
    """The file's identity, or None for an empty file (nothing to identify yet)."""
    st = path.stat()
    with open_binary(path) as f:
        head = f.read(FP_BYTES)
    if not head:
        return None
    return Identity(hashlib.sha256(head).hexdigest(), len(head), st.st_dev, st.st_ino, st.st_size, st.st_mtime)


def fingerprint_of(path: Path, nbytes: int) -> str | None:
    """Hash of the first `nbytes` bytes, or None when the file is shorter than that."""
    with open_binary(path) as f:
        head = f.read(nbytes)
    return hashlib.sha256(head).hexdigest() if len(head) == nbytes else None


def _seek(f: BinaryIO, offset: int) -> None:
    if isinstance(f, gzip.GzipFile):
        remaining = offset
        while remaining:
            got = f.read(min(remaining, 1 << 22))
            if not got:
                break
            remaining -= len(got)
    else:
        f.seek(offset, os.SEEK_SET)


def read_chunks(
    path: Path,
    offset: int = 0,
    line_no: int = 0,
    chunk_bytes: int = 16 << 20,
    max_line_bytes: int = 64 << 10,
    max_raw_bytes: int = 4096,
    final: bool | None = None,
    ident: Identity | None = None,
    until: int | None = None,
) -> Iterator[Chunk]:
    """Yield chunks of whole lines from `offset` (line `line_no` already consumed).

    `final` says the file is complete (its unterminated last line counts); it defaults to True for .gz files.
    With `ident`, a plain file is checked after every read to still begin with the fingerprinted bytes: a file
    truncated and rewritten under the reader (copytruncate) would otherwise hand over the new content's bytes
    at the old offset. The read stops there; the new content is a new file to the caller.
    With `until`, reading stops at that offset (the size the caller saw), so a file that grows faster than it is
    read still yields control; what lies beyond is read next time.
    """
    final = is_compressed(path) if final is None else final
    with open_binary(path) as f:
        _seek(f, offset)
        check = None
        if ident is not None and not is_compressed(path):
            fd, want, nbytes = f.fileno(), ident.fingerprint, ident.fp_bytes

            def check() -> bool:
                return hashlib.sha256(os.pread(fd, nbytes, 0)).hexdigest() == want

        limit = None if until is None else max(0, until - offset)
        yield from _chunks(f, offset, line_no, chunk_bytes, max_line_bytes, max_raw_bytes, final, check, limit)


@dataclass
class _Skip:
    """An oversized line being skipped: its number, where it starts, its first bytes and its length so far."""

    line_no: int
    offset: int
    raw: bytes
    length: int


def _chunks(f: BinaryIO, offset: int, line_no: int, chunk_bytes: int, max_line_bytes: int,
            max_raw_bytes: int, final: bool, same_file: Callable[[], bool] | None = None,
            limit: int | None = None) -> Iterator[Chunk]:
    buf = b""  # bytes read but not yet yielded: the start of an unterminated line, at file offset `pos`
    pos = offset
    bad: list[BadLine] = []
    skip: _Skip | None = None
    while True:
        if limit is None:
            block = f.read(chunk_bytes)
        else:
            block = f.read(min(chunk_bytes, limit)) if limit > 0 else b""
            limit -= len(block)
        if same_file is not None and block and not same_file():
            return  # truncated and rewritten while we read: what we hold may be the new content's bytes
        eof = not block
        if skip is not None:
            nl = block.find(b"\n")
            if nl < 0:
                skip.length += len(block)
                if not eof:
                    continue
                if final:  # the file ends inside the oversized line: it is complete as it is
                    bad.append(BadLine(skip.line_no, skip.offset, f"line too long ({skip.length} bytes)",
                                       skip.raw, skip.length))
                    line_no += 1
                    pos = skip.offset + skip.length
                break
            skip.length += nl
            bad.append(BadLine(skip.line_no, skip.offset, f"line too long ({skip.length} bytes)", skip.raw,
                               skip.length))
            line_no += 1
            pos = skip.offset + skip.length + 1
            skip = None
            block = block[nl + 1:]
        data = buf + block
        cut = data.rfind(b"\n") + 1
        whole, buf = data[:cut], data[cut:]
        if whole or bad:
            n = whole.count(b"\n")
            yield Chunk(whole, pos, line_no + 1, n, bad, pos + len(whole), line_no + n)
            line_no += n
            pos += len(whole)
            bad = []
        if len(buf) > max_line_bytes:
            skip = _Skip(line_no + 1, pos, buf[:max_raw_bytes], len(buf))
            buf = b""
        if eof:
            break
    if buf and final:
        yield Chunk(buf + b"\n", pos, line_no + 1, 1, [], pos + len(buf), line_no + 1)
    elif bad:
        yield Chunk(b"", pos, line_no + 1, 0, bad, pos, line_no)
