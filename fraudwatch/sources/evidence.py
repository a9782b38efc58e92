"""The original log lines behind an alert's evidence, read back from their files by byte offset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fraudwatch.sources.reader import open_binary


def raw_lines(pointers: list[list[Any]], limit: int = 5) -> list[dict[str, Any]]:
    """The lines `pointers` ([source, line_no, byte offset, ...] each, as an alert's evidence holds them) name,
    at most `limit`, each as {"source", "line_no", "text"}; text None when the file or line is gone."""
    out = []
    for source, line_no, offset, *_ in (list(p) + [None] * 3 for p in pointers[:limit]):
        text = None
        try:
            with open_binary(Path(source)) as f:
                if offset is not None:
                    f.seek(int(offset))  # a .gz file seeks forward by decompressing
                    raw = f.readline(64 << 10)
                else:
                    raw = b""
                    for i, line in enumerate(f, 1):
                        if i == line_no:
                            raw = line
                            break
                text = raw.rstrip(b"\r\n").decode("utf-8", "backslashreplace")[:2000] or None
        except OSError:
            pass
        out.append({"source": source, "line_no": line_no, "text": text})
    return out
