"""Enforcement: ban decisions written to the firewall (nftables, ipset, iptables, or dry-run), kept in the
store, reconciled with the kernel, and never applied to an allowlisted address. See docs/enforcement.md.

The names below are loaded when first used (PEP 562): the config reads `fraudwatch.enforce.config` at every
command's start, and importing the enforcer with it (its store, backends and polars) cost 0.3 s of each one."""

import importlib
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fraudwatch.enforce.backend import Backend, FirewallError, SetFullError
    from fraudwatch.enforce.config import FirewallConfig, parse_duration
    from fraudwatch.enforce.enforcer import Enforcer
    from fraudwatch.enforce.results import BanRefused, NotBanned, ReconcileReport

_HOME = {"Backend": "backend", "FirewallError": "backend", "SetFullError": "backend", "FirewallConfig": "config",
         "parse_duration": "config", "Enforcer": "enforcer", "BanRefused": "results", "NotBanned": "results",
         "ReconcileReport": "results"}
__all__ = ["Backend", "BanRefused", "Enforcer", "FirewallConfig", "FirewallError", "NotBanned", "ReconcileReport",
           "SetFullError", "parse_duration"]


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
    globals()[name] = value
    return value


# A library logs; the application decides where to (the CLI prints errors itself, the watcher configures logging).
logging.getLogger("fraudwatch.enforce").addHandler(logging.NullHandler())
