"""Where the shipped rules/ folder is: formats, rules and lists. A module of its own, so that the scoring process
of `ingest --detect`, which loads rules and reads no store, does not import the formats (and DuckDB) to find it."""

from __future__ import annotations

import os
from pathlib import Path


def shipped_rules_dir() -> Path:
    """The project's rules/ folder (FRAUDWATCH_RULES overrides, for installs that move it)."""
    env = os.environ.get("FRAUDWATCH_RULES")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "rules"
