"""The simulated switch's world: address plan, traffic curves, rate deck, accounts and their endpoints.

Everything here is built once per run from a seeded ``random.Random``; nothing reads the clock or the global
random state, so the same seed always yields the same world.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import random
from dataclasses import dataclass

import phonenumbers
from phonenumbers import PhoneNumberType

# --- address plan (documentation and benchmark ranges only: these are written into files, never contacted) ---
SWITCH_IPV4 = "198.18.0.10"
SWITCH_IPV6 = "2001:db8:0:5::10"
TRUSTED_NETWORK = "203.0.113.0/25"
CARRIER_NET = "203.0.113."  # carriers .1-.20, vendors .21-.24
HOSTED_NET = "203.0.113."  # the operator's hosted IP-PBX platform, inside the trusted network: .40 up
HOSTED_FIRST = 40
HOSTED_PBXS = 2  # customers whose PBX is hosted there (the first PBX customers)
CUSTOMER_NET = "198.51.100."  # phones, PBXs and gateways of the customers
MAX_CARRIERS = 20

# The customers are in the UK: in November local time is UTC, so local hours are UTC hours.
LOCAL_UTC_OFFSET_HOURS = 0
HOME_REGION = "GB"

# Relative call intensity by local hour (0-23) and by weekday (Monday first).
HOURLY = (
    0.04, 0.02, 0.015, 0.015, 0.02, 0.04, 0.10, 0.28, 0.60, 0.90, 1.00, 0.97,
    0.80, 0.85, 0.98, 1.00, 0.92, 0.75, 0.50, 0.35, 0.27, 0.20, 0.13, 0.07,
)  # fmt: skip
WEEKLY = (1.0, 1.0, 1.0, 1.0, 0.95, 0.45, 0.30)


def carrier_hourly(hour: int) -> float:
    """Wholesale carriers aggregate many time zones, so their curve is flatter than the customers'."""
    return 0.35 + 0.65 * HOURLY[hour]


DESK_UAS = (
    "Yealink SIP-T46S 66.86.0.15", "Yealink SIP-T54W 96.86.0.70", "Yealink SIP-T21P_E2 52.84.0.15",
    "Grandstream GXP2170 1.0.11.23", "Grandstream GRP2614 1.0.9.127", "PolycomVVX-VVX_450-UA/6.4.3.5018",
    "Cisco/SPA504G-7.6.2f", "Fanvil X4U 2.12.1.20",
)  # fmt: skip
SOFT_UAS = (
    "MicroSIP/3.21.3", "Zoiper rv2.10.20.2", "Linphone/5.2.0 (belle-sip/5.2.0)",
    "Bria 6 release 6.5.6 stamp 117474", "Groundwire/6.1",
)  # fmt: skip
PBX_UAS = (
    "Asterisk PBX 18.20.0", "FPBX-16.0.33(18.20.0)", "3CXPhoneSystem 18.0.9.20",
    "FreeSWITCH-mod_sofia/1.10.9-release~64bit", "Issabel PBX 4.0",
)  # fmt: skip
CARRIER_UAS = (
    "Sonus SBC", "Cisco-SIPGateway/IOS-15.6.3", "kamailio (5.6.4 (x86_64/linux))", "Ribbon SBC 10.1.2",
    "FreeSWITCH-mod_sofia/1.10.9-release~64bit", "VOS3000 2.1.8.05",
)  # fmt: skip

_NAME_A = ("Acme", "Blue", "North", "Crown", "Harbour", "Summit", "Bright", "Oak", "Delta", "Kestrel", "Ridge",
           "Silver", "Pioneer", "Lark", "Meridian", "Atlas", "Thistle", "Wessex", "Mercia", "Orbit")
_NAME_B = ("Telecom", "Voice", "Logistics", "Dental", "Legal", "Motors", "Travel", "Estates", "Print", "Foods",
           "Clinic", "Design", "Retail", "Consulting", "Hotels", "Networks", "Freight", "Media")
_NAME_C = ("Ltd", "LLP", "plc", "Group", "& Co")


@dataclass(frozen=True, slots=True)
class Destination:
    """One rate-deck line: a country and number type with its sell rate and its cost."""

    key: str
    region: str  # ISO region, or "001" for non-geographic (satellite) codes
    country_code: int
    kind: str  # fixed | mobile | premium | satellite
    risk: str  # domestic | nearby | international | premium | high-risk
    rate_e4: int  # sell rate per minute, in 1/10000 of the currency unit
    cost_e4: int  # vendor cost per minute
    increment: int  # billing increment in seconds
    vendor: str
    vendor_ip: str
    weight: float  # share of a typical customer's calls


_VENDORS = {"UK": ("VENDOR-UK-1", "203.0.113.21"), "EU": ("VENDOR-EU-2", "203.0.113.22"),
            "INTL": ("VENDOR-INTL-3", "203.0.113.23"), "PREM": ("VENDOR-PREM-4", "203.0.113.24")}

# key, region, country code, kind, risk, rate per minute, normal-traffic weight, vendor
_DECK = (
    ("GB-fixed", "GB", 44, "fixed", "domestic", 0.0100, 30.0, "UK"),
    ("GB-mobile", "GB", 44, "mobile", "domestic", 0.0150, 28.0, "UK"),
    ("GB-premium", "GB", 44, "premium", "premium", 0.4500, 0.5, "UK"),
    ("IE-fixed", "IE", 353, "fixed", "nearby", 0.0120, 3.0, "EU"),
    ("IE-mobile", "IE", 353, "mobile", "nearby", 0.0300, 3.0, "EU"),
    ("FR-fixed", "FR", 33, "fixed", "nearby", 0.0110, 3.0, "EU"),
    ("FR-mobile", "FR", 33, "mobile", "nearby", 0.0250, 3.0, "EU"),
    ("DE-fixed", "DE", 49, "fixed", "nearby", 0.0120, 2.5, "EU"),
    ("DE-mobile", "DE", 49, "mobile", "nearby", 0.0350, 2.5, "EU"),
    ("ES-mobile", "ES", 34, "mobile", "nearby", 0.0280, 2.0, "EU"),
    ("NL-mobile", "NL", 31, "mobile", "nearby", 0.0400, 1.5, "EU"),
    ("US-fixed", "US", 1, "fixed", "international", 0.0080, 4.0, "INTL"),
    ("IN-mobile", "IN", 91, "mobile", "international", 0.0180, 3.0, "INTL"),
    ("PK-mobile", "PK", 92, "mobile", "international", 0.0450, 2.0, "INTL"),
    ("NG-mobile", "NG", 234, "mobile", "international", 0.0900, 1.5, "INTL"),
    ("PH-mobile", "PH", 63, "mobile", "international", 0.1000, 1.5, "INTL"),
    ("CU-mobile", "CU", 53, "mobile", "high-risk", 0.8500, 0.3, "PREM"),
    ("SO-mobile", "SO", 252, "mobile", "high-risk", 0.9500, 0.08, "PREM"),
    ("SL-mobile", "SL", 232, "mobile", "high-risk", 0.4500, 0.08, "PREM"),
    ("GN-mobile", "GN", 224, "mobile", "high-risk", 0.5000, 0.08, "PREM"),
    ("LV-premium", "LV", 371, "premium", "high-risk", 1.2000, 0.04, "PREM"),
    ("LT-premium", "LT", 370, "premium", "high-risk", 1.1000, 0.04, "PREM"),
    ("SAT-881", "001", 881, "satellite", "high-risk", 4.5000, 0.0, "PREM"),
)


def build_deck() -> tuple[Destination, ...]:
    out = []
    for key, region, cc, kind, risk, rate, weight, vendor in _DECK:
        name, ip = _VENDORS[vendor]
        rate_e4 = round(rate * 10_000)
        cheap = risk in ("domestic", "nearby", "international")
        out.append(Destination(
            key=key, region=region, country_code=cc, kind=kind, risk=risk, rate_e4=rate_e4,
            cost_e4=rate_e4 * (78 if cheap else 85) // 100, increment=6 if cheap else 60,
            vendor=name, vendor_ip=ip, weight=weight,
        ))
    return tuple(out)


_TYPES = {
    "fixed": (PhoneNumberType.FIXED_LINE, PhoneNumberType.FIXED_LINE_OR_MOBILE),
    "mobile": (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE),
    "premium": (PhoneNumberType.PREMIUM_RATE,),
    "satellite": (PhoneNumberType.MOBILE,),
}
_EXAMPLE_TYPE = {"fixed": PhoneNumberType.FIXED_LINE, "mobile": PhoneNumberType.MOBILE,
                 "premium": PhoneNumberType.PREMIUM_RATE, "satellite": PhoneNumberType.MOBILE}


class NumberFactory:
    """Draws E.164 numbers (digits, no '+') that ``phonenumbers`` accepts as valid for their country and type.

    Numbers start from the library's example number for the type and randomise its tail, so they look like real
    allocations (right length, right ranges) without being copied from anywhere.
    """

    def __init__(self) -> None:
        self._examples: dict[str, str] = {}

    def _example(self, dest: Destination) -> str:
        if dest.key not in self._examples:
            if dest.region == "001":
                num = phonenumbers.example_number_for_non_geo_entity(dest.country_code)
            else:
                num = phonenumbers.example_number_for_type(dest.region, _EXAMPLE_TYPE[dest.kind])
            if num is None:
                raise ValueError(f"no example number for {dest.key}")
            self._examples[dest.key] = str(num.national_number)
        return self._examples[dest.key]

    def valid(self, dest: Destination, national: str) -> bool:
        num = phonenumbers.PhoneNumber(country_code=dest.country_code, national_number=int(national))
        return bool(phonenumbers.is_valid_number(num)) and phonenumbers.number_type(num) in _TYPES[dest.kind]

    def draw(self, rng: random.Random, dest: Destination, base: str | None = None, vary: int = 8) -> str:
        """A valid number for ``dest``; with ``base`` (an E.164 number of that destination) only its last
        ``vary`` digits change, which is how fraudsters' number ranges look."""
        national = base[len(str(dest.country_code)):] if base else self._example(dest)
        vary = max(1, min(vary, len(national) - 2))
        head = national[: len(national) - vary]
        for _ in range(200):
            tail = "".join(str(rng.randrange(10)) for _ in range(vary))
            if self.valid(dest, head + tail):
                return f"{dest.country_code}{head}{tail}"
        return f"{dest.country_code}{national}"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A registering SIP endpoint: a desk phone, a softphone or a customer's IP-PBX."""

    username: str  # digest user / e164 it registers as
    dids: tuple[str, ...]  # caller numbers it presents (a phone: its own e164; a PBX: the customer's DIDs)
    ip: str
    port: int
    ua: str
    expires: int
    style: str  # desk | soft | pbx
    account: str


@dataclass(frozen=True, slots=True)
class Account:
    """A billing account (``e_customer``): a customer with endpoints, or an IP-authenticated carrier trunk."""

    account: str
    name: str
    kind: str  # customer | carrier
    endpoints: tuple[Endpoint, ...]
    gateway: str  # mapping gateway name ("" for accounts of plain phones)
    calls_per_hour: float  # call attempts in a busy hour
    weights: tuple[float, ...]  # destination mix over the deck
    address_book: tuple[tuple[int, str], ...]  # (deck index, number) called again and again
    agent: str
    calllevel: int
    ip: str = ""  # carriers: the trunk's address
    port: int = 5060
    ua: str = ""


@dataclass(frozen=True, slots=True)
class Model:
    start_ms: int
    end_ms: int
    days: int
    deck: tuple[Destination, ...]
    customers: tuple[Account, ...]
    carriers: tuple[Account, ...]
    numbers: NumberFactory

    def dest(self, key: str) -> Destination:
        return next(d for d in self.deck if d.key == key)

    def endpoints(self) -> list[Endpoint]:
        return [ep for acc in self.customers for ep in acc.endpoints]


def _lognormal(rng: random.Random, median: float, sigma: float) -> float:
    return math.exp(rng.gauss(math.log(median), sigma))


def _name(rng: random.Random, used: set[str]) -> str:
    while True:
        name = f"{rng.choice(_NAME_A)} {rng.choice(_NAME_B)} {rng.choice(_NAME_C)}"
        if name not in used or len(used) > 300:
            used.add(name)
            return name


def _nat_port(rng: random.Random) -> int:
    return 5060 if rng.random() < 0.3 else rng.randint(1024, 65000)


def _customer(rng: random.Random, idx: int, deck: tuple[Destination, ...], numbers: NumberFactory,
              used_names: set[str], used_users: set[str], ip_pool: list[str]) -> Account:
    account = f"{10001 + idx}"
    gb_fixed = deck[0]
    site_ip = ip_pool.pop(0) if ip_pool else f"{CUSTOMER_NET}{1 + idx % 250}"

    def fresh_did() -> str:
        while True:
            did = numbers.draw(rng, gb_fixed)
            if did not in used_users:
                used_users.add(did)
                return did

    endpoints: list[Endpoint] = []
    gateway = ""
    if rng.random() < 0.3:  # a small business with its own IP-PBX, registering as a mapping gateway
        gateway = f"GW-{account}"
        dids = tuple(fresh_did() for _ in range(rng.randint(3, 8)))
        endpoints.append(Endpoint(f"gw{account}", dids, site_ip, 5060, rng.choice(PBX_UAS),
                                  rng.choice((1800, 3600, 3600)), "pbx", account))
        rate = _lognormal(rng, 2.6, 0.6)
    else:  # an office of SIP phones behind one NAT, plus remote workers' softphones
        for _ in range(rng.choices((1, 2, 3, 4), (4, 4, 2, 1))[0]):
            did = fresh_did()
            if rng.random() < 0.7:
                endpoints.append(Endpoint(did, (did,), site_ip, _nat_port(rng), rng.choice(DESK_UAS),
                                          rng.choice((1800, 3600, 3600, 3600)), "desk", account))
            else:
                ip = ip_pool.pop(0) if ip_pool and rng.random() < 0.5 else site_ip
                endpoints.append(Endpoint(did, (did,), ip, _nat_port(rng), rng.choice(SOFT_UAS),
                                          rng.choice((600, 900, 1800)), "soft", account))
        rate = _lognormal(rng, 0.7, 0.6) * len(endpoints)
    weights = tuple(d.weight * (rng.uniform(0.5, 1.5) if d.risk != "domestic" else 1.0) for d in deck)
    book = []
    for _ in range(rng.randint(5, 15)):
        di = rng.choices(range(len(deck)), weights)[0]
        book.append((di, numbers.draw(rng, deck[di])))
    return Account(account=account, name=_name(rng, used_names), kind="customer", endpoints=tuple(endpoints),
                   gateway=gateway, calls_per_hour=rate, weights=weights, address_book=tuple(book),
                   agent=rng.choice(("", "", "", "A9001", "A9002")), calllevel=rng.choice((5, 5, 5, 4)))


def _carrier(rng: random.Random, idx: int, deck: tuple[Destination, ...], used_names: set[str]) -> Account:
    # Carriers hand us calls for UK numbers mostly, some transit to Europe.
    weights = tuple(d.weight if d.risk in ("domestic", "nearby") and d.kind != "premium" else 0.0 for d in deck)
    return Account(account=f"{20001 + idx}", name=_name(rng, used_names), kind="carrier", endpoints=(),
                   gateway=f"CARRIER-{idx + 1:02d}", calls_per_hour=_lognormal(rng, 5.0, 0.4), weights=weights,
                   address_book=(), agent="", calllevel=5, ip=f"{CARRIER_NET}{idx + 1}",
                   port=rng.choice((5060, 5060, 5080)), ua=rng.choice(CARRIER_UAS))


def _hosted(customers: tuple[Account, ...]) -> tuple[Account, ...]:
    """The first HOSTED_PBXS customers with an IP-PBX run it on the operator's hosted platform, inside the trusted
    network (a trusted-homed account: its traffic is never banned, and its fraud still has to be seen)."""
    out, moved = [], 0
    for acc in customers:
        if acc.gateway and moved < HOSTED_PBXS:
            ip = f"{HOSTED_NET}{HOSTED_FIRST + moved}"
            acc = dataclasses.replace(acc, endpoints=tuple(dataclasses.replace(ep, ip=ip) for ep in acc.endpoints))
            moved += 1
        out.append(acc)
    return tuple(out)


def is_hosted(acc: Account) -> bool:
    """Whether the account's PBX is on the hosted platform (inside the trusted network)."""
    trusted = ipaddress.ip_network(TRUSTED_NETWORK)
    return any(ipaddress.ip_address(ep.ip) in trusted for ep in acc.endpoints)


def build_model(rng: random.Random, start_ms: int, days: int, accounts: int) -> Model:
    """``accounts`` counts every row of customers.csv: about one in ten is a carrier (at least one from three
    accounts up, at most 20); the rest are customers."""
    if accounts < 1:
        raise ValueError("accounts must be at least 1")
    deck = build_deck()
    numbers = NumberFactory()
    n_carriers = 0 if accounts < 3 else max(1, min(MAX_CARRIERS, accounts // 10))
    used_names: set[str] = set()
    used_users: set[str] = set()
    ip_pool = [f"{CUSTOMER_NET}{i}" for i in range(1, 255)]
    rng.shuffle(ip_pool)
    customers = _hosted(tuple(_customer(rng, i, deck, numbers, used_names, used_users, ip_pool)
                              for i in range(accounts - n_carriers)))
    carriers = tuple(_carrier(rng, i, deck, used_names) for i in range(n_carriers))
    return Model(start_ms=start_ms, end_ms=start_ms + days * 86_400_000, days=days, deck=deck,
                 customers=customers, carriers=carriers, numbers=numbers)
