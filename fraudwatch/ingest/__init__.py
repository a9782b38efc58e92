"""Backfill: files and folders (plain or .gz) into the store, every line accounted for.

`files` reads log files chunk by chunk and hands CSV exports to `csvfiles`; both fill a `summary.FileSummary`."""

from fraudwatch.ingest.files import Ingestor, expand_paths
from fraudwatch.ingest.summary import FileSummary, Progress

__all__ = ["FileSummary", "Ingestor", "Progress", "expand_paths"]
