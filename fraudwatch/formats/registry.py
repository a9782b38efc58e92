"""Finding and loading formats: the shipped ones in rules/formats/, then the user's folders, which override a
shipped format of the same name (never edit the shipped files)."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterable
from pathlib import Path

import duckdb

from fraudwatch.errors import ConfigError, Location
from fraudwatch.formats.csvspec import CsvFormat, load_csv_format
from fraudwatch.formats.spec import LineFormat, load_line_format
from fraudwatch.rulesdir import shipped_rules_dir
from fraudwatch.yamlfile import load_with_lines

Format = LineFormat | CsvFormat


def load_format_file(path: Path) -> Format:
    doc, lines = load_with_lines(path)
    if not isinstance(doc, dict):
        raise ConfigError("a format file is a YAML mapping", Location(path, 1))
    fmt: Format = load_csv_format(doc, lines) if doc.get("kind") == "csv" else load_line_format(doc, lines)
    if doc.get("kind", "lines") not in ("lines", "csv"):
        raise ConfigError("'kind' must be 'lines' or 'csv'", lines.at(doc, "kind"))
    if isinstance(fmt, LineFormat):
        _check_re2(fmt)
    return fmt


def _check_re2(fmt: LineFormat) -> None:
    """Every regex must compile in RE2 (DuckDB's engine): say which one does not, and where."""
    con, lock = _re2_connection()
    checks: list[tuple[str, Location]] = [(r, p.where) for p in fmt.patterns for r in p.regexes]
    checks += [(i.regex, i.where) for i in fmt.ignores]
    checks += [(rx, Location(fmt.path)) for d in fmt.derives for rx, _ in d.cases]
    with lock:
        try:  # all at once: one query costs what one regex's does, and nearly every file is valid
            con.execute("SELECT count(regexp_matches('', r)) FROM unnest(?::VARCHAR[]) AS t(r)",
                        [[regex for regex, _ in checks]]).fetchall()
            return
        except duckdb.Error:
            pass
        for regex, where in checks:  # one does not compile: find it, to say where it is
            try:
                con.execute("SELECT regexp_matches('', ?)", [regex]).fetchall()
            except duckdb.Error as exc:
                msg = str(exc).splitlines()[0]
                raise ConfigError(f"regex does not compile in RE2: {msg}", where) from None


@functools.lru_cache(maxsize=1)
def _re2_connection() -> tuple[duckdb.DuckDBPyConnection, threading.Lock]:
    """An in-memory DuckDB for compiling regexes, and the lock that keeps it to one thread at a time. Opened once:
    a connection per format file added to every command's start-up (figures: benchmarks/RESULTS.md, "One DuckDB
    connection for the RE2 checks")."""
    return duckdb.connect(), threading.Lock()


def load_formats(extra_dirs: Iterable[Path] = ()) -> dict[str, Format]:
    """All formats by name: shipped first, then each extra folder in order (later wins)."""
    formats: dict[str, Format] = {}
    for folder in (shipped_rules_dir() / "formats", *extra_dirs):
        if not folder.is_dir():
            raise ConfigError("formats folder does not exist", Location(folder))
        for path in sorted(folder.glob("*.yaml")):
            fmt = load_format_file(path)
            formats[fmt.name] = fmt
    return formats
