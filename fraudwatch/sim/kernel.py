"""Linux netfilter LOG messages (the part after ``kernel: [uptime] ``), as the switch's iptables chains log them.

The rate-limit chain logs SIP packets above a per-source rate with ``SIP-RATELIMIT: ``; a string-match chain
that drops known scanner User-Agents logs ``SIP-DROP: ``; the default policy logs other dropped packets with
``FW-DROP: ``. IPv4 and IPv6 lines differ as the kernel prints them (IPv6 addresses fully expanded, ``TC``,
``HOPLIMIT`` and ``FLOWLBL`` instead of ``TOS``, ``TTL`` and ``ID``).
"""

from __future__ import annotations

import ipaddress
import random

from fraudwatch.sim.model import SWITCH_IPV4, SWITCH_IPV6

MAC = "52:54:00:12:34:56:52:54:00:65:43:21"  # the switch's NIC, then the upstream router


def udp_sip(rng: random.Random, prefix: str, src: str, sport: int, payload: int | None = None) -> str:
    """One logged UDP packet to port 5060 (``payload`` is the SIP message size)."""
    size = payload if payload is not None else rng.randint(380, 720)
    if ":" in src:
        return (f"{prefix}IN=eth0 OUT= MAC={MAC}:86:dd SRC={ipaddress.IPv6Address(src).exploded} "
                f"DST={ipaddress.IPv6Address(SWITCH_IPV6).exploded} LEN={size + 48} TC=0 "
                f"HOPLIMIT={rng.randint(40, 64)} FLOWLBL={rng.randint(0, 1 << 20)} PROTO=UDP SPT={sport} "
                f"DPT=5060 LEN={size + 8}")
    df = "DF " if rng.random() < 0.7 else ""
    return (f"{prefix}IN=eth0 OUT= MAC={MAC}:08:00 SRC={src} DST={SWITCH_IPV4} LEN={size + 28} TOS=0x00 "
            f"PREC=0x00 TTL={rng.randint(40, 120)} ID={rng.randint(0, 65535)} {df}PROTO=UDP SPT={sport} "
            f"DPT=5060 LEN={size + 8}")


def tcp_probe(rng: random.Random, src: str) -> str:
    """A dropped TCP SYN to some other service: the internet's background probing."""
    port = rng.choice((22, 23, 2323, 3389, 8080, 445, 1433))
    return (f"FW-DROP: IN=eth0 OUT= MAC={MAC}:08:00 SRC={src} DST={SWITCH_IPV4} LEN=44 TOS=0x00 PREC=0x00 "
            f"TTL={rng.randint(40, 250)} ID={rng.randint(1, 65535)} PROTO=TCP SPT={rng.randint(1024, 65535)} "
            f"DPT={port} WINDOW=1024 RES=0x00 SYN URGP=0")
