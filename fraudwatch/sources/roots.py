"""Sources stay inside their root: a file a folder or glob source finds must really live under that folder.

A link dropped into a CDR folder (`e_cdr.csv -> /etc/passwd`) would otherwise be read with the watcher's rights
and its lines kept in `rejects` for anyone who reads the store. A file found by a folder or a glob source is
therefore read only when its real path (links resolved) lies under the real path of the source's root: the folder
itself, or the part of the glob before its first wildcard. A file the configuration names directly is the
operator's choice and is read wherever its link points.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger("fraudwatch.sources")

_WILD = "*?["
_TOLD: set[str] = set()  # refusals logged already (a watcher lists its sources on every pass)
_TOLD_MAX = 10_000


def glob_root(pattern: Path) -> Path:
    """The folder a glob cannot leave: its parts before the first one with a wildcard."""
    parts = pattern.parts
    first = next((i for i, part in enumerate(parts) if any(ch in part for ch in _WILD)), len(parts))
    return Path(*parts[:first]) if first else Path(".")


def inside(root: Path, found: Path) -> bool:
    """Whether `found` (a file under `root` by name) resolves to a path under `root`'s real path; a refusal is
    logged once per file."""
    try:
        real, top = os.path.realpath(found), os.path.realpath(root)
    except (OSError, ValueError):
        return False
    if os.path.commonpath([real, top]) == top:
        return True
    key = f"{found}\0{real}"
    if key not in _TOLD:
        if len(_TOLD) >= _TOLD_MAX:
            _TOLD.clear()
        _TOLD.add(key)
        log.warning("refusing %s: it resolves to %s, outside its source's folder %s", found, real, top)
    return False
