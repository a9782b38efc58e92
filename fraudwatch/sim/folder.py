"""The folder a simulation writes into: empty, or (when asked to) cleared of an earlier simulation first.

A second simulation written over a first would mix them: different days leave their CDR files behind, and the
store the first one's config created (`fraudwatch.duckdb` beside it) would take the second's logs as new lines
of the same files. So `fraudwatch simulate` writes only into an empty or new folder; with `--force` it first
removes what a simulation and the store of its config wrote (the names below, nothing else), and refuses when
the folder holds anything else, or a fraudwatch.toml that is not the simulator's: those may be the operator's.
"""

from __future__ import annotations

import fnmatch
import shutil
from pathlib import Path

from fraudwatch.errors import UsageError
from fraudwatch.sim.writers import TOML

# What a simulation writes (fraudwatch.sim.writers.write_all) ...
SIM_FILES = ("sipproxy.log", "mbx.log", "kern.log", "customers.csv", "labels.csv", "fraudwatch.toml")
SIM_CDR_DIR = "cdr"
SIM_CDR_PATTERN = "e_cdr_*.csv"
# ... and what the store its fraudwatch.toml names (`path = "fraudwatch.duckdb"`) makes beside them: the file, its
# write-ahead log, segments, read copy, status and temporary files (fraudwatch.store)
STORE = "fraudwatch.duckdb"


def _foreign(out: Path) -> list[str]:
    """Entries of `out` that a simulation and its store did not write (their names, relative to `out`)."""
    foreign: list[str] = []
    for entry in sorted(out.iterdir()):
        name = entry.name
        if name == STORE or name.startswith(f"{STORE}."):
            continue
        if name == SIM_CDR_DIR and entry.is_dir() and not entry.is_symlink():
            foreign += [f"{SIM_CDR_DIR}/{c.name}" for c in sorted(entry.iterdir())
                        if not (c.is_file() and fnmatch.fnmatchcase(c.name, SIM_CDR_PATTERN))]
            continue
        if name not in SIM_FILES or not entry.is_file() or entry.is_symlink():
            foreign.append(name)
        elif name == "fraudwatch.toml" and entry.read_text(encoding="utf-8", errors="replace") != TOML:
            foreign.append(f"{name} (not the one a simulation writes)")
    return foreign


def prepare(out: Path, force: bool) -> list[str]:
    """Make `out` ready for a simulation: a new or empty folder as it is; with `force`, a folder of an earlier
    simulation emptied of what it (and its store) wrote. Returns the names removed. Raises UsageError for a used
    folder without `force`, and for one holding anything else even with it."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: is a file, not a folder")
    if not out.exists() or not any(out.iterdir()):
        return []
    if not force:
        raise UsageError(f"--out {out}: the folder is not empty (a simulation there would mix with what it holds); "
                         "choose a new folder, or add --force to replace an earlier simulation")
    foreign = _foreign(out)
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise UsageError(f"--out {out}: --force replaces only an earlier simulation, and the folder also holds "
                         f"{shown}; choose a new folder")
    removed = []
    for entry in sorted(out.iterdir()):
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()
        removed.append(entry.name)
    return removed
