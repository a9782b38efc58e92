"""What went wrong with the store file, told honestly: corrupt, held by another process, or out of disk space.

DuckDB reports all three as errors whose only difference is their text (an `IOException` for a lock, an `Error`
for a bad block checksum, a `TransactionException`, `IOException` or `FatalException` for a full disk, and
pyarrow an `OSError` with errno 28 when a segment cannot be written). The text is matched on whole words: a
"block checksum" is not a "lock". Each kind says what the operator should do; a corrupt store is never taken for
a locked one (which would send the reader to the watcher's read copy and serve stale rows without a word).
"""

from __future__ import annotations

import errno
import re
from pathlib import Path

from fraudwatch.errors import StoreError


class StoreLocked(StoreError):
    """Another process (normally the watcher) holds the store file."""


class StoreCorrupt(StoreError):
    """The store file fails DuckDB's checks (a block checksum, a bad header): it must be restored or rebuilt."""


class StoreFull(StoreError):
    """The filesystem under the store (its file, write-ahead log or segments) has no space left."""


_CORRUPT = re.compile(r"corrupt database file|does not match stored checksum|not a valid duckdb database",
                      re.IGNORECASE)
_LOCKED = re.compile(r"\bcould not set lock\b|\bconflicting lock\b|\block(?:ed)? (?:on|by)\b", re.IGNORECASE)
_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_FULL = re.compile(r"no space left on device|disk quota exceeded|file too large", re.IGNORECASE)


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


def _chain(exc: BaseException) -> list[BaseException]:
    """The error and those it was raised from or while handling (a disk-full write often surfaces later, as a
    failed commit or an invalidated database)."""
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen and len(seen) < 10:
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    return seen


def _is_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
        return True
    return bool(_FULL.search(str(exc)))


def classify(exc: BaseException, path: Path | str | None) -> StoreError | None:
    """The store error `exc` (a DuckDB or OS error, or one chained to it) stands for, naming `path` (None where it
    is not known: DuckDB's own text names the file); None when it is none of corrupt, locked or full."""
    chain = _chain(exc)
    where = path if path is not None else "store"
    for e in chain:
        if _is_full(e):
            fs = f"the filesystem that holds {Path(path).parent}" if path is not None else "its filesystem"
            return StoreFull(f"{where}: no space left on device while writing the store ({_first_line(e)}); free "
                             f"space on {fs} and run the command again")
    for e in chain:
        if _CORRUPT.search(str(e)):
            return StoreCorrupt(f"{where}: the store file is corrupt ({_first_line(e)}); stop the watcher, move the "
                                "file aside, and restore it from a backup or re-ingest the sources into a new store")
    for e in chain:
        if _LOCKED.search(str(e)):
            return StoreLocked(f"{where}: the store is in use by another fraudwatch process ({_first_line(e)}); if "
                               "that is the watcher, add files to its [[sources]] or stop it first")
    return None
