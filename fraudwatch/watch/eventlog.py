"""The watcher's log lines for what it found and did: one line per alert opened (or whose severity or action
changed) and per ban made, naming the rule and the IP or account (`fraudwatch.watch.logline` for the line's
shape). An update of an alert's counts only is not logged (an ongoing botnet makes thousands every few seconds;
`fraudwatch status` counts them per rule).

A botnet reports thousands of alerts in one batch: a line each would bury the log (and the journal's rate limit
would drop lines at random), so a batch logs at most `PER_BATCH` lines of each kind and one more saying how many
were left out and where to see them all.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fraudwatch.watch.logline import key_field, kv

log = logging.getLogger("fraudwatch.watch")

PER_BATCH = 20  # alert lines, and ban lines, logged per batch at most (the rest are counted in one line)
NOT_CARRIED_OUT = {"lock_account": "proposed: lock the account (not carried out: fraudwatch cannot lock accounts "
                                   "yet)"}


def done_of(alert: Any, done: Mapping[int, str]) -> str:
    """What was done about `alert`, in the enforcer's words, else what its action means here."""
    text = done.get(alert.id)
    if text:
        return text
    if alert.trusted:
        return "nothing: the key is trusted"
    if alert.report_only:
        return f"nothing: the rule is report-only (proposed {alert.action})"
    if alert.action in NOT_CARRIED_OUT:
        return NOT_CARRIED_OUT[alert.action]
    return "alert only" if alert.action == "alert" else f"proposed {alert.action}"


def log_alerts(alerts: Sequence[Any], done: Mapping[int, str], noted: Mapping[int, str]) -> None:
    """A line per alert that opened or whose severity or action changed (`noted`: id -> "new" or what
    changed): id, rule, severity, key, events, action and what was done."""
    shown = [a for a in alerts if a.id in noted]
    for a in shown[:PER_BATCH]:
        what = noted[a.id]
        log.warning("alert %s %s", "opened" if what == "new" else "changed",
                    kv(id=a.id, rule=a.rule, severity=a.severity, **key_field(a.key_type, a.key), events=a.count,
                       action=a.action, done=done_of(a, done), changed=None if what == "new" else what))
    if len(shown) > PER_BATCH:
        log.warning("alert: and %d more in this batch (`fraudwatch alerts list` shows them all)",
                    len(shown) - PER_BATCH)


def log_bans(bans: Sequence[Any], dry_run: bool, backend: str) -> None:
    """A line per new ban: the address or network, the rule and alert behind it, its level and time."""
    verb = "would ban (dry run)" if dry_run else "ban"
    for b in bans[:PER_BATCH]:
        target = {"ip": b.net.text} if b.net.is_host else {"network": b.net.text}
        log.warning("%s %s", verb, kv(**target, rule=b.rule or "(manual)", alert=b.alert_id, level=b.level,
                                      seconds=int(b.expires - b.created), source=b.source, backend=backend,
                                      ban=b.id))
    if len(bans) > PER_BATCH:
        log.warning("%s: and %d more in this batch (`fraudwatch bans list` shows them all)", verb,
                    len(bans) - PER_BATCH)
