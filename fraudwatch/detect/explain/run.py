"""`explain`: a file (or one line) through a line format and the rules, with nothing stored and nothing done.

The answer to fail2ban-regex with its filter and to `cscli explain`: what each line becomes (`lines`; a CSV
export's rows: `csvrows`) and which rules those events would fire (`rules`), in one pass over the file in
ingest's chunks. Memory is bounded by two
chunks of the file (16 MB of log each by default), the rules' windows, the lines kept in detail, and one small
record per alert; the file's size does not enter.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from fraudwatch.config import Config
from fraudwatch.detect.base import Context
from fraudwatch.detect.explain.csvrows import CsvStage
from fraudwatch.detect.explain.lines import LineCounts, LineStage
from fraudwatch.detect.explain.rules import RuleStage, RuleTally
from fraudwatch.detect.ruleset import load_rules
from fraudwatch.errors import SourceError, UsageError
from fraudwatch.formats.csvspec import CsvFormat
from fraudwatch.formats.detect import detect_format
from fraudwatch.formats.registry import Format, load_formats
from fraudwatch.formats.spec import LineFormat
from fraudwatch.rulesdir import shipped_rules_dir
from fraudwatch.sources.reader import Chunk, read_chunks

ONE_LINE = "(the line given)"  # the source name of `--line`


@dataclass
class Explanation:
    source: str
    format: str
    table: str  # where ingest would store the events
    kind: str  # lines (a log: counts per pattern) or csv (an export: counts per table)
    lines: LineCounts
    rules: list[RuleTally] = field(default_factory=list)  # every rule loaded, fired or not
    seconds: float = 0.0

    @property
    def fired(self) -> list[RuleTally]:
        return [t for t in self.rules if t.alerts]


def pick_format(formats: dict[str, Format], name: str | None, path: Path | None) -> Format:
    """The format `name`, or the one `path`'s first lines show (as ingest detects it)."""
    if name is not None:
        if name not in formats:
            raise UsageError(f"unknown format '{name}' (known: {', '.join(sorted(formats))})")
        return formats[name]
    if path is None:
        raise UsageError("--line needs --format NAME (one line is too little to tell a format by)")
    return detect_format(path, formats)


def explain_file(cfg: Config, path: Path, format_name: str | None = None, extra_rules: Sequence[Path] = (),
                 tz: str = "UTC", keep: int = 20) -> Explanation:
    """What `path` (plain or .gz; a log or a CSV export) becomes and which rules it fires."""
    if path.is_dir():
        raise SourceError(f"{path}: a folder; explain takes one file (a log or a CSV export)")
    if not path.is_file():
        raise SourceError(f"{path}: no such file")
    formats = load_formats(cfg.format_dirs)
    fmt = pick_format(formats, format_name, path)
    source = str(path.absolute())  # as ingest names it
    opts = cfg.ingest
    try:
        if isinstance(fmt, CsvFormat):
            stage = CsvStage(fmt, source, tz, keep, opts)
            return _explain(cfg, source, fmt, stage.rows(path), stage.counts, extra_rules)
        assert isinstance(fmt, LineFormat)
        lines = LineStage(fmt, source, tz, path.stat().st_mtime, keep, opts.max_line_bytes, opts.max_raw_bytes)
        chunks = read_chunks(path, chunk_bytes=opts.chunk_bytes, max_line_bytes=opts.max_line_bytes,
                             max_raw_bytes=opts.max_raw_bytes, final=True)
        return _explain(cfg, source, fmt, lines.rows(chunks), lines.counts, extra_rules)
    except OSError as exc:
        raise SourceError(f"{path}: {exc.strerror or exc}") from None


def explain_line(cfg: Config, line: str, format_name: str | None, extra_rules: Sequence[Path] = (),
                 tz: str = "UTC") -> Explanation:
    """What one line becomes (the rules are run on it too: a rule that fires on one event shows)."""
    fmt = pick_format(load_formats(cfg.format_dirs), format_name, None)
    if not isinstance(fmt, LineFormat):
        raise UsageError(f"format '{fmt.name}' is a CSV export: a row means something only under its header; "
                         "explain the export file instead")
    data = line.rstrip("\r\n").encode("utf-8", "surrogateescape") + b"\n"
    chunk = Chunk(data, 0, 1, 1, [], len(data), 1)
    opts = cfg.ingest
    stage = LineStage(fmt, ONE_LINE, tz, dt.datetime.now(dt.UTC).timestamp(), 1, opts.max_line_bytes,
                      opts.max_raw_bytes)
    return _explain(cfg, ONE_LINE, fmt, stage.rows([chunk]), stage.counts, extra_rules)


def _explain(cfg: Config, source: str, fmt: Format, rows: Iterable[list[tuple[str, pa.Table]]], counts: LineCounts,
             extra_rules: Sequence[Path]) -> Explanation:
    """Run the rules over `rows` as they come (`counts` fills meanwhile)."""
    t0 = time.monotonic()
    for d in extra_rules:
        if not d.is_dir():
            raise UsageError(f"--rules {d}: not a folder")
    rules = list(load_rules([*cfg.rule_dirs, *extra_rules]).rules.values())
    scoring = RuleStage(rules, Context(shipped_rules_dir() / "lists"), cfg.trusted_networks, cfg.trusted_accounts)
    for batch in rows:
        for table, t in batch:
            scoring.feed(table, t)
    return Explanation(source, fmt.name, fmt.table, fmt.kind, counts, scoring.finish(), time.monotonic() - t0)
