"""Where generators put their output: timestamped line bodies per file, CDR rows, and the incident being built.

Generators append in any order; the writers sort each stream by time (a stable sort, so equal timestamps keep
their insertion order and the output stays deterministic). Events outside the simulated period are dropped. While
an incident is open every event appended also counts towards that incident's first and last event time, which
become its label's start and end.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass(slots=True)
class Incident:
    """One labelled incident. ``first_ms``/``last_ms`` are the times of its first and last event, as they
    appear in the files (kern.log shows whole seconds, so its events count at the whole second)."""

    kind: str
    ips: list[str] = field(default_factory=list)
    accounts: list[str] = field(default_factory=list)
    notes: str = ""
    first_ms: int | None = None
    last_ms: int | None = None
    incident_id: str = ""

    def touch(self, ts: int) -> None:
        if self.first_ms is None or ts < self.first_ms:
            self.first_ms = ts
        if self.last_ms is None or ts > self.last_ms:
            self.last_ms = ts


@dataclass(slots=True)
class Cdr:
    """One ``e_cdr`` row (flowno is assigned when the rows are written, in stoptime order)."""

    starttime: int
    stoptime: int
    holdtime: int
    feetime: int
    fee_e4: int
    customeraccount: str
    customername: str
    callere164: str
    calleee164: str
    calleraccesse164: str
    calleeaccesse164: str
    callerip: str
    calleeip: str
    callergatewayid: str
    calleegatewayid: str
    callertogatewaye164: str
    calleetogatewaye164: str
    callerareacode: str
    calllevel: int
    enddirection: int
    endreason: int
    agentaccount: str
    agentfee_e4: int
    callercallid: str
    calleecallid: str


class Sink:
    def __init__(self, start_ms: int, end_ms: int) -> None:
        self.start_ms = start_ms
        self.end_ms = end_ms
        self.sip_lines: list[tuple[int, str]] = []
        self.mbx_lines: list[tuple[int, str]] = []
        self.kern_lines: list[tuple[int, str]] = []
        self.cdrs: list[Cdr] = []
        self.incidents: list[Incident] = []
        self.current: Incident | None = None

    def sip(self, ts: int, level: str, body: str) -> None:
        if not self.start_ms <= ts < self.end_ms:  # events are clipped to the simulated period
            return
        self.sip_lines.append((ts, f"[{level}] {body}"))
        if self.current is not None:
            self.current.touch(ts)

    def mbx(self, ts: int, level: str, body: str) -> None:
        if not self.start_ms <= ts < self.end_ms:
            return
        self.mbx_lines.append((ts, f"[{level}] {body}"))
        if self.current is not None:
            self.current.touch(ts)

    def kern(self, ts: int, message: str) -> None:
        if not self.start_ms <= ts < self.end_ms:
            return
        self.kern_lines.append((ts, message))
        if self.current is not None:
            self.current.touch(ts - ts % 1000)

    def cdr(self, row: Cdr) -> None:
        self.cdrs.append(row)
        if self.current is not None:
            self.current.touch(row.starttime)
            self.current.touch(row.stoptime)

    def open(self, kind: str, notes: str = "") -> Incident:
        incident = Incident(kind=kind, notes=notes)
        self.incidents.append(incident)
        return incident

    @contextmanager
    def within(self, incident: Incident | None) -> Iterator[None]:
        """Count everything appended inside the block towards ``incident`` (None: normal traffic)."""
        previous, self.current = self.current, incident
        try:
            yield
        finally:
            self.current = previous


def q(value: str) -> str:
    """A header-derived value as the formats quote it: backslash and double quote escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


def hostport(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def call_id(rng: random.Random, style: str, host: str) -> str:
    """Call-IDs in the shapes real user agents use (the host part is often a private LAN address: it is
    header text, never a transport address)."""
    if style == "desk":
        return f"{rng.getrandbits(32):x}-{rng.getrandbits(16):x}@192.168.1.{rng.randint(2, 250)}"
    if style == "soft":
        return f"{rng.getrandbits(128):032x}"
    if style == "scanner":
        return f"{rng.randrange(10**11, 10**12)}"
    return f"{rng.getrandbits(64):016x}@{host}"
