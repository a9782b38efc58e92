"""What was done about an alert or an incident, in words that never claim more than happened.

Two facts decide the words, never the enforcer's English:

- the firewall backend (`Notifier(firewall=...)`): with `dry-run` nothing reaches the kernel, so a ban is said as
  "dry run: would have banned ..." whatever the enforcer's text (it keeps the would-be state and words it like a
  real ban);
- the proposed action: `lock_account` is never carried out (fraudwatch has no VOS3000 integration yet), so it is
  said as "proposed: lock account ... — not carried out".

With a real backend the enforcer's own words for each alert are shown (they say banned, extended, already
banned, or why not).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fraudwatch.detect.decide import Alert
from fraudwatch.detect.incident import Incident

DRY_RUN = "dry-run"  # the backend name (fraudwatch.enforce.backends.dryrun.DryRunBackend.name)
ACTION_TEXT = {"ban_ip": "ban the IP", "lock_account": "lock the account", "alert": "alert only"}
NOT_LOCKED = "not carried out: fraudwatch does not lock accounts yet"
SHOWN = 3  # enforcer texts or keys listed before "+N more"


@dataclass(frozen=True)
class Member:
    """What a message needs of one member alert of an incident (and what the enforcer said about it)."""

    rule: str
    key_type: str
    key: str
    action: str
    trusted: bool = False
    report_only: bool = False
    done: str | None = None  # the enforcer's words, None: it did not act on this alert

    @classmethod
    def of(cls, alert: Alert, done: Mapping[int, str]) -> Member:
        return cls(alert.rule, alert.key_type, alert.key, alert.action, bool(alert.trusted),
                   bool(alert.report_only), done.get(alert.id) or None)

    @property
    def target(self) -> str:
        """The IP of an IP key (`ip|user` keys name the IP first), else the key."""
        return self.key.split("|", 1)[0]


def alert_done(alert: Alert, done: Mapping[int, str], firewall: str | None = None) -> str:
    """What fraudwatch did about one alert. `firewall`: the backend the enforcer runs (None: not known)."""
    m = Member.of(alert, done)
    proposed = ACTION_TEXT.get(m.action, m.action)
    if m.trusted:
        return "nothing: the key is trusted (alert only)"
    if m.report_only:
        return f"nothing: the rule is report-only (would {proposed})"
    if m.action == "lock_account":
        return f"proposed: lock account {m.target} — {NOT_LOCKED}"
    if m.action == "ban_ip" and firewall == DRY_RUN and m.key_type == "ip":
        return f"dry run: would have banned {m.target} (the firewall was not changed)"
    if m.done:
        return m.done
    if m.action == "alert":
        return "nothing: alert only"
    return f"nothing yet: proposed {proposed} (no enforcer acted on it)"


def _listed(items: Sequence[str]) -> str:
    shown = ", ".join(items[:SHOWN])
    return shown + (f" (+{len(items) - SHOWN:,} more)" if len(items) > SHOWN else "")


def _ips(n: int) -> str:
    return "1 IP" if n == 1 else f"{n:,} IPs"


def incident_done(inc: Incident, members: Sequence[Member], firewall: str | None = None) -> list[str]:
    """What was done about an incident, a line per kind of action: bans (the enforcer's words, or what a dry run
    would have done), proposed locks (never carried out), or why nothing. `members`: the member alerts known (after
    a restart there may be none: the incident's own fields are used)."""
    acting = [m for m in members if not m.trusted and not m.report_only]
    bans = [m for m in acting if m.action == "ban_ip" and m.key_type == "ip"]
    locks = [m for m in acting if m.action == "lock_account"]
    if not members and not (inc.trusted or inc.report_only):  # nothing known of its members: the incident's fields
        if inc.action == "ban_ip" and inc.ips:
            bans = [Member("", "ip", ip, "ban_ip") for ip in inc.ips]
        elif inc.action == "lock_account" and inc.accounts:
            locks = [Member("", "account", a, "lock_account") for a in inc.accounts]
    lines: list[str] = []
    if bans:
        targets = list(dict.fromkeys(m.target for m in bans))
        if firewall == DRY_RUN:
            lines.append(f"dry run: would have banned {_ips(len(targets))}: {_listed(targets)} (the firewall was "
                         "not changed)")
        else:
            said = list(dict.fromkeys(m.done for m in bans if m.done))
            if said:
                lines.append(_listed(said))
            if not said:
                lines.append(f"proposed: ban {_ips(len(targets))}: {_listed(targets)} (no enforcer acted on it)")
    if locks:
        accounts = list(dict.fromkeys(m.target for m in locks))
        lines.append(f"proposed: lock account {_listed(accounts)} — {NOT_LOCKED}")
    if lines:
        return lines
    if inc.trusted or (members and all(m.trusted for m in members)):
        return ["nothing: trusted network or account (alert only)"]
    if inc.report_only or (members and all(m.report_only for m in members)):
        would = ACTION_TEXT.get(inc.action, inc.action)
        return [f"nothing: its rules are report-only (would {would})" if inc.action != "alert"
                else "nothing: its rules are report-only"]
    return ["nothing: alert only"]
