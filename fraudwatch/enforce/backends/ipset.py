"""ipset: two `hash:net` sets with per-element timeouts (`<set>4`, `<set>6`), sized by `maxelem`, matched by
one rule per protocol in our own iptables/ip6tables chain.

Changes go through `ipset -exist restore` (adding a present element renews its timeout; deleting a missing one
is not an error). A full set ("Hash is full") is reported as `SetFullError`, and the enforcer refuses bans beyond
`maxelem` before they reach the kernel.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from fraudwatch.enforce.backends.base import Backend, Entry, FirewallError, SetFullError
from fraudwatch.enforce.backends.iptables import (
    ensure_chain_and_jump,
    port_matches,
    remove_chain_and_jump,
    restore_chain,
)
from fraudwatch.enforce.targets import Target, TargetError, parse_target, render

FULL_MARKERS = ("hash is full", "maximal number of elements")


class IpsetBackend(Backend):
    name = "ipset"

    def set_name(self, version: int) -> str:
        return f"{self.cfg.set}{version}"

    def capacity(self, version: int) -> int | None:
        return self.cfg.maxelem

    def _create(self, name: str, family: str) -> str:
        hashsize = 1024
        while hashsize < self.cfg.maxelem // 4 and hashsize < 1 << 20:
            hashsize <<= 1
        return f"create {name} hash:net family {family} timeout 0 maxelem {self.cfg.maxelem} hashsize {hashsize}"

    def setup(self) -> None:
        for version, family in ((4, "inet"), (6, "inet6")):
            try:
                self._restore([self._create(self.set_name(version), family)])
            except FirewallError as exc:
                if "already exists" not in str(exc):
                    raise
                self._resize(version, family)  # it exists with other parameters: maxelem changed
        for version in (4, 6):
            ensure_chain_and_jump(self.runner, version, self.cfg.chain)
            rules = [f"-A {self.cfg.chain} -m set --match-set {self.set_name(version)} src{m} -j DROP"
                     for m in port_matches(self.cfg)]
            restore_chain(self.runner, version, self.cfg.chain, rules, flush=True)

    def _resize(self, version: int, family: str) -> None:
        """Re-create our set with the configured size, its elements (and their time left) copied, then swapped in
        atomically: the iptables rules keep matching the name, and no ban is off in between."""
        name = self.set_name(version)
        tmp = f"{name}_resize"
        self.runner.run(["ipset", "destroy", tmp], check=False)  # left over from an interrupted resize
        saved = self.runner.run(["ipset", "save", name]).stdout.splitlines()
        copy = [f"add {tmp} {ln.split(' ', 2)[2]}" for ln in saved if ln.startswith(f"add {name} ")]
        try:
            self._restore([self._create(tmp, family), *copy, f"swap {tmp} {name}", f"destroy {tmp}"])
        except FirewallError:
            self.runner.run(["ipset", "destroy", tmp], check=False)
            raise

    def _restore(self, lines: Sequence[str]) -> None:
        try:
            self.runner.run(["ipset", "-exist", "restore"], "\n".join(lines) + "\n")
        except FirewallError as exc:
            text = str(exc)
            if any(m in text.lower() for m in FULL_MARKERS):
                raise SetFullError(f"ipset is full (maxelem {self.cfg.maxelem}): {text}") from None
            raise

    def list(self) -> dict[Target, float | None]:
        out: dict[Target, float | None] = {}
        for version in (4, 6):
            proc = self.runner.run(["ipset", "save", self.set_name(version)], check=False)
            if proc.returncode != 0:
                continue  # no set: nothing of ours
            for line in proc.stdout.splitlines():
                parts = line.split()
                if len(parts) < 3 or parts[0] != "add" or parts[1] != self.set_name(version):
                    continue
                try:
                    net = parse_target(parts[2])
                except TargetError:
                    continue
                left: float | None = None
                if "timeout" in parts[3:]:
                    i = parts.index("timeout")
                    left = float(parts[i + 1]) if i + 1 < len(parts) and parts[i + 1].isdigit() else None
                    left = None if left == 0 else left
                out[net] = left
        return out

    def apply(self, add: Sequence[Entry], remove: Sequence[Target], present: Collection[Target]) -> None:
        lines = [f"del {self.set_name(n.version)} {render(n)}" for n in remove]
        lines += [f"add {self.set_name(e.net.version)} {render(e.net)} timeout {max(1, e.timeout)}" for e in add]
        if lines:
            self._restore(lines)

    def flush(self) -> None:
        for version in (4, 6):
            self.runner.run(["ipset", "flush", self.set_name(version)], check=False)

    def teardown(self) -> None:
        for version in (4, 6):
            remove_chain_and_jump(self.runner, version, self.cfg.chain)
            self.runner.run(["ipset", "destroy", self.set_name(version)], check=False)
