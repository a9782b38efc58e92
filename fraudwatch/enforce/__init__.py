"""Enforcement: ban decisions written to the firewall (nftables, ipset, iptables, or dry-run), kept in the
store, reconciled with the kernel, and never applied to an allowlisted address. See docs/enforcement.md."""

import logging

from fraudwatch.enforce.backend import Backend, FirewallError, SetFullError
from fraudwatch.enforce.config import FirewallConfig, parse_duration
from fraudwatch.enforce.enforcer import Enforcer
from fraudwatch.enforce.results import BanRefused, NotBanned, ReconcileReport

__all__ = ["Backend", "BanRefused", "Enforcer", "FirewallConfig", "FirewallError", "NotBanned", "ReconcileReport",
           "SetFullError", "parse_duration"]

# A library logs; the application decides where to (the CLI prints errors itself, the watcher configures logging).
logging.getLogger("fraudwatch.enforce").addHandler(logging.NullHandler())
