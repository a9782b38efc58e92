"""Detection as rows are stored: the watcher's acting thread. The same engine and alert book as a replay, fed
the batches the writer commits, so live and replayed alerts agree."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb
import polars as pl

from fraudwatch.detect.base import Context
from fraudwatch.detect.decide import Alert, AlertBook
from fraudwatch.detect.engine import Engine
from fraudwatch.detect.replay import next_alert_id, save_alerts
from fraudwatch.netaddr import IPNetwork


class LiveDetection:
    def __init__(self, con: duckdb.DuckDBPyConnection, rules: Sequence[Any], ctx: Context,
                 trusted: Sequence[IPNetwork] = (), trusted_accounts: Sequence[str] = ()) -> None:
        self.con = con
        self.engine = Engine(rules, ctx, trusted, stream=True)
        self.book = AlertBook({r.common.id: r for r in rules}, trusted, trusted_accounts, next_alert_id(con))

    def __call__(self, table: str, rows: pl.DataFrame) -> list[Alert]:
        """Run the rules on newly stored rows; save and return the alerts they opened or changed."""
        changed = self.book.apply(self.engine.process(table, rows))
        if changed:
            save_alerts(self.con, changed, "live")
        return changed
