"""JSON text for values the store hands back (times, decimals, bytes): one spelling for the CLI's `--json`
output and the watcher's control socket, so both print a row the same way."""

from __future__ import annotations

import datetime as dt
import decimal
import json
from typing import Any


def json_default(value: object) -> Any:
    """`json.dumps(default=...)`: ISO times, decimals as text (no float rounding), bytes as escaped text."""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return str(value)


def jsonable(value: Any) -> Any:
    """`value` as a JSON-native value: as it is when it already is one, else as `json_default` spells it."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return json_default(value)


def dumps(value: object) -> str:
    """One JSON document, non-ASCII text kept as it is."""
    return json.dumps(value, default=json_default, ensure_ascii=False)
