"""Messages: a small format-neutral document (lines of styled segments, and tables) rendered per channel markup.

Every piece of text that may come from an attacker (keys, usernames, user-agents, evidence facts, the enforcer's
text) is a `data` segment: control characters (newlines included, so no fake lines) are replaced, it is cut to
`max_field` characters, and it is escaped for the target markup:

- html: `html.escape` (e-mail HTML bodies, Telegram's HTML parse mode);
- markdown: CommonMark's markup characters (\\ ` * _ [ ] < > ~ | # !) backslash-escaped; apprise turns it into
  Slack mrkdwn, entity-escaping `& < >` (so no link, mention or formatting comes from attacker text);
- whatsapp: plain text in which WhatsApp's own markers (`* _ ~ \\``) are defused with a zero-width space;
- text: as is (the channel shows plain text);
- json: a JSON document (`json.dumps` escapes), with the structured fields next to the text rendering.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field
from typing import Any

FORMATS = ("text", "html", "markdown", "whatsapp", "json")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_MD_PUNCT = re.compile(r"([\\`*_\[\]<>~|#!])")
_WA_MARKS = re.compile(r"([*_~`])")
ELLIPSIS = "…"


def clean(value: object, limit: int) -> str:
    """Attacker-controlled text made safe to show: no control or bidi characters, at most `limit` characters."""
    text = _CONTROL.sub("\ufffd", "" if value is None else str(value))
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + ELLIPSIS


@dataclass(frozen=True)
class Seg:
    text: str
    style: str = ""  # "" plain, "b" bold, "data" attacker-controlled, "code" a command to copy


Line = tuple[Seg, ...]


@dataclass
class Table:
    header: tuple[str, ...]
    rows: list[tuple[str, ...]]  # every cell is data
    total: int = 0  # rows there are in all (the table shows the first len(rows))
    hint: str = ""  # where to see them all (a command)

    @property
    def more(self) -> str:
        hidden = self.total - len(self.rows)
        return f"… and {hidden:,} more{': ' + self.hint if self.hint else ''}" if hidden > 0 else ""


@dataclass
class Doc:
    title: str
    blocks: list[Line | Table] = field(default_factory=list)
    payload: dict[str, Any] = field(default_factory=dict)  # structured fields for json channels

    def line(self, *segs: Seg | str) -> None:
        self.blocks.append(tuple(s if isinstance(s, Seg) else Seg(s) for s in segs))


def b(text: str) -> Seg:
    return Seg(text, "b")


def data(text: object, limit: int) -> Seg:
    return Seg(clean(text, limit), "data")


def code(text: str) -> Seg:
    return Seg(text, "code")


def _md(text: str) -> str:
    return _MD_PUNCT.sub(r"\\\1", text)


def _wa(text: str) -> str:
    return _WA_MARKS.sub("\u200b\\1", text)


def _seg(seg: Seg, fmt: str) -> str:
    if seg.style == "b" and fmt in ("markdown", "whatsapp") and seg.text != seg.text.rstrip():
        core = seg.text.rstrip()  # '**Who:** ' — a closing marker after a space is not a marker
        return _seg(Seg(core, "b"), fmt) + _seg(Seg(seg.text[len(core):]), fmt)
    t = seg.text
    if fmt == "html":
        t = html.escape(t, quote=True)
        return f"<b>{t}</b>" if seg.style == "b" else f"<code>{t}</code>" if seg.style == "code" else t
    if fmt == "markdown":
        t = _md(t)
        return f"**{t}**" if seg.style == "b" else t
    if fmt == "whatsapp":
        t = _wa(t)
        return f"*{t}*" if seg.style == "b" else t
    return t


def _line(line: Line, fmt: str) -> str:
    return "".join(_seg(s, fmt) for s in line)


def _table(t: Table, fmt: str) -> list[str]:
    if fmt == "html":
        head = "".join(f"<th align=\"left\">{html.escape(h)}</th>" for h in t.header)
        rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in t.rows)
        out = [f"<table border=\"1\" cellpadding=\"3\" cellspacing=\"0\"><tr>{head}</tr>{rows}</table>"]
    else:
        out = []
        for r in t.rows:
            cells = [f"{h}: {_seg(Seg(c, 'data'), fmt)}" for h, c in zip(t.header[1:], r[1:], strict=True) if c]
            first = _seg(Seg(r[0], "b"), fmt) if r else ""
            out.append(f"• {first} — " + ", ".join(cells))
    if t.more:
        out.append(_seg(Seg(t.more), fmt))
    return out


def render_body(doc: Doc, fmt: str, *, with_title: bool = False) -> str:
    """The body of `doc` in `fmt` (text, html, markdown, whatsapp); json: see `render_json`."""
    if fmt == "json":
        return render_json(doc)
    lines: list[str] = []
    if with_title:
        lines.append(_seg(Seg(doc.title, "b"), fmt))
    for block in doc.blocks:
        if isinstance(block, Table):
            lines.extend(_table(block, fmt))
        else:
            lines.append(_line(block, fmt))
    if fmt == "html":
        return "<html><body style=\"font-family:sans-serif\">" + "<br/>\n".join(lines) + "</body></html>"
    sep = "\n\n" if fmt == "markdown" else "\n"  # a CommonMark paragraph per line (Slack keeps them apart)
    return sep.join(lines)


def render_json(doc: Doc) -> str:
    return json.dumps({"title": doc.title, **doc.payload, "text": render_body(doc, "text")}, ensure_ascii=False,
                      default=str)


def render(doc: Doc, fmt: str, max_len: int, *, with_title: bool = False) -> str:
    """`render_body` within `max_len` characters: table rows are dropped from the end first (the message says how
    many more there are), then, as a last resort, the text is cut."""
    body = render_body(doc, fmt, with_title=with_title)
    tables = [t for t in doc.blocks if isinstance(t, Table)]
    while len(body) > max_len and tables and any(t.rows for t in tables):
        t = next(t for t in reversed(tables) if t.rows)
        t.total = max(t.total, len(t.rows))
        t.rows.pop()
        body = render_body(doc, fmt, with_title=with_title)
    if len(body) > max_len and fmt != "json":
        body = body[: max_len - 1] + ELLIPSIS
    return body
