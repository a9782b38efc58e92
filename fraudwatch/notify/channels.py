"""Channels: an apprise plugin per configured URL, the markup its messages are rendered in, and a send that
never takes longer than its timeout (a hung send is abandoned on a daemon thread, and the channel counts as busy
until it returns)."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from fraudwatch.config.alerts import ChannelConfig
from fraudwatch.errors import ConfigError
from fraudwatch.notify.render import Doc, render

_WEBHOOK_SCHEMES = {"json", "jsons"}


@dataclass
class Channel:
    name: str
    plugin: Any | None  # apprise NotifyBase; None when the channel cannot be opened (`error` says why)
    fmt: str  # text, html, markdown, whatsapp or json (see render.py)
    title_ok: bool  # the service shows a title apart from the body
    max_len: int
    error: str | None = None
    busy: threading.Thread | None = field(default=None, repr=False)  # an abandoned send still running

    def message(self, doc: Doc) -> tuple[str, str, str]:
        """(title, body, apprise body_format) of `doc` for this channel."""
        body = render(doc, self.fmt, self.max_len, with_title=not self.title_ok)
        body_format = {"json": "text", "whatsapp": "text"}.get(self.fmt, self.fmt)
        return (doc.title if self.title_ok else ""), body, body_format


def _choose(plugin: Any, scheme: str) -> str:
    if scheme in _WEBHOOK_SCHEMES:
        return "json"
    formats = [str(getattr(f, "value", f)) for f in plugin._formats()]
    if scheme == "whatsapp":
        return "whatsapp"
    for f in formats:  # the service's own preference order
        if f in ("html", "markdown", "text"):
            return f
    return "text"


def open_channel(cfg: ChannelConfig, timeout: float) -> Channel:
    """The channel's plugin, with apprise's own socket timeouts set to `timeout`. A channel whose URL cannot be
    resolved (an unset environment variable) comes back with `error` set: it renders as text and fails to send."""
    import apprise

    try:
        url = cfg.resolved_url()
    except ConfigError as exc:
        return Channel(cfg.name, None, "text", True, 4000, error=str(exc))
    plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    if plugin is None:
        return Channel(cfg.name, None, "text", True, 4000, error=f"channel '{cfg.name}': apprise cannot use its URL")
    for attr in ("socket_connect_timeout", "socket_read_timeout"):
        if hasattr(plugin, attr):
            setattr(plugin, attr, timeout)
    # apprise paces consecutive sends of one plugin by sleeping (5.5 s for e-mail); that sleep must stay well
    # inside the send timeout, or a send abandoned at the timeout would still go out later, and again on retry
    rate = float(getattr(plugin, "request_rate_per_sec", 0) or 0)
    plugin.request_rate_per_sec = min(rate, 1.0, timeout / 4)
    scheme = url.split("://", 1)[0].lower()
    title_max = int(getattr(plugin, "title_maxlen", 0) or 0)
    body_max = int(getattr(plugin, "body_maxlen", 0) or 0) or 32768
    return Channel(cfg.name, plugin, _choose(plugin, scheme), title_max > 0 or scheme in _WEBHOOK_SCHEMES,
                   min(body_max, 32768))


class _ThreadErrors(logging.Handler):
    """Collects apprise's warnings and errors logged by one thread (apprise reports failures through logging)."""

    def __init__(self, thread: int) -> None:
        super().__init__(logging.WARNING)
        self.thread = thread
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.messages.append(record.getMessage())


def _send_now(channel: Channel, title: str, body: str, body_format: str) -> str | None:
    """Send in this thread; None on success, else the reason."""
    if channel.plugin is None:
        return channel.error or "channel unavailable"
    logger = logging.getLogger("apprise")
    handler = _ThreadErrors(threading.get_ident())
    logger.addHandler(handler)
    try:
        ok = channel.plugin.notify(body=body, title=title, body_format=body_format)
    except Exception as exc:  # a plugin bug must not kill the dispatcher
        return f"{type(exc).__name__}: {exc}"
    finally:
        logger.removeHandler(handler)
    if ok:
        return None
    reasons = [m for m in handler.messages if m.strip()]
    return "; ".join(reasons[-2:])[:500] if reasons else "the service did not accept the message"


def send(channel: Channel, title: str, body: str, body_format: str, timeout: float,
         stop: threading.Event | None = None) -> str | None:
    """Send with a hard time limit; None on success, else the reason. A send still running at `timeout` (or
    when `stop` is set) is abandoned on its daemon thread and the channel stays busy until it ends."""
    if channel.busy is not None:
        if channel.busy.is_alive():
            return "an earlier send to this channel is still hanging"
        channel.busy = None
    result: list[str | None] = []
    done = threading.Event()

    def work() -> None:
        try:
            result.append(_send_now(channel, title, body, body_format))
        finally:
            done.set()

    worker = threading.Thread(target=work, name=f"fraudwatch-send-{channel.name}", daemon=True)
    worker.start()
    deadline = time.monotonic() + timeout
    while not done.wait(min(0.05, max(deadline - time.monotonic(), 0))):
        if time.monotonic() >= deadline or (stop is not None and stop.is_set()):
            channel.busy = worker
            return f"no answer within {timeout:g}s (send abandoned)"
    return result[0] if result else "send failed"
