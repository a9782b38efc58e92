"""Two network namespaces joined by a veth pair, a UDP listener on one side and a sender on the other.

"attacker" side A: 192.0.2.2, 192.0.2.3 (to ban), 198.51.100.2 (trusted), 2001:db8::2 (to ban)
"switch" side B:   192.0.2.1, 198.51.100.1, 2001:db8::1, listening on UDP 5060 and 9999
Only TEST-NET / documentation addresses. Every wait is bounded in count and time; the namespaces are deleted in
the fixture's teardown whatever happens.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest

LISTENER = r"""
import select, socket, sys, time
socks = []
for port in (5060, 9999):
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port))
    socks.append(s)
print("ready", flush=True)
deadline = time.monotonic() + float(sys.argv[1])
while time.monotonic() < deadline:
    r, _, _ = select.select(socks, [], [], 0.2)
    for s in r:
        data, addr = s.recvfrom(2048)
        src = addr[0][7:] if addr[0].startswith("::ffff:") else addr[0]
        print(src, s.getsockname()[1], data.decode("ascii", "replace"), flush=True)
"""

SENDER = r"""
import socket, sys
src, dst, port, token = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.bind((src, 0))
for _ in range(3):
    s.sendto(token.encode(), (dst, port))
"""


def sh(*argv: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, check=check, timeout=30)


def require_root_and(*tools: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces and firewall changes)")
    missing = [t for t in ("ip", *tools) if shutil.which(t) is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")


@dataclass
class NetPair:
    a: str
    b: str
    listener: subprocess.Popen[str] | None = None
    lines: queue.Queue[str] = field(default_factory=queue.Queue)

    @property
    def prefix_b(self) -> list[str]:
        return ["ip", "netns", "exec", self.b]

    def in_b(self, *argv: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return sh(*self.prefix_b, *argv, check=check, stdin=stdin)

    def start_listener(self, seconds: float = 120) -> None:
        self.listener = subprocess.Popen([*self.prefix_b, sys.executable, "-u", "-c", LISTENER, str(seconds)],
                                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.listener.stdout is not None
        out = self.listener.stdout

        def pump() -> None:
            for line in out:
                self.lines.put(line.strip())

        threading.Thread(target=pump, daemon=True).start()
        first = self.lines.get(timeout=10)
        assert first == "ready"

    def reaches(self, src: str, port: int = 5060, wait: float = 0.6) -> bool:
        """Send 3 datagrams from `src` (side A) to side B:`port`; True when the listener got one in `wait` s."""
        dst = "2001:db8::1" if ":" in src else ("198.51.100.1" if src.startswith("198.51.100.") else "192.0.2.1")
        token = uuid.uuid4().hex[:12]
        sh("ip", "netns", "exec", self.a, sys.executable, "-c", SENDER, src, dst, str(port), token)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line.endswith(token):
                assert line.split()[0] == src, line
                return True
        return False


@contextmanager
def netpair() -> Iterator[NetPair]:
    tag = uuid.uuid4().hex[:6]
    pair = NetPair(f"fwtA{tag}", f"fwtB{tag}")
    created: list[str] = []
    try:
        for ns in (pair.a, pair.b):
            proc = sh("ip", "netns", "add", ns, check=False)
            if proc.returncode != 0:
                pytest.skip(f"cannot create a network namespace: {proc.stderr.strip()}")
            created.append(ns)
        for ns in created:  # no duplicate address detection: addresses usable at once
            for conf in ("all", "default"):
                sh("ip", "netns", "exec", ns, "sysctl", "-q", "-w", f"net.ipv6.conf.{conf}.accept_dad=0")
        va, vb = f"va{tag}", f"vb{tag}"
        sh("ip", "link", "add", "name", va, "netns", pair.a, "type", "veth", "peer", "name", vb, "netns", pair.b)
        for ns, dev, addrs in ((pair.a, va, ("192.0.2.2/24", "192.0.2.3/24", "198.51.100.2/24")),
                               (pair.b, vb, ("192.0.2.1/24", "198.51.100.1/24"))):
            run = ["ip", "netns", "exec", ns]
            for addr in addrs:
                sh(*run, "ip", "addr", "add", addr, "dev", dev)
            v6 = "2001:db8::2/64" if ns == pair.a else "2001:db8::1/64"
            sh(*run, "ip", "-6", "addr", "add", v6, "dev", dev, "nodad")
            sh(*run, "ip", "link", "set", "lo", "up")
            sh(*run, "ip", "link", "set", dev, "up")
        # a static neighbour entry: the first IPv6 datagram would otherwise wait about 1 s on discovery
        mac = json.loads(sh("ip", "-n", pair.b, "-j", "link", "show", vb).stdout)[0]["address"]
        sh("ip", "-n", pair.a, "-6", "neigh", "replace", "2001:db8::1", "lladdr", mac, "dev", va, "nud", "permanent")
        yield pair
    finally:
        if pair.listener is not None:
            pair.listener.kill()
            pair.listener.wait(timeout=10)
        for ns in created:
            sh("ip", "netns", "del", ns, check=False)
