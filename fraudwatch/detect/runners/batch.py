"""Detection over what is stored, as a batch: `run_detect` replays the store through the rules and saves the
alerts; `detect_alongside` and `finish_alongside` score an ingest's rows as they are stored (`ingest --detect`,
fraudwatch.detect.runners.alongside).

Process-wide tuning (`fraudwatch.tuning.gc_for_batch`) is the caller's: a command enters it around
`run_detect`, after importing this module, so that what is frozen includes the modules the replay runs on.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

from fraudwatch.config import Config
from fraudwatch.detect.base import Context
from fraudwatch.detect.ruleset import load_rules
from fraudwatch.detect.runners.history import learn_terms
from fraudwatch.detect.runners.joining import join_incidents, keep_alert_ids
from fraudwatch.detect.runners.replay import (
    ReplayResult,
    alerts_from_rows,
    credit_context,
    next_alert_id,
    replay,
    save_alerts,
)
from fraudwatch.rulesdir import shipped_rules_dir
from fraudwatch.store.db import Store, open_read_only
from fraudwatch.store.incidents import save_incidents

if TYPE_CHECKING:
    import duckdb

    from fraudwatch.detect.runners.alongside import Alongside
    from fraudwatch.detect.runners.scorer import Scorer
    from fraudwatch.detect.types import RuleType


def run_detect(cfg: Config, since: dt.datetime | None, until: dt.datetime | None, extra_rules: list[Path],
               dry_run: bool) -> ReplayResult:
    """Replay the store through the rules (shipped, config [rules] dirs, then `extra_rules`); save unless dry."""
    rules = list(load_rules([*cfg.rule_dirs, *extra_rules]).rules.values())
    con = open_read_only(cfg.store_path) if dry_run else Store(cfg.store_path, create=False).con
    try:
        credit, names = credit_context(con)
        ctx = Context(shipped_rules_dir() / "lists", credit, names)
        # a range's new-term rules first learn from the history before it, not blind for their first day
        prepare = None if since is None else (lambda engine: learn_terms(con, engine, before=since))
        result = replay(con, rules, ctx, cfg.trusted_networks, cfg.trusted_accounts, since, until,
                        next_id=next_alert_id(con), lock_in_trusted=cfg.lock_in_trusted, prepare=prepare)
        result = _with_incidents(con, result, rules, cfg, save=not dry_run)
    finally:
        con.close()
    return result


def _with_incidents(con: duckdb.DuckDBPyConnection, result: ReplayResult, rules: list[RuleType], cfg: Config,
                    save: bool) -> ReplayResult:
    """The replay's alerts with the ids they had (when saved), joined into incidents; both saved when `save`."""
    alerts = result.alerts
    span = (result.since, result.until) if result.since and result.until else None
    if save and span is not None:
        keep_alert_ids(con, alerts, "replay", span)
    incidents, changes = join_incidents(con, {r.common.id: r.common for r in rules}, alerts, "replay",
                                        cfg.trusted_networks, result.until)
    if save and span is not None:
        save_alerts(con, alerts, "replay", span)
        save_incidents(con, incidents, "replay", span)
    return dataclasses.replace(result, alerts=sorted(alerts, key=lambda a: a.id), incidents=incidents,
                               changes=changes)


def detect_alongside(cfg: Config, con: duckdb.DuckDBPyConnection, tables: list[str | None],
                     scorer: Scorer | None = None) -> Alongside | None:
    """`ingest --detect`'s scoring alongside the ingest (fraudwatch.detect.runners.alongside), when the store holds no
    events yet, in `scorer` when one was started; None: the store is replayed after the ingest (and `scorer`
    is stopped)."""
    from fraudwatch.detect.runners.alongside import Alongside
    from fraudwatch.detect.runners.alongside_setup import Setup
    from fraudwatch.store.segments import Segments

    rules = list(load_rules(cfg.rule_dirs).rules.values())
    if not Alongside.applies(con, rules):
        if scorer is not None:
            scorer.close()
        return None
    setup = Setup(list(cfg.rule_dirs), shipped_rules_dir() / "lists", {}, {}, list(cfg.trusted_networks),
                  list(cfg.trusted_accounts), 1, lock_in_trusted=cfg.lock_in_trusted)
    return Alongside(con, Segments.of(con), rules, setup, tables, scorer)


def finish_alongside(alongside: Alongside, con: duckdb.DuckDBPyConnection, cfg: Config) -> ReplayResult | None:
    """The alerts scored alongside the ingest, saved as a replay's, with their incidents; None when the store
    is to be replayed."""
    scored = alongside.finish()
    if scored is None:
        return None
    rules = list(load_rules(cfg.rule_dirs).rules.values())
    result = ReplayResult(rules, alerts_from_rows(scored.alerts), scored.events, scored.since, scored.until)
    return _with_incidents(con, result, rules, cfg, save=True)
