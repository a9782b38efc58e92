"""What the watcher checks before it starts anything, and what it keeps checking about its sources.

A source whose format name is misspelt would match no file's lines and be read by nothing: the watcher refuses
to start on it (and a reload refuses it), naming the config file and line and the formats it knows. A source
whose path is missing is not an error of the config (the file may be created later, a log folder mounted after
the service started), but it must not go unnoticed: `missing_sources` says which, `fraudwatch status` shows each
as an error row, and the log repeats it every `MISSING_LOG_SECONDS` until the path appears (then its file is read
from the start, as every new file is).
"""

from __future__ import annotations

import datetime as dt
import difflib
import logging
import time
from collections.abc import Collection, Sequence
from pathlib import Path

from fraudwatch.config import Config, SourceConfig
from fraudwatch.errors import ConfigError, Location
from fraudwatch.sources.roots import glob_root
from fraudwatch.tomldoc import Document
from fraudwatch.watch.files import is_glob

log = logging.getLogger("fraudwatch.watch")

MISSING_LOG_SECONDS = 300.0  # how often the log repeats that a source's path is still missing


def source_line(cfg: Config, index: int, key: str) -> Location | None:
    """Where the `index`-th [[sources]] entry's `key` is in the config file (None: no file, or unreadable)."""
    if cfg.path is None:
        return None
    try:
        text = cfg.path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return Location(cfg.path)
    return Location(cfg.path, Document(cfg.path, text).line_of("sources", key, index))


def unknown_format(name: str, known: Collection[str]) -> str:
    """'unknown format 'x' (did you mean 'y'?; known: ...)' for a format name not in `known`."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return (f"unknown format '{name}' ({hint}known: {', '.join(sorted(known))}; `fraudwatch formats list` "
            f"describes them)")


def check_formats(cfg: Config, known: Collection[str]) -> None:
    """ConfigError, at the source's `format` line, for the first source naming a format not in `known`."""
    for i, src in enumerate(cfg.sources):
        if src.format is not None and src.format not in known:
            raise ConfigError(unknown_format(src.format, known), source_line(cfg, i, "format"))


def missing(src: SourceConfig) -> str | None:
    """Why the source names nothing to read now (None: its path is there). A glob is missing when the folder
    it searches is; a glob that matches no file yet in a folder that exists is not an error."""
    p = src.path
    if is_glob(p):
        root = glob_root(p)
        return None if root.is_dir() else f"no such folder: {root}"
    if p.exists():
        return None if p.is_dir() or p.is_file() else "not a file or folder"
    return "no such file or folder"


class MissingSources:
    """The sources whose path is missing, noticed on every pass; logged when first seen missing, again every
    `every` seconds while it stays missing, and once when it appears."""

    def __init__(self, every: float = MISSING_LOG_SECONDS) -> None:
        self.every = every
        self.since: dict[Path, tuple[str, float, float]] = {}  # path -> (why, wall time missing since, last log)

    def check(self, sources: Sequence[SourceConfig]) -> dict[str, dict[str, object]]:
        """Look at every source's path; the missing ones: path -> {"error", "since"} (for the status)."""
        now, wall = time.monotonic(), time.time()
        seen: set[Path] = set()
        for src in sources:
            why = missing(src)
            if why is None:
                if src.path in self.since:
                    log.info("source path appeared: %s: reading it from the start", src.path)
                    del self.since[src.path]
                continue
            seen.add(src.path)
            known = self.since.get(src.path)
            if known is None or now - known[2] >= self.every:
                since = known[1] if known is not None else wall
                log.error("source path missing: %s (%s); not read until it appears (this is repeated every %.0f "
                          "minutes while it is missing)", src.path, why, self.every / 60)
                self.since[src.path] = (why, since, now)
        for gone in [p for p in self.since if p not in seen]:  # dropped from the config by a reload
            del self.since[gone]
        return {str(p): {"error": why, "since": dt.datetime.fromtimestamp(since, dt.UTC).isoformat(timespec="seconds")}
                for p, (why, since, _) in self.since.items()}
