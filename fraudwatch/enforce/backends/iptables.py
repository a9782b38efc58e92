"""iptables / ip6tables: a chain of our own (`chain`, default FRAUDWATCH) jumped to from INPUT.

`IptablesBackend` is for hosts with neither nftables nor ipset: one DROP rule (per protocol) per banned address,
written with `iptables-restore --noflush` (declaring our chain there empties only our chain). It has no kernel
timeouts: the enforcer removes expired bans. The helpers here are shared with the ipset backend.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from fraudwatch.config.firewall import FirewallConfig
from fraudwatch.enforce.backends.base import Backend, Entry, Runner
from fraudwatch.enforce.targets import Target, TargetError, parse_target, render

TOOLS = {4: ("iptables", "iptables-restore"), 6: ("ip6tables", "ip6tables-restore")}
MULTIPORT_MAX = 15


def port_matches(cfg: FirewallConfig) -> list[str]:
    """The protocol/port part of our DROP rules: one per protocol and up to 15 ports ('' for scope all)."""
    if cfg.scope == "all":
        return [""]
    out = []
    for proto in cfg.protocols:
        for i in range(0, len(cfg.ports), MULTIPORT_MAX):
            ports = ",".join(str(p) for p in cfg.ports[i:i + MULTIPORT_MAX])
            out.append(f" -p {proto} -m multiport --dports {ports}")
    return out


def restore_chain(runner: Runner, version: int, chain: str, rules: Sequence[str], flush: bool) -> None:
    """Append `rules` ("-A CHAIN ...") to our chain in one `*-restore --noflush`; `flush` empties it first."""
    head = [f":{chain} - [0:0]"] if flush else []
    body = "\n".join(["*filter", *head, *rules, "COMMIT"]) + "\n"
    runner.run([TOOLS[version][1], "-w", "--noflush"], body)


def chain_exists(runner: Runner, version: int, chain: str) -> bool:
    return runner.run([TOOLS[version][0], "-w", "-S", chain], check=False).returncode == 0


def ensure_chain_and_jump(runner: Runner, version: int, chain: str) -> None:
    """Our chain exists and INPUT's first rule jumps to it (added once; the operator's rules stay)."""
    tool = TOOLS[version][0]
    if not chain_exists(runner, version, chain):
        runner.run([tool, "-w", "-N", chain])
    if runner.run([tool, "-w", "-C", "INPUT", "-j", chain], check=False).returncode != 0:
        runner.run([tool, "-w", "-I", "INPUT", "1", "-j", chain])


def remove_chain_and_jump(runner: Runner, version: int, chain: str) -> None:
    tool = TOOLS[version][0]
    for _ in range(16):  # bounded: one jump is ours, more would be duplicates from a crash
        if runner.run([tool, "-w", "-D", "INPUT", "-j", chain], check=False).returncode != 0:
            break
    if chain_exists(runner, version, chain):
        runner.run([tool, "-w", "-F", chain])
        runner.run([tool, "-w", "-X", chain])


class IptablesBackend(Backend):
    name = "iptables"
    kernel_timeouts = False

    def capacity(self, version: int) -> int | None:
        """`maxelem` addresses per family (each one DROP rule per protocol): iptables has no set to fill, but a
        chain of millions of rules is walked by every packet, so it is bounded like the sets."""
        return self.cfg.maxelem

    def _rules(self, net: Target) -> list[str]:
        return [f"-A {self.cfg.chain} -s {render(net)}{m} -j DROP" for m in port_matches(self.cfg)]

    def setup(self) -> None:
        for version in (4, 6):
            ensure_chain_and_jump(self.runner, version, self.cfg.chain)

    def list(self) -> dict[Target, float | None]:
        out: dict[Target, float | None] = {}
        for version in (4, 6):
            proc = self.runner.run([TOOLS[version][0], "-w", "-S", self.cfg.chain], check=False)
            if proc.returncode != 0:
                continue
            for line in proc.stdout.splitlines():
                parts = line.split()
                if len(parts) > 3 and parts[0] == "-A" and parts[1] == self.cfg.chain and parts[2] == "-s":
                    try:
                        out[parse_target(parts[3])] = None
                    except TargetError:
                        continue
        return out

    def apply(self, add: Sequence[Entry], remove: Sequence[Target], present: Collection[Target]) -> None:
        for version in (4, 6):
            adds = [e.net for e in add if e.net.version == version]
            drops = {n for n in remove if n.version == version}
            if drops:  # rules cannot be deleted in a batch without failing on a missing one: rewrite the chain
                keep = [n for n in self.list() if n.version == version and n not in drops]
                nets = list(dict.fromkeys([*keep, *adds]))
                restore_chain(self.runner, version, self.cfg.chain, [r for n in nets for r in self._rules(n)],
                              flush=True)
            elif adds:
                new = [n for n in dict.fromkeys(adds) if n not in present]
                if new:
                    restore_chain(self.runner, version, self.cfg.chain, [r for n in new for r in self._rules(n)],
                                  flush=False)

    def flush(self) -> None:
        for version in (4, 6):
            if chain_exists(self.runner, version, self.cfg.chain):
                self.runner.run([TOOLS[version][0], "-w", "-F", self.cfg.chain])

    def teardown(self) -> None:
        for version in (4, 6):
            remove_chain_and_jump(self.runner, version, self.cfg.chain)
