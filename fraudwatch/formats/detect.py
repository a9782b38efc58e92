"""Telling a file's format from its content, when the user did not name one.

CSV formats are recognised by their header (every required column present); line formats by how many of the
first lines their patterns and ignore rules accept, run through the same SQL ingest uses.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa

from fraudwatch.errors import SourceError
from fraudwatch.formats.csvspec import CsvFormat, norm_label
from fraudwatch.formats.engine import LineParser, prepare_connection
from fraudwatch.formats.registry import Format
from fraudwatch.formats.spec import LineFormat
from fraudwatch.sources.reader import open_binary

SAMPLE_BYTES = 64 << 10
SAMPLE_LINES = 200


def decode_header(raw: bytes) -> str:
    """A CSV header line as text: UTF-8 (with or without BOM), else GB18030 (Chinese Windows exports)."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("gb18030", errors="replace")


def header_columns(fmt: CsvFormat, header: str) -> dict[int, str]:
    """Header position -> column, for the labels this format knows."""
    index = fmt.label_index()
    out: dict[int, str] = {}
    for i, label in enumerate(header.rstrip("\r\n").split(",")):
        col = index.get(norm_label(label))
        if col is not None and col not in out.values():
            out[i] = col
    return out


def _sample(path: Path) -> list[bytes]:
    with open_binary(path) as f:
        head = f.read(SAMPLE_BYTES)
    lines = head.split(b"\n")
    if len(head) == SAMPLE_BYTES and len(lines) > 1:
        lines = lines[:-1]  # the last one may be cut
    return [line for line in lines[:SAMPLE_LINES] if line.strip()]


def detect_format(path: Path, formats: dict[str, Format]) -> Format:
    lines = _sample(path)
    if not lines:
        raise SourceError(f"{path}: empty, cannot tell its format (pass --format)")
    header = decode_header(lines[0])
    for fmt in formats.values():
        if isinstance(fmt, CsvFormat):
            found = set(header_columns(fmt, header).values())
            if set(fmt.required) <= found:
                return fmt
    texts = [line.decode("utf-8", "replace").replace("\x00", "") + "\n" for line in lines]
    batch = pa.table({"idx": pa.array(range(len(texts)), pa.int64()), "off": pa.array([0] * len(texts), pa.int64()),
                      "line": pa.array(texts, pa.large_string())})
    best: tuple[int, str] | None = None
    con = duckdb.connect()
    try:
        prepare_connection(con)
        for fmt in formats.values():
            if not isinstance(fmt, LineFormat):
                continue
            parser = LineParser(fmt)
            parser.parse(con, batch)
            row = con.execute("SELECT count(*) FILTER (WHERE k >= 0), count(*) FILTER (WHERE k = -1) FROM cls"
                              ).fetchall()[0]
            matched, ignored = (int(row[0]), int(row[1])) if row else (0, 0)
            score = matched + ignored
            if matched and score * 2 >= len(texts) and (best is None or score > best[0]):
                best = (score, fmt.name)
    finally:
        con.close()
    if best is None:
        names = ", ".join(sorted(formats))
        raise SourceError(f"{path}: cannot tell its format from the first lines (pass --format; known: {names})")
    return formats[best[1]]
