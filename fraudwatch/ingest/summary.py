"""What one file's ingest did: lines read, rows stored per table, rejects and their reasons, where it stopped.

Its own module so that the line and CSV ingests both fill it without importing each other."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fraudwatch.ingest.writer import BatchCounts

Progress = Callable[[Path, int], None]  # (file, bytes consumed so far in this file)


@dataclass
class FileSummary:
    path: Path
    format: str | None
    lines: int = 0
    counts: BatchCounts = field(default_factory=BatchCounts)
    pending_bytes: int = 0  # an unterminated last line left for later
    end_offset: int = 0  # bytes of the file consumed once this call returned (the committed position)
    more: bool = False  # stopped at `budget_bytes` with more to read
    error: str | None = None

    @property
    def parsed(self) -> int:
        return sum(self.counts.parsed.values())

    def as_json(self) -> dict[str, object]:
        return {"path": str(self.path), "format": self.format, "lines": self.lines, "parsed": self.parsed,
                "parsed_by_type": dict(sorted(self.counts.parsed.items())), "ignored": self.counts.ignored,
                "rejected": self.counts.rejected, "repaired": self.counts.repaired,
                "reject_reasons": dict(self.counts.reasons.most_common(5)),
                "pending_bytes": self.pending_bytes, "error": self.error}
