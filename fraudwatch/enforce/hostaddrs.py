"""This host's own addresses, which are never banned (`[firewall] allow_host_addresses`)."""

from __future__ import annotations

import ipaddress
import json
import logging

from fraudwatch.enforce.backends.base import FirewallError, Runner
from fraudwatch.netaddr import IPNetwork

log = logging.getLogger("fraudwatch.enforce")


def host_addresses(runner: Runner) -> list[IPNetwork]:
    """This host's own addresses (`ip -j addr`, in the runner's namespace): never banned."""
    try:
        proc = runner.run(["ip", "-j", "addr", "show"], check=False)
        data = json.loads(proc.stdout or "[]") if proc.returncode == 0 else []
    except (FirewallError, ValueError) as exc:
        log.warning("firewall: cannot read this host's addresses: %s", exc)
        return []
    out: list[IPNetwork] = []
    for link in data:
        for info in link.get("addr_info", []):
            try:
                out.append(ipaddress.ip_network(info.get("local", "")))
            except ValueError:
                continue
    return out
