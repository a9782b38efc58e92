"""Enforcement: ban decisions written to the firewall (nftables, ipset, iptables, or dry-run), kept in the
store, reconciled with the kernel, and never applied to an allowlisted address. See docs/enforcement.md.

The names below are loaded when first used (PEP 562): importing the enforcer (its store, backends and polars)
is slow, and a command that only needs one of the package's modules should not pay for it.
No module of the package imports this one for a name: they import each other's modules directly.
"""

import importlib
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for the type checker; at run time `__getattr__` loads each from its module in _HOME
    from fraudwatch.config.firewall import FirewallConfig as FirewallConfig
    from fraudwatch.enforce.backends.base import Backend as Backend
    from fraudwatch.enforce.backends.base import FirewallError as FirewallError
    from fraudwatch.enforce.backends.base import SetFullError as SetFullError
    from fraudwatch.enforce.enforcer import Enforcer as Enforcer
    from fraudwatch.enforce.results import BanRefused as BanRefused
    from fraudwatch.enforce.results import NotBanned as NotBanned
    from fraudwatch.enforce.results import ReconcileReport as ReconcileReport

_HOME = {  # public name -> its module
    "Backend": "fraudwatch.enforce.backends.base", "FirewallError": "fraudwatch.enforce.backends.base",
    "SetFullError": "fraudwatch.enforce.backends.base",
    "FirewallConfig": "fraudwatch.config.firewall",  # what an Enforcer is made with
    "Enforcer": "fraudwatch.enforce.enforcer",
    "BanRefused": "fraudwatch.enforce.results", "NotBanned": "fraudwatch.enforce.results",
    "ReconcileReport": "fraudwatch.enforce.results",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOME[name]), name)
    globals()[name] = value
    return value


# A library logs; the application decides where to (the CLI prints errors itself, the watcher configures logging).
logging.getLogger("fraudwatch.enforce").addHandler(logging.NullHandler())
