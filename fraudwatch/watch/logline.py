"""The watcher's log lines: one line per event, stamped, with the facts as key=value fields.

On a terminal or into a file each line starts with its time in ISO 8601 with the zone (`2026-11-20T03:41:55.120
+08:00`, the host's zone). Under systemd, whose journal stamps every line itself, the stamp is left out (else
each line would carry two) and the level is given as the `<N>` syslog prefix journald reads (sd-daemon(3)), so
`journalctl -u fraudwatch -p err` shows only errors. The journal is recognised as systemd documents it: the
`JOURNAL_STREAM` variable holds the device and inode of the stream it connected to stderr, so a child whose
stderr was redirected elsewhere is not mistaken for it (systemd.exec(5), *Environment variables*).

Fields (`kv`) are `key=value`; a value with a space, a quote, an equals sign or nothing in it is quoted as JSON
text, so a log reader can split any line on spaces outside quotes. What an attacker wrote (an account name, a
user agent) is escaped by the formatter's `escape` before it reaches the terminal or the journal.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
from collections.abc import Callable
from typing import TextIO

# syslog priorities (sd-daemon(3)'s SD_ERR ...) of Python's levels
_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7}


def under_journald(stream: TextIO | None = None) -> bool:
    """Whether `stream` (stderr) is the journal's: JOURNAL_STREAM names its device and inode."""
    expected = os.environ.get("JOURNAL_STREAM", "")
    dev, _, ino = expected.partition(":")
    if not dev.isdigit() or not ino.isdigit():
        return False
    try:
        st = os.fstat((stream or sys.stderr).fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (int(dev), int(ino))


def _plain(text: str) -> str:
    return text


class LineFormatter(logging.Formatter):
    """`<time> <name>: <LEVEL> <message>`, or `<N><name>: <LEVEL> <message>` for the journal (see the module
    docstring). `escape` is applied to the message (not to a traceback, which keeps its lines)."""

    def __init__(self, name: str = "fraudwatch", journald: bool | None = None,
                 escape: Callable[[str], str] = _plain) -> None:
        super().__init__("%(message)s")
        self.name = name
        self.journald = under_journald() if journald is None else journald
        self.escape = escape

    def formatMessage(self, record: logging.LogRecord) -> str:
        return self.escape(super().formatMessage(record))

    def format(self, record: logging.LogRecord) -> str:
        body = super().format(record)
        if self.journald:
            level = _PRIORITY.get(record.levelno, 6 if record.levelno < logging.WARNING else 3)
            return f"<{level}>{self.name}: {record.levelname} {body}"
        stamp = dt.datetime.fromtimestamp(record.created).astimezone().isoformat(timespec="milliseconds")
        return f"{stamp} {self.name}: {record.levelname} {body}"


def _quoted(value: object) -> str:
    text = value if isinstance(value, str) else str(value)
    if not text or any(c in text for c in ' "=\\') or not text.isprintable():
        return json.dumps(text, ensure_ascii=False)
    return text


def kv(**fields: object) -> str:
    """`key=value ...` for the fields that are not None (see the module docstring for the quoting)."""
    return " ".join(f"{k}={_quoted(v)}" for k, v in fields.items() if v is not None)


def key_field(key_type: str, key: str) -> dict[str, str]:
    """An alert's key as the field it is (`ip=`, `account=`, ...); a key 'ip|user' names the IP first."""
    if key_type == "ip":
        ip, _, rest = key.partition("|")
        return {"ip": ip, **({"key": key} if rest else {})}
    if key_type in ("account", "prefix", "number"):
        return {key_type: key}
    return {"key": key}
