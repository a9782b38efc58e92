"""Enforcement: ban decisions written to the firewall (nftables, ipset, iptables, or dry-run), kept in the
store, reconciled with the kernel, and never applied to an allowlisted address. See docs/enforcement.md.

The names below are loaded when first used (PEP 562): importing the enforcer (its store, backends and polars)
is slow, and a command that only reads the package's names should not pay for it."""

import importlib
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fraudwatch.config.firewall import FirewallConfig
    from fraudwatch.enforce.backend import Backend, FirewallError, SetFullError
    from fraudwatch.enforce.enforcer import Enforcer
    from fraudwatch.enforce.results import BanRefused, NotBanned, ReconcileReport

_HOME = {"Backend": "fraudwatch.enforce.backend", "FirewallError": "fraudwatch.enforce.backend",
         "SetFullError": "fraudwatch.enforce.backend", "FirewallConfig": "fraudwatch.config.firewall",
         "Enforcer": "fraudwatch.enforce.enforcer", "BanRefused": "fraudwatch.enforce.results",
         "NotBanned": "fraudwatch.enforce.results", "ReconcileReport": "fraudwatch.enforce.results"}
__all__ = ["Backend", "BanRefused", "Enforcer", "FirewallConfig", "FirewallError", "NotBanned", "ReconcileReport",
           "SetFullError"]


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOME[name]), name)
    globals()[name] = value
    return value


# A library logs; the application decides where to (the CLI prints errors itself, the watcher configures logging).
logging.getLogger("fraudwatch.enforce").addHandler(logging.NullHandler())
