"""nftables: our own `table inet <table>` with four sets and one input chain, changed through `nft -f -`.

Sets: `<set>4` / `<set>6` hold single addresses (hash, `flags timeout`), `<set>4net` / `<set>6net` hold networks
(`flags interval, timeout`; the kernel refuses overlapping intervals, which the enforcer avoids). Every element
carries its own timeout, so a ban lifts in the kernel even while fraudwatch is down. The chain hooks `input`
at `priority` (default -10: before the usual filter chains at 0) and drops members, on the SIP ports or on all.
Nothing outside our table is read or written.

Element changes (`apply`) can go through libnftables in this process (`in_process`: the sentry's and the
watcher's) instead of an `nft` process: the same library and script, without a fork and exec of nft for every
batch — a few milliseconds of CPU each, which under a flood are paid on most ticks. Not with a command prefix
(`ip netns exec`): the library works in this process's own network namespace.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import threading
from collections.abc import Collection, Iterable, Sequence
from typing import Any

from fraudwatch.config.firewall import FirewallConfig
from fraudwatch.enforce.backends.base import Backend, Entry, FirewallError, Runner, SetFullError, first_error
from fraudwatch.enforce.targets import Target, TargetError, parse_target, render

FULL_MARKER = "Too many open files"  # nft's text for ENFILE: a set at its `size` refuses a new element
CHUNK = 2000  # elements per statement: keeps each line of the batch a reasonable size


class Libnftables:
    """libnftables (what `nft` itself runs on), one context: `run` a script as `nft -f -` would."""

    def __init__(self) -> None:
        lib = ctypes.CDLL("libnftables.so.1")  # installed with nftables (Debian's libnftables1)
        lib.nft_ctx_new.restype, lib.nft_ctx_new.argtypes = ctypes.c_void_p, [ctypes.c_uint32]
        lib.nft_ctx_buffer_output.argtypes = lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
        lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
        lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
        self.lib = lib
        self.ctx = lib.nft_ctx_new(0)
        if not self.ctx:
            raise OSError("nft_ctx_new failed")
        lib.nft_ctx_buffer_output(self.ctx)  # kept, not printed
        lib.nft_ctx_buffer_error(self.ctx)
        self.lock = threading.Lock()  # one context: one script at a time

    def run(self, script: str) -> None:
        with self.lock:
            code = self.lib.nft_run_cmd_from_buffer(self.ctx, script.encode())
            error = (self.lib.nft_ctx_get_error_buffer(self.ctx) or b"").decode(errors="replace")
        if code != 0:
            raise FirewallError(f"nft failed: {first_error(error)}")


class NftablesBackend(Backend):
    name = "nftables"

    def __init__(self, cfg: FirewallConfig, runner: Runner, in_process: bool = False) -> None:
        super().__init__(cfg, runner)
        self.lib: Libnftables | None = None
        if in_process and not runner.prefix:
            with contextlib.suppress(OSError):  # no library: `nft` processes, as without `in_process`
                self.lib = Libnftables()

    def capacity(self, version: int) -> int | None:
        """Each set is created with `size maxelem` (the kernel refuses elements beyond it); the host and network
        sets of a family are counted together, so neither can be full while the enforcer thinks there is room."""
        return self.cfg.maxelem

    def _sets(self) -> dict[str, tuple[int, bool]]:
        s = self.cfg.set
        return {f"{s}4": (4, True), f"{s}4net": (4, False), f"{s}6": (6, True), f"{s}6net": (6, False)}

    def _set_for(self, net: Target) -> str:
        return f"{self.cfg.set}{net.version}{'' if net.is_host else 'net'}"

    def setup_script(self, replace_chain: bool = False) -> str:
        """Our table, sets, chain and rules; `replace_chain` also re-creates the chain (its priority changed),
        in the same transaction, so bans are never unenforced in between."""
        c, t = self.cfg, f"inet {self.cfg.table}"
        lines = [f"add table {t}"]
        for name, (version, host) in self._sets().items():
            flags = "timeout" if host else "interval, timeout"
            lines.append(f"add set {t} {name} {{ type ipv{version}_addr; size {c.maxelem}; flags {flags}; }}")
        if replace_chain:
            lines += [f"flush chain {t} input", f"delete chain {t} input"]
        lines.append(f"add chain {t} input {{ type filter hook input priority {c.priority}; policy accept; }}")
        lines.append(f"flush chain {t} input")
        match = ""
        if c.scope == "sip-ports":
            protos = ", ".join(c.protocols)
            ports = ", ".join(str(p) for p in c.ports)
            match = f" meta l4proto {{ {protos} }} th dport {{ {ports} }}"
        for name, (version, _) in self._sets().items():
            family = "ip" if version == 4 else "ip6"
            lines.append(f'add rule {t} input {family} saddr @{name}{match} counter drop comment "fraudwatch"')
        return "\n".join(lines) + "\n"

    def setup(self) -> None:
        try:
            self.runner.run(["nft", "-f", "-"], self.setup_script())
        except FirewallError:
            try:  # the chain exists with another priority: replace it (the sets and their elements stay)
                self.runner.run(["nft", "-f", "-"], self.setup_script(replace_chain=True))
            except FirewallError as exc:
                raise FirewallError(f"{exc} (if table inet {self.cfg.table} was made by another version, remove "
                                    f"it: nft delete table inet {self.cfg.table})") from None

    def list(self) -> dict[Target, float | None]:
        proc = self.runner.run(["nft", "-j", "list", "table", "inet", self.cfg.table], check=False)
        if proc.returncode != 0:
            if "No such file or directory" in proc.stderr:
                return {}  # no table: nothing of ours in the kernel
            raise FirewallError(f"nft list failed: {proc.stderr.strip()[:300]}")
        out: dict[Target, float | None] = {}
        names = self._sets()
        for obj in json.loads(proc.stdout).get("nftables", []):
            st = obj.get("set")
            if not st or st.get("name") not in names:
                continue
            for item in st.get("elem", []):
                parsed = _element(item)
                if parsed is not None:
                    out[parsed[0]] = parsed[1]
        return out

    def apply(self, add: Sequence[Entry], remove: Sequence[Target], present: Collection[Target]) -> None:
        t = f"inet {self.cfg.table}"
        lines: list[str] = []
        # replace = delete + add in the same transaction: renews the timeout on every kernel version
        dele = [*remove, *(e.net for e in add if e.net in present)]
        for name, nets in _by_set(dele, self._set_for).items():
            for i in range(0, len(nets), CHUNK):
                lines.append(f"delete element {t} {name} {{ {', '.join(render(n) for n in nets[i:i + CHUNK])} }}")
        groups: dict[str, list[Entry]] = {}
        for e in add:
            groups.setdefault(self._set_for(e.net), []).append(e)
        for name, entries in groups.items():
            for i in range(0, len(entries), CHUNK):
                elems = ", ".join(f"{render(e.net)} timeout {max(1, e.timeout)}s" for e in entries[i:i + CHUNK])
                lines.append(f"add element {t} {name} {{ {elems} }}")
        if not lines:
            return
        try:
            if self.lib is not None:
                self.lib.run("\n".join(lines) + "\n")
            else:
                self.runner.run(["nft", "-f", "-"], "\n".join(lines) + "\n")
        except FirewallError as exc:
            if FULL_MARKER in str(exc):  # the kernel's ENFILE for a set at its `size`
                raise SetFullError(f"nftables set is full (size {self.cfg.maxelem}): {exc}") from None
            raise

    def flush(self) -> None:
        t = f"inet {self.cfg.table}"
        if self.runner.run(["nft", "-t", "list", "table", "inet", self.cfg.table], check=False).returncode != 0:
            return
        self.runner.run(["nft", "-f", "-"], "".join(f"flush set {t} {name}\n" for name in self._sets()))

    def teardown(self) -> None:
        proc = self.runner.run(["nft", "delete", "table", "inet", self.cfg.table], check=False)
        if proc.returncode != 0 and "No such file or directory" not in proc.stderr:
            raise FirewallError(f"nft delete table failed: {proc.stderr.strip()[:300]}")


def _by_set(nets: Iterable[Target], set_for: Any) -> dict[str, list[Target]]:
    out: dict[str, list[Target]] = {}
    for n in nets:
        out.setdefault(set_for(n), []).append(n)
    return out


def _element(item: Any) -> tuple[Target, float | None] | None:
    """(network, seconds left) from one `nft -j` set element."""
    expires: float | None = None
    if isinstance(item, dict) and "elem" in item:
        elem = item["elem"]
        expires = elem.get("expires")
        val = elem.get("val")
    else:
        val = item
    try:
        if isinstance(val, dict) and "prefix" in val:
            net = parse_target(f"{val['prefix']['addr']}/{val['prefix']['len']}")
        elif isinstance(val, str):
            net = parse_target(val)
        else:
            return None  # a range: never written by us
    except (TargetError, KeyError, TypeError):
        return None
    return net, (float(expires) if expires is not None else None)
