"""Rule files: typed parameters, and every mistake a ConfigError naming file, line and reason."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from fraudwatch.detect.ruleset import load_rules
from fraudwatch.detect.spec import load_rule_file
from fraudwatch.detect.types import TYPES
from fraudwatch.detect.types.aggregates import Distinct
from fraudwatch.detect.types.counts import ListMatch, Threshold
from fraudwatch.detect.types.newterm import NewTerm
from fraudwatch.detect.types.seasonal import Seasonal
from fraudwatch.errors import ConfigError
from tests.detect.frames import lists_dir


def write(folder: Path, text: str, name: str = "rules.yaml") -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def error_of(tmp_path: Path, text: str) -> ConfigError:
    """The error of loading one rule file, built into detectors as `load_rules` does."""
    folder = tmp_path / "rules"
    write(folder, text)
    with pytest.raises(ConfigError) as info:
        load_rules([folder], shipped=False, lists_dir=lists_dir(tmp_path, scanners=["sipcli"]))
    return info.value


def test_a_rule_becomes_its_typed_class(tmp_path: Path) -> None:
    path = write(tmp_path, """
        rules:
          - id: flood
            type: threshold
            where: {event: request}
            key: src_ip
            window: 2m
            warning: 30
          - id: users
            type: distinct
            key: [src_ip, account]
            field: username
            critical: 5
            cooldown: 1h
            report_only: true
            tags: brute-force
          - id: new-ip
            type: new_term
            key: account
            terms: src_ip
            learn: 7d
            warning: 1
          - id: base
            type: seasonal
            bucket: 1h
            history: 2w
            warning: 4
    """)
    flood, users, new_ip, base = load_rule_file(path, TYPES).rules
    assert isinstance(flood, Threshold) and isinstance(users, Distinct)
    assert isinstance(new_ip, NewTerm) and isinstance(base, Seasonal)
    c = flood.common
    assert (c.source, c.key, c.window, c.cooldown, c.warning, c.critical, c.action, c.line) == \
        ("sip_events", ("src_ip",), 120.0, 120.0, 30.0, None, "alert", 2)
    assert c.key_type == "ip" and c.path == path
    u = users.common
    assert users.field == "username" and u.key == ("src_ip", "account") and u.cooldown == 3600.0
    assert u.report_only and u.tags == ("brute-force",) and u.line == 8
    assert new_ip.terms == ("src_ip",) and new_ip.learn == 7 * 86400.0
    assert base.history == 14 * 86400.0 and base.direction == "both" and base.common.key_type == "global"


CASES = [
    ("unknown type", """
        - id: r1
          type: thresold
          warning: 5
     """, 3, "unknown type 'thresold'"),
    ("unknown key", """
        - id: r1
          type: threshold
          warning: 5
          windw: 10s
     """, 5, "unknown key 'windw'"),
    ("bad duration", """
        - id: r1
          type: threshold
          window: 10 minutes
          warning: 5
     """, 4, "'10 minutes' is not a duration"),
    ("bad cooldown", """
        - id: r1
          type: threshold
          window: 10s
          cooldown: soon
          warning: 5
     """, 5, "'soon' is not a duration"),
    ("bad window beside a cooldown", """
        - id: r1
          type: threshold
          cooldown: 1m
          window: soon
          warning: 5
     """, 5, "'soon' is not a duration"),
    ("bad typed duration", """
        - id: r1
          type: new_term
          key: account
          terms: [src_ip]
          learn: 0s
          warning: 1
     """, 6, "'learn' '0s' is not a duration"),
    ("missing parameter", """
        - id: r1
          type: distinct
          key: src_ip
          warning: 5
     """, 2, "'field' is required for type distinct"),
    ("no levels", """
        - id: r1
          type: threshold
     """, 2, "give 'warning' and/or 'critical'"),
    ("warning above critical", """
        - id: r1
          type: threshold
          warning: 50
          critical: 10
     """, 5, "'critical' is below 'warning'"),
    ("level not a number", """
        - id: r1
          type: threshold
          warning: lots
     """, 4, "'warning' must be a number"),
    ("bad int", """
        - id: r1
          type: spike
          baseline: 1h
          min_count: 2.5
          warning: 3
     """, 5, "'min_count' must be a whole number"),
    ("bad choice", """
        - id: r1
          type: list_match
          field: user_agent
          list: scanners
          match: glob
          warning: 1
     """, 2, "'match' must be contains, prefix or exact"),
    ("bad id", """
        - id: Not An Id
          type: threshold
          warning: 1
     """, 2, "needs an 'id'"),
    ("bad source", """
        - id: r1
          type: threshold
          source: syslog
          warning: 1
     """, 4, "'source' must be one of"),
    ("bad action", """
        - id: r1
          type: threshold
          action: nuke
          warning: 1
     """, 4, "'action' must be one of"),
    ("unknown field in where", """
        - id: r1
          type: threshold
          where: {evnt: request}
          warning: 1
     """, 4, "unknown field 'evnt' for source sip_events (did you mean 'event'?)"),
    ("unknown operator", """
        - id: r1
          type: threshold
          where: {status: {greater: 400}}
          warning: 1
     """, 4, "unknown operator 'greater'"),
    ("bad regex", """
        - id: r1
          type: threshold
          where: {username: {regex: '([0-9'}}
          warning: 1
     """, 2, "bad regex"),
    ("unknown key field", """
        - id: r1
          type: threshold
          key: srcip
          warning: 1
     """, 4, "unknown field 'srcip' in 'key' for source sip_events (did you mean 'src_ip'?)"),
    ("unknown distinct field", """
        - id: r1
          type: distinct
          key: src_ip
          field: usernme
          warning: 1
     """, 5, "unknown field 'usernme' for source sip_events (did you mean 'username'?)"),
    ("unknown list name", """
        - id: r1
          type: list_match
          key: src_ip
          field: user_agent
          list: scanner-agents
          warning: 1
     """, 2, "no list named 'scanner-agents'"),
    ("unknown list in where", """
        - id: r1
          type: threshold
          where: {user_agent: {list: nope}}
          warning: 1
     """, 2, "no list named 'nope'"),
    ("ban on a non-IP key", """
        - id: r1
          type: threshold
          key: username
          action: ban_ip
          warning: 1
     """, 2, "action ban_ip needs an IP key"),
    ("lock on a non-account key", """
        - id: r1
          type: threshold
          key: src_ip
          action: lock_account
          warning: 1
     """, 2, "action lock_account needs an account key"),
    ("sum of a text field", """
        - id: r1
          type: sum
          key: account
          field: username
          warning: 1
     """, 5, "'field' must be a numeric column"),
    ("enabled is not a bool", """
        - id: r1
          enabled: no way
     """, 3, "'enabled' must be true or false"),
    ("yaml syntax", """
        - id: r1
          type: threshold
          where: {event: [request}
     """, 4, "invalid YAML"),
]


@pytest.mark.parametrize(("text", "line", "reason"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_errors_name_file_line_and_reason(tmp_path: Path, text: str, line: int, reason: str) -> None:
    err = error_of(tmp_path, "rules:\n" + textwrap.indent(textwrap.dedent(text).lstrip("\n"), "  "))
    path = tmp_path / "rules" / "rules.yaml"
    assert str(err).startswith(f"{path}:{line}: "), str(err)
    assert reason in str(err)
    assert err.where is not None and err.where.line == line


def test_collect_gathers_every_error(tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    write(folder, """
        rules:
          - id: good
            type: threshold
            key: src_ip
            warning: 5
          - id: bad-type
            type: nosuch
            warning: 5
          - id: bad-field
            type: threshold
            where: {evnt: request}
            warning: 5
          - id: bad-window
            type: threshold
            window: soon
            warning: 5
    """)
    write(folder, "rules:\n  - id: x\n    type: threshold\n    warning: [\n", name="broken.yaml")
    rs = load_rules([folder, tmp_path / "missing"], collect=True, shipped=False, lists_dir=lists_dir(tmp_path))
    assert list(rs.rules) == ["good"]
    messages = sorted(str(e) for e in rs.errors)
    assert len(messages) == 5
    text = "\n".join(messages)
    for needle in (f"{folder / 'broken.yaml'}:", f"{folder / 'rules.yaml'}:7: rule 'bad-type': unknown type",
                   f"{folder / 'rules.yaml'}:11: rule 'bad-field': unknown field 'evnt'",
                   f"{folder / 'rules.yaml'}:15: rule 'bad-window'", "no such rules file or folder"):
        assert needle in text


def test_a_file_may_be_a_bare_list_of_rules(tmp_path: Path) -> None:
    path = write(tmp_path, """
        - id: r1
          type: list_match
          field: user_agent
          list: scanners
          match: exact
          warning: 1
    """)
    (r,) = load_rule_file(path, TYPES).rules
    assert isinstance(r, ListMatch) and r.match == "exact"


def test_enabled_false_turns_off_a_shipped_rule_by_id(tmp_path: Path) -> None:
    shipped = load_rules().rules
    assert "options-probe-ip" in shipped
    folder = tmp_path / "mine"
    write(folder, """
        rules:
          - id: options-probe-ip
            enabled: false
          - id: my-flood
            type: threshold
            enabled: true
            warning: 5
    """)
    loaded = load_rules([folder])
    assert "options-probe-ip" not in loaded.rules and loaded.disabled == {"options-probe-ip"}
    assert "my-flood" in loaded.rules and len(loaded.rules) == len(shipped)
    # a later folder may bring it back under the same id
    write(tmp_path / "later", """
        - id: options-probe-ip
          type: threshold
          where: {method: OPTIONS}
          warning: 3
    """)
    again = load_rules([folder, tmp_path / "later"])
    assert again.rules["options-probe-ip"].common.warning == 3 and not again.disabled


def test_a_replay_reads_the_columns_its_rules_name(tmp_path: Path) -> None:
    from fraudwatch.detect.ruleset import rule_columns

    folder = tmp_path / "r"
    write(folder, """
        - id: takeover
          type: new_term
          where: {event: auth_failure}
          learn_where: {reason: {regex: ok}}
          key: username
          terms: [user_agent]
          learn: 1h
          warning: 1
    """)
    rules = load_rules([folder], shipped=False).rules.values()
    cols = rule_columns(rules, "sip_events")
    assert {"event", "reason", "username", "user_agent", "call_id", "status", "src_ip", "id", "line_no"} <= set(cols)
    assert "callee" not in cols and "gateway" not in cols
