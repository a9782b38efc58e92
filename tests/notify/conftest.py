"""Loopback receivers for the notification tests: a real SMTP server (aiosmtpd) and a real HTTP server for
json:// webhooks, each on 127.0.0.1 and a free port; and helpers to make alerts and stores."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from fraudwatch.detect.decide import Alert
from fraudwatch.store.db import Store

T0 = dt.datetime(2026, 11, 20, 3, 0, tzinfo=dt.UTC)
HOSTILE = "<script>alert(1)</script>*bold*_x_ `rm` &amp; [link](http://evil)\nFAKE: line"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_alert(i: int, rule: str = "scanner-user-agent", severity: str = "warning", key: str | None = None,
               key_type: str = "ip", count: int = 10, **kw: Any) -> Alert:
    fields: dict[str, Any] = {
        "id": i, "rule": rule, "severity": severity, "key_type": key_type,
        "key": key if key is not None else f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}",
        "first_seen": T0, "last_seen": T0 + dt.timedelta(minutes=5), "detected_at": T0 + dt.timedelta(minutes=1),
        "count": count, "value": float(count), "action": "ban_ip", "trusted": False, "report_only": False,
        "description": "a SIP scanner's User-Agent", "evidence": {"ids": [1, 2], "user_agent": ["friendly-scanner"]},
    }
    fields.update(kw)
    return Alert(**fields)


class Clock:
    """A settable wall clock."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    st = Store(tmp_path / "store.duckdb")
    yield st
    st.close()


# --- SMTP --------------------------------------------------------------------------------------------------------

@dataclass
class Mailbox:
    messages: list[EmailMessage] = field(default_factory=list)
    port: int = 0
    arrived: threading.Event = field(default_factory=threading.Event)

    async def handle_DATA(self, server: Any, _session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        self.messages.append(msg)
        self.arrived.set()
        return "250 OK"

    def url(self) -> str:
        return f"mailto://127.0.0.1:{self.port}?to=noc@example.com&from=fraudwatch@example.com"

    @staticmethod
    def html(msg: EmailMessage) -> str:
        part = msg.get_body(("html",))
        assert part is not None, "no HTML body"
        return str(part.get_content())


@pytest.fixture
def smtp() -> Iterator[Mailbox]:
    box = Mailbox(port=free_port())
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    yield box
    controller.stop()


# --- HTTP --------------------------------------------------------------------------------------------------------

class Receiver:
    """An HTTP server on 127.0.0.1 that records JSON posts. `mode`: ok, fail (HTTP 500) or hang (answers only after
    `hang_for` seconds, or when released). It can be created before it is started: a channel that is down."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.posts: list[dict[str, Any]] = []
        self.mode = "ok"
        self.hang_for = 30.0
        self.release = threading.Event()
        self.arrived = threading.Event()
        self.started = threading.Event()  # a post came in (before it hangs or fails)
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    def url(self, scheme: str = "json") -> str:
        return f"{scheme}://127.0.0.1:{self.port}/hook"

    def messages(self) -> list[dict[str, Any]]:
        """The fraudwatch document inside each apprise JSON post (its `message`)."""
        return [json.loads(p["message"]) for p in self.posts]

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.started.set()
                if receiver.mode == "hang":
                    receiver.release.wait(receiver.hang_for)
                if receiver.mode == "fail":
                    self.send_response(500)
                    self.end_headers()
                    return
                receiver.posts.append(json.loads(body))
                receiver.arrived.set()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        server.block_on_close = False
        self.server = server
        self.thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@pytest.fixture
def http() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.stop()
