"""The backend contract (`fraudwatch.enforce.backends.base.Backend`), the same checks for every backend in the
registry: the kernel ones on real kernel objects inside namespaces the test creates, dry-run in memory."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from fraudwatch.config.firewall import BACKENDS as CONFIG_BACKENDS
from fraudwatch.config.firewall import FirewallConfig
from fraudwatch.enforce.backends import BACKENDS, DRY_RUN, make_backend
from fraudwatch.enforce.backends.base import Backend, Entry
from fraudwatch.enforce.targets import parse_target
from tests.enforce.netns import netpair, require_root_and

TOOLS = {"nftables": ("nft",), "ipset": ("ipset", "iptables", "ip6tables"), "iptables": ("iptables", "ip6tables"),
         DRY_RUN: ()}
HOST4, HOST6, NET4 = parse_target("192.0.2.2"), parse_target("2001:db8::2"), parse_target("192.0.2.64/26", 128, True)


def test_the_registry_is_what_the_config_accepts_and_every_backend_is_tested_here() -> None:
    assert set(BACKENDS) == set(CONFIG_BACKENDS) == set(TOOLS)
    for name, cls in BACKENDS.items():
        assert cls.name == name
        assert isinstance(make_backend(FirewallConfig(backend=name)), cls)


@contextmanager
def backend_for(name: str) -> Iterator[Backend]:
    cfg = FirewallConfig(backend=name, maxelem=1024)
    if name == DRY_RUN:
        yield make_backend(cfg)
        return
    require_root_and(*TOOLS[name])
    with netpair() as p:
        yield make_backend(cfg, p.prefix_b)


@pytest.mark.parametrize("name", list(BACKENDS))
def test_backend_contract(name: str) -> None:
    with backend_for(name) as b:
        b.setup()
        b.setup()  # idempotent
        assert b.list() == {}
        b.apply([Entry(HOST4, 600), Entry(HOST6, 600), Entry(NET4, 300)], [], ())
        listed = b.list()
        assert set(listed) == {HOST4, HOST6, NET4}
        for net, given in ((HOST4, 600), (HOST6, 600), (NET4, 300)):
            left = listed[net]
            if b.kernel_timeouts:
                assert left is not None and 0 < left <= given, (net, left)
            else:  # the enforcer removes expired entries itself
                assert left is None
        b.apply([Entry(HOST4, 900)], [HOST6], listed.keys())  # renew one, remove one, in one batch
        listed = b.list()
        assert set(listed) == {HOST4, NET4}
        if b.kernel_timeouts:
            assert (listed[HOST4] or 0) > 600
        b.flush()
        assert b.list() == {}
        b.apply([Entry(HOST4, 60)], [], ())  # our rules survived the flush
        assert set(b.list()) == {HOST4}
        b.teardown()
