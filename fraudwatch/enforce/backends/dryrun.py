"""The dry-run backend: changes nothing, keeps the would-be kernel state in memory (`[firewall] backend = "dry-run"`,
and the default)."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from fraudwatch.config.firewall import FirewallConfig
from fraudwatch.enforce.backends.base import Backend, Entry, Runner
from fraudwatch.enforce.targets import Target, render


class DryRunBackend(Backend):
    """Changes nothing: keeps the would-be kernel state in memory and records what it would have done."""

    name = "dry-run"
    changes_firewall = False

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
