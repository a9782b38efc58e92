"""A fast writer of large sipproxy.log files for the ingest benchmark.

Unlike :func:`fraudwatch.sim.simulate` this models nothing: it writes lines of the vos3000-sipproxy grammar
(requests, responses, debug and STAT lines) from a few thousand sources, in the proportions of a switch under a
REGISTER flood, as fast as Python can join strings. Time advances about 1.1 lines per millisecond from
2026-11-01 00:00:00 UTC. Sources come from 198.19.0.0/16 (the benchmark range), 198.51.100.0/24 and
2001:db8:bad::/48.
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

from fraudwatch.sim.context import SCANNER_UAS
from fraudwatch.sim.model import DESK_UAS, SOFT_UAS

START = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
CYCLE = 10_000 * 9  # lines per write: whole seconds of the 1.11 lines/ms pace

# Per mille of each line kind, in the order of _body: REGISTER, 401, 403, 200 (REGISTER), INVITE, 407,
# 200 (INVITE), OPTIONS, BYE, 486, DEBUG, STAT.
_WEIGHTS = (330, 250, 50, 100, 80, 40, 30, 40, 20, 20, 39, 1)


def _sources(rng: random.Random) -> list[tuple[str, str]]:
    """(host:port as logged, bare address) for 4096 sources: 198.19/16, 198.51.100/24 and IPv6."""
    out = []
    for _ in range(2800):
        ip = f"198.19.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        out.append((f"{ip}:{rng.choice((5060, 5060, 5070, rng.randint(1024, 65000)))}", ip))
    for i in range(1, 255):
        out.append((f"198.51.100.{i}:{rng.randint(1024, 65000)}", f"198.51.100.{i}"))
    while len(out) < 4096:
        ip = f"2001:db8:bad:{rng.randrange(1 << 16):x}::{rng.randrange(1, 1 << 16):x}"
        out.append((f"[{ip}]:5060", ip))
    rng.shuffle(out)
    return out


def _body(rng: random.Random, kind: int, hp: str, ip: str, user: str, ua: str) -> tuple[str, str]:
    """One line after its timestamp, split where the line's serial number goes (inside the Call-ID)."""
    if kind == 0:
        return f' [INFO] RECV REGISTER from {hp} user="{user}" callid="', f'@{ip}" ua="{ua}"\n'
    if kind == 1:
        return f' [INFO] SEND 401 Unauthorized to {hp} method=REGISTER user="{user}" callid="', f'@{ip}"\n'
    if kind == 2:
        return (f' [WARN] SEND 403 Forbidden to {hp} method=REGISTER user="{user}" callid="',
                f'@{ip}" reason="password error"\n')
    if kind == 3:
        return f' [INFO] SEND 200 OK to {hp} method=REGISTER user="{user}" callid="', f'@{ip}" expires=3600\n'
    if kind == 4:
        callee = f"0044740{rng.randrange(10_000_000):07d}"
        return (f' [INFO] RECV INVITE from {hp} user="{user}" caller="{user}" callee="{callee}" callid="',
                f'@{ip}" ua="{ua}"\n')
    if kind == 5:
        return (f' [INFO] SEND 407 Proxy Authentication Required to {hp} method=INVITE user="{user}" callid="',
                f'@{ip}"\n')
    if kind == 6:
        return f' [INFO] SEND 200 OK to {hp} method=INVITE callid="', f'@{ip}"\n'
    if kind == 7:
        return f' [INFO] RECV OPTIONS from {hp} user="100" callid="', f'" ua="{ua}"\n'
    if kind == 8:
        return f' [INFO] RECV BYE from {hp} user="{user}" callid="', f'@{ip}" ua="{ua}"\n'
    if kind == 9:
        return f' [INFO] SEND 486 Busy Here to {hp} method=INVITE callid="', f'@{ip}"\n'
    if kind == 10:
        return " [DEBUG] timer T1 fired for transaction z9hG4bK", "\n"
    return " [INFO] STAT transactions=", f" dialogs={rng.randint(0, 300)} registrations={rng.randint(300, 500)}\n"


POOL_BITS = 15


def write_sipproxy_flood(path: Path, lines: int, seed: int) -> int:
    """Write ``lines`` sipproxy lines to ``path`` (deterministic for ``seed``); return the number written.

    Speed comes from building 32768 line bodies up front (random kind, source, user, User-Agent) and then only
    joining a timestamp, a body and a serial number per line; the serial keeps every Call-ID unique.
    """
    rng = random.Random(f"fraudwatch.sim.flood:{seed}")  # noqa: S311  # nosec B311 # simulation, seeded for repeatable data: not cryptography
    sources = _sources(rng)
    users = [str(rng.randint(100, 9999)) for _ in range(2044)] + ["admin", "test", "1000", "100"]
    uas = [*SCANNER_UAS, *DESK_UAS, *SOFT_UAS]
    heads, tails = [], []
    for kind in rng.choices(range(len(_WEIGHTS)), _WEIGHTS, k=1 << POOL_BITS):
        hp, ip = rng.choice(sources)
        head, tail = _body(rng, kind, hp, ip, rng.choice(users), rng.choice(uas))
        heads.append(head)
        tails.append(tail)
    # Line i is written at millisecond i*9//10: the pattern repeats every CYCLE lines (= CYCLE*9/10000 s).
    offsets = [(i * 9 // 10) // 1000 for i in range(CYCLE)]
    millis = [f".{(i * 9 // 10) % 1000:03d}" for i in range(CYCLE)]
    base_s = int(START.timestamp())
    written = 0
    getrandbits = rng.getrandbits
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        while written < lines:
            n = min(CYCLE, lines - written)
            first_s = base_s + written * 9 // 10 // 1000
            stamps = [dt.datetime.fromtimestamp(first_s + k, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
                      for k in range(offsets[-1] + 1)]
            picks = [getrandbits(POOL_BITS) for _ in range(n)]
            fh.write("".join([
                f"{stamps[o]}{m}{heads[p]}{i}{tails[p]}"
                for o, m, p, i in zip(offsets, millis, picks, range(written, written + n), strict=False)
            ]))
            written += n
    return written
