"""The backend interface, the command runner, and the dry-run backend.

A backend owns named kernel objects (a table, sets, a chain) and never touches anything else. Changes are
batched through one process's stdin (`nft -f -`, `ipset restore`, `iptables-restore --noflush`); commands are
argv lists, never shell strings, and every address in them comes from `targets.render`.
"""

from __future__ import annotations

import abc
import ipaddress
import json
import logging
import subprocess
from collections.abc import Collection, Sequence
from typing import NamedTuple

from fraudwatch.config.firewall import FirewallConfig
from fraudwatch.enforce.targets import Target, render
from fraudwatch.errors import FraudwatchError
from fraudwatch.netaddr import IPNetwork

log = logging.getLogger("fraudwatch.enforce")


class FirewallError(FraudwatchError):
    """A firewall command failed or is missing; str() is its first error line."""

    exit_code = 5


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
            proc = subprocess.run(full, input=stdin, capture_output=True, text=True, timeout=self.timeout,
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


class DryRunBackend(Backend):
    """Changes nothing: keeps the would-be kernel state in memory and records what it would have done."""

    name = "dry-run"

    def __init__(self, cfg: FirewallConfig, runner: Runner) -> None:
        super().__init__(cfg, runner)
        self.commands: list[str] = []
        self.state: dict[Target, float | None] = {}

    def setup(self) -> None:
        self.commands.append(f"setup table {self.cfg.table} sets {self.cfg.set}4/{self.cfg.set}6")

    def list(self) -> dict[Target, float | None]:
        return dict(self.state)

    def apply(self, add: Sequence[Entry], remove: Sequence[Target], present: Collection[Target]) -> None:
        for net in remove:
            self.state.pop(net, None)
            self.commands.append(f"delete {render(net)}")
        for e in add:
            self.state[e.net] = float(e.timeout)
            self.commands.append(f"add {render(e.net)} timeout {e.timeout}s")
        del self.commands[:-10_000]

    def flush(self) -> None:
        self.state.clear()
        self.commands.append("flush")

    def teardown(self) -> None:
        self.state.clear()
        self.commands.append("teardown")


def make_backend(cfg: FirewallConfig, prefix: Sequence[str] = (), in_process: bool = False) -> Backend:
    """`in_process`: nftables element changes through its library in this process (see fraudwatch.enforce.nft)."""
    runner = Runner(prefix)
    if cfg.backend == "nftables":
        from fraudwatch.enforce.nft import NftablesBackend

        return NftablesBackend(cfg, runner, in_process)
    if cfg.backend == "ipset":
        from fraudwatch.enforce.ipset import IpsetBackend

        return IpsetBackend(cfg, runner)
    if cfg.backend == "iptables":
        from fraudwatch.enforce.iptables import IptablesBackend

        return IptablesBackend(cfg, runner)
    return DryRunBackend(cfg, runner)


def host_addresses(runner: Runner) -> list[IPNetwork]:
    """This host's own addresses (`ip -j addr`, in the runner's namespace): never banned."""
    try:
        proc = runner.run(["ip", "-j", "addr", "show"], check=False)
        data = json.loads(proc.stdout or "[]") if proc.returncode == 0 else []
    except (FirewallError, ValueError) as exc:
        log.warning("firewall: cannot read this host's addresses: %s", exc)
        return []
    out: list[IPNetwork] = []
    for link in data:
        for info in link.get("addr_info", []):
            try:
                out.append(ipaddress.ip_network(info.get("local", "")))
            except ValueError:
                continue
    return out
