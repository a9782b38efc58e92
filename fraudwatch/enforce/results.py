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


# What the enforcer says it did. With the dry-run backend nothing reaches a firewall, and its texts never say
# "banned": a ban is "would ban ... (dry run)" (the ban is recorded in the store and listed, so `bans` and the
# reconcile work as they would, and a notification says plainly that nothing was blocked).
DRY_RUN = " (dry run)"


@dataclass(frozen=True)
class Words:
    """The verbs of the enforcer's texts, for a backend that bans or for the dry run."""

    dry_run: bool = False

    @property
    def ban(self) -> str:
        return "would ban" if self.dry_run else "banned"

    @property
    def extend(self) -> str:
        return "would extend" if self.dry_run else "extended"

    @property
    def already(self) -> str:
        return "already a dry-run ban" if self.dry_run else "already banned"

    @property
    def note(self) -> str:
        return DRY_RUN if self.dry_run else ""


def is_new_ban(text: str) -> bool:
    """Whether an enforcer text says a new ban was made (or, in a dry run, would have been)."""
    return text.startswith(("banned ", "would ban "))


def is_ban(text: str) -> bool:
    """Whether an enforcer text says a ban was made or extended (or would have been)."""
    return text.startswith(("banned ", "would ban ", "extended ", "would extend "))


def err_suffix(error: str | None) -> str:
    return f"; firewall error, retried at the next reconcile: {error}" if error else ""
