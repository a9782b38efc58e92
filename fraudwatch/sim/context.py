"""State shared by the incident injectors: the world, the output, who is online, and the attackers' addresses."""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass, field

from fraudwatch.sim.model import Account, Endpoint, Model, is_hosted
from fraudwatch.sim.presence import Presence
from fraudwatch.sim.sink import Incident, Sink

SCANNER_UAS = ("friendly-scanner", "sipcli/v1.8", "VaxSIPUserAgent/3.1", "SIPScan", "pplsip", "iWar",
               "sundayddr", "sipvicious")
# Usernames attackers try when they do not know real ones.
GUESSES = ("100", "101", "1000", "1001", "200", "2000", "admin", "test", "user", "guest", "sip", "voip",
           "operator", "office", "support", "1234", "5000", "6000", "7000", "8000", "9999")


class AddressPool:
    """Attackers' addresses, never handed out twice while the pool lasts.

    Single-address attacks draw from 192.0.2.1-199 and 203.0.113.129-254; a botnet's IPv4 members come from
    192.0.2.1-199 and its IPv6 members from 2001:db8:bad::/48. 192.0.2.200-254 is kept for the background
    probes in kern.log.
    """

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._single = [f"192.0.2.{i}" for i in range(1, 200)] + [f"203.0.113.{i}" for i in range(129, 255)]
        rng.shuffle(self._single)
        self._used: set[str] = set()

    def single(self) -> str:
        for ip in self._single:
            if ip not in self._used:
                self._used.add(ip)
                return ip
        return self._rng.choice(self._single)  # pool exhausted (very long runs): reuse

    def botnet_v4(self) -> str:
        for ip in self._single:
            if ip.startswith("192.0.2.") and ip not in self._used:
                self._used.add(ip)
                return ip
        return f"192.0.2.{self._rng.randint(1, 199)}"

    def botnet_v6(self) -> str:
        while True:
            net = self._rng.randrange(1 << 16)
            host = self._rng.randrange(1, 1 << 16)
            ip = ipaddress.IPv6Address(f"2001:db8:bad:{net:x}::{host:x}").compressed
            if ip not in self._used:
                self._used.add(ip)
                return ip


@dataclass
class Ctx:
    sink: Sink
    model: Model
    presence: Presence
    pool: AddressPool
    used_accounts: set[str] = field(default_factory=set)
    # account -> (incident, call-ids of the incident's calls): billing places the breach inside the incident
    credit: dict[str, tuple[Incident, set[str]]] = field(default_factory=dict)

    def pick_account(self, rng: random.Random, *, pbx: bool | None = None, hosted: bool = False) -> Account:
        """A customer no other call-fraud incident uses (``pbx``: True only PBX accounts, False only phones);
        the hosted PBXs (inside the trusted network) only when ``hosted``, and then only they."""
        customers = [a for a in self.model.customers if is_hosted(a) == hosted]
        if not customers:
            customers = list(self.model.customers)
        candidates = [a for a in customers if a.account not in self.used_accounts
                      and (pbx is None or bool(a.gateway) == pbx)]
        if not candidates:
            candidates = [a for a in customers if a.account not in self.used_accounts]
        if not candidates:
            candidates = list(customers)
        acc = rng.choice(candidates)
        self.used_accounts.add(acc.account)
        return acc

    def phones(self) -> list[Endpoint]:
        """Phones (desk and soft), or every endpoint when the customers only have PBXs."""
        return [ep for ep in self.model.endpoints() if ep.style != "pbx"] or self.model.endpoints()

    def guess_user(self, rng: random.Random) -> str:
        r = rng.random()
        if r < 0.6:
            return str(rng.randint(100, 9999))
        if r < 0.85:
            return rng.choice(GUESSES)
        return rng.choice(self.model.endpoints()).username
