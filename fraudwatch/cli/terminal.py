"""Text for a terminal with nothing in it that the terminal would act on.

Much of what fraudwatch prints was written by an attacker: a User-Agent, a SIP user, a log line, a file name. A
terminal acts on some characters instead of showing them: ESC starts sequences that clear the screen, hide text,
retitle the window or write the clipboard (OSC 52); the other C0 controls, DEL and the C1 controls
(U+0080..U+009F, which some terminals take as ESC sequences too) move the cursor, ring, or erase; Unicode's
bidirectional overrides reorder what is shown (docs/security.md, *Terminal output*). `safe` replaces each with a
visible escape (`\\x1b`, `\\n`, `\\u202e`), so the text is still all there and still one line.

A table of our own rather than a library's: rich's `Control.strip_control_codes` covers five C0 characters, and
what must go is a short, fixed list that `str.translate` applies in one pass. No imports: the CLI's error line
(`fraudwatch.cli.app`) uses it before any command module is loaded.
"""

from __future__ import annotations

import logging


def _unsafe() -> dict[int, str]:
    """The characters `safe` replaces, each with its visible escape."""
    table = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))}  # C0, DEL, C1
    table.update({0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"})
    # bidirectional marks, embeddings, overrides and isolates; the line and paragraph separators
    for c in (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x2028, 0x2029):
        table[c] = f"\\u{c:04x}"
    return table


UNSAFE = _unsafe()
# The same characters inside JSON text: C0 is always escaped by `json.dumps`; DEL, C1 and the bidirectional
# controls are not, and can only occur inside strings, where `\u` escapes mean the same value.
JSON_UNSAFE = {c: f"\\u{c:04x}" for c in UNSAFE if c >= 0x20}


def safe(text: str) -> str:
    """`text` with every character a terminal would act on replaced by a visible escape (one line)."""
    return text.translate(UNSAFE)


def safe_json(text: str) -> str:
    """A JSON text with DEL, C1 and bidirectional controls as `\\u` escapes: the same JSON value."""
    return text.translate(JSON_UNSAFE)


class SafeFormatter(logging.Formatter):
    """Log lines whose message (often naming a file or quoting input) cannot forge lines or steer a terminal;
    a traceback after it keeps its own lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return safe(super().formatMessage(record))
