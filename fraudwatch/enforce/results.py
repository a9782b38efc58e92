"""What the enforcer reports: reconcile reports, refusals as errors, and the texts it writes for people."""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass, field

from fraudwatch.errors import ExitStatus, FraudwatchError


class BanRefused(FraudwatchError):
    """A ban the allowlist or the input forbids; str() says which and why."""

    exit_code: int = ExitStatus.REFUSED


class NotBanned(FraudwatchError):
    """`bans remove` of a network no active ban names."""

    exit_code: int = ExitStatus.FAILED


@dataclass
class ReconcileReport:
    at: dt.datetime
    active: int = 0
    kernel: int = 0
    added: int = 0  # active bans missing from the kernel, re-applied
    renewed: int = 0  # kernel entries whose timeout would have run out before the ban
    removed: int = 0  # kernel entries no active ban explains
    expired: int = 0  # bans whose time was up, closed in the store
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        text = (f"{self.active} active, {self.kernel} in the kernel before; re-applied {self.added}, renewed "
                f"{self.renewed}, removed {self.removed} stale, expired {self.expired} ({self.seconds * 1000:.0f} ms)")
        return text + (f"; errors: {'; '.join(self.errors)}" if self.errors else "")


@functools.lru_cache(maxsize=4096)
def when(t: float) -> str:
    """Epoch seconds as people read them (cached: a batch's bans mostly share their expiry)."""
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def span(seconds: int) -> str:
    out, rest = [], int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            out.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(out[:2]) or "0s"


def err_suffix(error: str | None) -> str:
    return f"; firewall error, retried at the next reconcile: {error}" if error else ""
