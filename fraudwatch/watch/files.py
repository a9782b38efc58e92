"""Which files a source means right now, and which of them need reading.

A source is a file, a folder (every file below it) or a glob such as `sipproxy.log*` (so rotated copies are
seen). The watcher never trusts a name: what was read is known by content fingerprint in `positions`, so this
module only has to say which files changed since the last look. It compares a cheap stat signature
(device, inode, size, mtime); the reading itself resumes from the stored position.
"""

from __future__ import annotations

import glob
import os
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from fraudwatch.config import SourceConfig
from fraudwatch.sources.roots import glob_root, inside

# Names of files still being written by common tools, and editor/rotation leftovers: never read.
_SKIP_SUFFIXES = (".tmp", ".part", ".partial", ".swp", ".lock", "~", ".crdownload")


def is_glob(path: Path) -> bool:
    return any(ch in str(path) for ch in "*?[")


def files_of(src: SourceConfig) -> list[Path]:
    """The regular files the source names now (absolute, sorted); a missing file is simply not there yet. A file
    a folder or glob finds that resolves outside that folder (a link) is left out (`fraudwatch.sources.roots`)."""
    p = src.path
    if is_glob(p):
        root = glob_root(p)
        found = [f for f in map(Path, glob.glob(str(p))) if inside(root, f)]
    elif p.is_dir():
        found = [f for f in p.rglob("*") if not any(part.startswith(".") for part in f.relative_to(p).parts)
                 and inside(p, f)]
    else:
        found = [p]
    return sorted(f.absolute() for f in found if _wanted(f))


def _wanted(f: Path) -> bool:
    return not f.name.startswith(".") and not f.name.endswith(_SKIP_SUFFIXES) and f.is_file()


def watch_dirs(src: SourceConfig) -> Iterator[tuple[Path, bool]]:
    """(folder, recursive) pairs to watch for the source: a file's or glob's folder, or the folder itself."""
    p = src.path
    if is_glob(p):
        parts = p.parts
        first = next(i for i, part in enumerate(parts) if any(ch in part for ch in "*?["))
        yield Path(*parts[:first]) if first else Path("."), first < len(parts) - 1
    elif p.is_dir():
        yield p, True
    else:
        yield p.parent, False


@dataclass(frozen=True)
class Signature:
    dev: int
    inode: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> Signature | None:
        try:
            st = path.stat()
        except OSError:
            return None
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class Tracker:
    """Remembers each file's signature when it was last read, to read only what changed.

    `due(path, settle)` is true when the file changed since it was last read and, with `settle` > 0 (CSV exports
    that must be complete), its last change is at least `settle` seconds old.
    """

    def __init__(self) -> None:
        self.read: dict[Path, Signature] = {}

    def due(self, path: Path, sig: Signature, settle: float = 0.0) -> bool:
        if self.read.get(path) == sig:
            return False
        return not settle or time.time() - sig.mtime_ns / 1e9 >= settle

    def done(self, path: Path, sig: Signature) -> None:
        self.read[path] = sig

    def forget_missing(self, present: set[Path]) -> None:
        for p in [p for p in self.read if p not in present]:
            del self.read[p]


def gzip_size(path: Path) -> int | None:
    """A gzip file's uncompressed size modulo 2**32 (its trailer), to skip finished .gz files without
    decompressing them; None when unreadable. Multi-member files carry only the last member's size."""
    try:
        with path.open("rb") as f:
            f.seek(-4, os.SEEK_END)
            return int(struct.unpack("<I", f.read(4))[0])
    except (OSError, struct.error):
        return None
