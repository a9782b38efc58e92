"""A `bans` operation done in this process, when no watcher runs to do it: open the store as the writer, build
an enforcer of our own on it, and apply the operation (fraudwatch.enforce.ops), as the watcher would."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fraudwatch.config import Config
from fraudwatch.enforce import ops
from fraudwatch.enforce.enforcer import Enforcer
from fraudwatch.store.db import Store


def apply_locally(cfg: Config, name: str, req: dict[str, Any]) -> dict[str, Any]:
    """Operation `name` (ops.ADD, ...) with request `req`; its JSON-able result, as ops.apply returns it."""
    now = dt.datetime.now(dt.UTC)
    with Store(cfg.store_path, create=name == ops.ADD) as store:  # only a new ban may start a store
        enforcer = Enforcer(store.con, cfg.firewall, cfg.trusted_networks)
        if name in (ops.ADD, ops.REMOVE):
            enforcer.start(now)  # setup + reconcile: the kernel matches the store before the change
        elif name == ops.SYNC:
            enforcer.refresh_allowlist()
            enforcer.backend.setup()
        elif name == ops.FLUSH:
            enforcer.refresh_allowlist()
        return ops.apply(enforcer, name, req, now)
