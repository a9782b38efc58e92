"""Read positions: finding where a file was left off, and moving the mark (inside the caller's transaction).

A file is known by a hash of its first bytes, not by its name or inode, so a renamed, rotated, copied or
compressed copy of a file already read is recognised and not read again. A file shorter than the fingerprint
length is known by a hash of what it had; when it grows, the same row is found by re-hashing that many bytes,
and its fingerprint is lengthened.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import duckdb

from fraudwatch.sources.reader import FP_BYTES, Identity, fingerprint_of


@dataclass(frozen=True)
class Position:
    fingerprint: str
    fp_bytes: int
    byte_offset: int
    line_no: int
    format: str


def find(con: duckdb.DuckDBPyConnection, path: Path, ident: Identity) -> Position | None:
    """The stored position of this file's content, if it was read before under any name."""
    rows = con.execute(
        "SELECT fingerprint, fp_bytes, byte_offset, line_no, format FROM positions "
        "WHERE fingerprint = ? AND fp_bytes = ?", [ident.fingerprint, ident.fp_bytes]).fetchall()
    if rows:
        return Position(*rows[0])
    # A file that was shorter than FP_BYTES when last read and has grown since.
    for fp, nbytes, off, line_no, fmt in con.execute(
            "SELECT fingerprint, fp_bytes, byte_offset, line_no, format FROM positions "
            "WHERE fp_bytes < ? AND fp_bytes < ? ORDER BY fp_bytes DESC", [FP_BYTES, ident.fp_bytes]).fetchall():
        if fingerprint_of(path, nbytes) == fp:
            return Position(fp, nbytes, off, line_no, fmt)
    return None


def advance(con: duckdb.DuckDBPyConnection, old: Position | None, path: Path, ident: Identity, fmt: str,
            byte_offset: int, line_no: int) -> Position:
    """Record that `path` is consumed up to `byte_offset` / `line_no`. Call inside the batch's transaction."""
    now = dt.datetime.now(dt.UTC)
    if old is None:
        con.execute("INSERT INTO positions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [ident.fingerprint, ident.fp_bytes, str(path), ident.dev, ident.inode, fmt, byte_offset,
                     line_no, now])
    else:
        con.execute("UPDATE positions SET fingerprint = ?, fp_bytes = ?, path = ?, dev = ?, inode = ?, format = ?, "
                    "byte_offset = ?, line_no = ?, updated_at = ? WHERE fingerprint = ? AND fp_bytes = ?",
                    [ident.fingerprint, ident.fp_bytes, str(path), ident.dev, ident.inode, fmt, byte_offset,
                     line_no, now, old.fingerprint, old.fp_bytes])
    return Position(ident.fingerprint, ident.fp_bytes, byte_offset, line_no, fmt)
