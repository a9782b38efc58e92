"""Firewall backends, by the name `[firewall] backend` gives them, and the factory the enforcer and the sentry
use. The contract they all keep is `base.Backend`; each lives in a module of its own, which imports only the
contract (and ipset the iptables chain helpers it shares)."""

from __future__ import annotations

from collections.abc import Sequence

from fraudwatch.config.firewall import FirewallConfig
from fraudwatch.enforce.backends.base import Backend, Runner
from fraudwatch.enforce.backends.dryrun import DryRunBackend
from fraudwatch.enforce.backends.ipset import IpsetBackend
from fraudwatch.enforce.backends.iptables import IptablesBackend
from fraudwatch.enforce.backends.nft import NftablesBackend

DRY_RUN = "dry-run"
BACKENDS: dict[str, type[Backend]] = {"nftables": NftablesBackend, "ipset": IpsetBackend,
                                      "iptables": IptablesBackend, DRY_RUN: DryRunBackend}


def make_backend(cfg: FirewallConfig, prefix: Sequence[str] = (), in_process: bool = False) -> Backend:
    """The backend `cfg.backend` names (dry-run for any other name), its commands run under `prefix`.
    `in_process`: nftables element changes through its library in this process (see `backends.nft`)."""
    runner = Runner(prefix)
    if cfg.backend == "nftables":
        return NftablesBackend(cfg, runner, in_process)
    return BACKENDS.get(cfg.backend, DryRunBackend)(cfg, runner)
