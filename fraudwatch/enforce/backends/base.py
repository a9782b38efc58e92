"""The backend contract: what the enforcer needs from a firewall, the errors a backend raises, and the command
runner every backend is given.

A backend owns named kernel objects (a table, sets, a chain) and never touches anything else. Changes are
batched through one process's stdin (`nft -f -`, `ipset restore`, `iptables-restore --noflush`); commands are
argv lists, never shell strings, and every address in them comes from `targets.render`.
"""

from __future__ import annotations

import abc
import subprocess  # nosec B404 # the firewall commands, run as argv lists (never a shell)
from collections.abc import Collection, Sequence
from typing import NamedTuple

from fraudwatch.config.firewall import FirewallConfig
from fraudwatch.enforce.targets import Target
from fraudwatch.errors import ExitStatus, FraudwatchError


class FirewallError(FraudwatchError):
    """A firewall command failed or is missing; str() is its first error line."""

    exit_code: int = ExitStatus.FIREWALL


class SetFullError(FirewallError):
    """An ipset reached its maxelem."""


class Entry(NamedTuple):
    """One element to put in the kernel: a network and its kernel timeout in seconds."""

    net: Target
    timeout: int


class Runner:
    """Runs argv lists (optionally under a prefix such as `ip netns exec NS`), feeding a batch on stdin."""

    def __init__(self, prefix: Sequence[str] = (), timeout: float = 60.0) -> None:
        self.prefix = tuple(prefix)
        self.timeout = timeout

    def run(self, argv: Sequence[str], stdin: str | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        full = (*self.prefix, *argv)
        if not all(isinstance(a, str) and "\0" not in a for a in full):
            raise FirewallError("refusing a command with a non-text argument")
        try:
            proc = subprocess.run(full, input=stdin, capture_output=True, text=True, timeout=self.timeout,  # nosec B603 # argv list from the backend's fixed commands; addresses validated before
                                  check=False)
        except FileNotFoundError:
            raise FirewallError(f"{full[0]}: command not found (install it, or choose another [firewall] "
                                "backend)") from None
        except subprocess.TimeoutExpired:
            raise FirewallError(f"{argv[0]}: no answer within {self.timeout:.0f} s") from None
        if check and proc.returncode != 0:
            raise FirewallError(f"{argv[0]} failed: {first_error(proc.stderr or proc.stdout)}")
        return proc


def first_error(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in lines:
        if "error" in ln.lower():
            return ln[:300]
    return lines[0][:300] if lines else "(no message)"


class Backend(abc.ABC):
    """What the enforcer needs from a firewall. Implementations touch only their own objects."""

    name = "abstract"
    #: kernel entries expire by themselves (nftables, ipset); False: the enforcer removes them (iptables)
    kernel_timeouts = True
    #: False for the dry run: nothing reaches a firewall, and what the enforcer reports says "would ban"
    changes_firewall = True

    def __init__(self, cfg: FirewallConfig, runner: Runner) -> None:
        self.cfg = cfg
        self.runner = runner

    def capacity(self, version: int) -> int | None:
        """How many entries one family's set can hold (None: no fixed limit)."""
        return None

    @abc.abstractmethod
    def setup(self) -> None:
        """Create our table/sets/chain if missing and (re)write our own rules; idempotent."""

    @abc.abstractmethod
    def list(self) -> dict[Target, float | None]:
        """What is in the kernel: network -> seconds until its kernel timeout (None: no timeout)."""

    @abc.abstractmethod
    def apply(self, add: Sequence[Entry], remove: Sequence[Target], present: Collection[Target]) -> None:
        """One batch: add entries (replacing those in `present`, so their timeout is renewed) and remove
        networks (all in `present`). Atomic where the tool is."""

    @abc.abstractmethod
    def flush(self) -> None:
        """Empty our sets/chain (our rules stay)."""

    @abc.abstractmethod
    def teardown(self) -> None:
        """Remove everything we created."""
