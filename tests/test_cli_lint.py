"""`fraudwatch lint`: values checked against what the schema's columns can hold (`event: requets` is an error with
a suggestion), every mistake of every rule in one run, each at its line, and a single file accepted as well as a
folder."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from fraudwatch.detect.ruleset import load_rules
from fraudwatch.errors import ConfigError
from fraudwatch.formats.spec import LineFormat
from tests.conftest import Run

MISTAKES = """\
rules:
  - id: typo-event
    type: threshold
    where:
      event: requets
      method: [REGISTER, OPTION]
      status: {ge: 400, ne: 999}
    key: src_ipp
    window: 60s
    warning: 5
  - id: cdr-rule
    type: distinct
    source: cdrs
    where: {hold_seconds: {lt: "4"}, callee_class: premium, src_country: gb}
    key: customer_account
    field: callee_e16
    window: 1z
    warning: 5
    action: ban
  - id: fine
    type: threshold
    where: {event: response, status: [401, 407], method: INVITE}
    key: src_ip
    warning: 5
"""


def _lint(cli: Callable[..., Run], *paths: Path) -> tuple[int, list[str], str]:
    run = cli("lint", *paths)
    return run.code, run.err.splitlines(), run.out


def test_a_misspelt_event_name_is_an_error_with_a_suggestion(tmp_path: Path, cli: Callable[..., Run]) -> None:
    rules = tmp_path / "mine.yaml"
    rules.write_text("rules:\n  - id: r\n    type: threshold\n    where: {event: requets}\n    key: src_ip\n"
                     "    warning: 5\n", encoding="utf-8")
    code, errors, out = _lint(cli, rules)  # a file, not a folder
    assert code == 2
    assert errors == [f"fraudwatch: {rules}:4: rule 'r': 'event' has no value 'requets' (did you mean 'request'?)"]
    assert out.strip() == "0 rule(s) valid, 1 error(s)"


def test_every_mistake_of_every_rule_in_one_run(tmp_path: Path, cli: Callable[..., Run]) -> None:
    folder = tmp_path / "rules"
    folder.mkdir()
    path = folder / "mine.yaml"
    path.write_text(MISTAKES, encoding="utf-8")
    code, errors, out = _lint(cli, folder)
    assert code == 2
    at = f"fraudwatch: {path}:"
    assert errors == [
        f"{at}5: rule 'typo-event': 'event' has no value 'requets' (did you mean 'request'?)",
        f"{at}6: rule 'typo-event': 'method' has no value 'OPTION' (did you mean 'OPTIONS'?)",
        f"{at}7: rule 'typo-event': 'status' 999 is not a SIP status code (100 to 699)",
        f"{at}8: rule 'typo-event': unknown field 'src_ipp' in 'key' for source sip_events (did you mean 'src_ip'?)",
        f"{at}14: rule 'cdr-rule': 'hold_seconds' is a number: write '4' without quotes",
        f"{at}14: rule 'cdr-rule': 'callee_class' has no value 'premium' (did you mean 'premium_rate'?)",
        f"{at}14: rule 'cdr-rule': 'src_country' 'gb' is not a country code (two capital letters: GB, US) "
        "(did you mean 'GB'?)",
        f"{at}16: rule 'cdr-rule': unknown field 'callee_e16' for source cdrs (did you mean 'callee_e164'?)",
        f"{at}17: rule 'cdr-rule': 'window' '1z' is not a duration (like 90s, 15m, 2h, 7d, 1w, or a number of "
        "seconds)",
        f"{at}19: rule 'cdr-rule': 'action' must be one of alert, ban_ip, lock_account (did you mean 'ban_ip'?)",
    ]
    assert out.strip() == "1 rule(s) valid, 10 error(s)"
    again = _lint(cli, path, tmp_path / "nowhere")
    assert f"fraudwatch: {tmp_path / 'nowhere'}: no such rules file or folder" in again[1] and len(again[1]) == 11


def test_a_command_that_runs_rules_names_the_first_mistake_and_how_many_more(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(MISTAKES, encoding="utf-8")
    with pytest.raises(ConfigError) as got:
        load_rules([path], shipped=False)
    assert str(got.value) == (f"{path}:5: rule 'typo-event': 'event' has no value 'requets' (did you mean "
                              "'request'?) (and 3 more: `fraudwatch lint` lists them)")


def test_the_shipped_rules_use_only_known_values(cli: Callable[..., Run]) -> None:
    assert load_rules(collect=True).errors == []
    assert cli("lint").code == 0


def test_every_value_a_shipped_format_writes_is_known(formats: dict[str, object]) -> None:
    """The known values cannot fall behind the formats: every constant a pattern sets and every value its samples
    expect, for the columns whose values are listed, is accepted."""
    from fraudwatch.detect.known import VALUES, value_problem

    seen: set[tuple[str, str, object]] = set()
    for fmt in formats.values():
        if not isinstance(fmt, LineFormat):
            continue
        for pattern in fmt.patterns:
            for values in (pattern.set, *(s.expect for s in pattern.samples)):
                for column, value in values.items():
                    if (fmt.table, column) in VALUES or column == "status":
                        seen.add((fmt.table, column, value))
    assert {(t, c) for t, c, _ in seen} >= {("sip_events", "event"), ("sip_events", "method"),
                                            ("sip_events", "status")}
    assert [(t, c, v, value_problem(t, c, v)) for t, c, v in sorted(seen, key=str)
            if value_problem(t, c, v) is not None] == []


@pytest.mark.parametrize(("where", "problem"), [
    ("{event: Request}", "'event' has no value 'Request' (did you mean 'request'?)"),
    ("{method: {in: [register]}}", "'method' has no value 'register' (did you mean 'REGISTER'?)"),
    ("{status: 42}", "'status' 42 is not a SIP status code (100 to 699)"),
    ("{any: [{event: auth_failure}, {evnt: invalid_user}]}",
     "unknown field 'evnt' for source sip_events (did you mean 'event'?)"),
    ("{not: {direction: inbound}}", "'direction' has no value 'inbound' (known: in, out)"),
    ("{status: {gte: 400}}", "'status': unknown operator 'gte' (did you mean 'ge'?)"),
    ("{method: [INVITE, KEEPALIVE, Options]}", "'method' has no value 'Options' (did you mean 'OPTIONS'?)"),
])
def test_values_under_any_not_and_operators(tmp_path: Path, where: str, problem: str) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(textwrap.dedent(f"""\
        - id: r
          type: threshold
          where: {where}
          key: src_ip
          warning: 5
        """), encoding="utf-8")
    errors = load_rules([path], collect=True, shipped=False).errors
    assert [e.reason for e in errors] == [f"rule 'r': {problem}"]
    assert errors[0].where is not None and errors[0].where.line == 3


def test_a_rule_wrong_as_an_action_and_as_a_detector_gets_both_errors(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("- id: two\n  type: threshold\n  where: {user_agent: {list: no-such-list}}\n  key: username\n"
                    "  action: ban_ip\n  warning: 1\n", encoding="utf-8")
    reasons = [e.reason for e in load_rules([path], collect=True, shipped=False).errors]
    assert len(reasons) == 2
    assert reasons[0] == "rule 'two': action ban_ip needs an IP key (src_ip or caller_ip)"
    assert reasons[1].startswith("rule 'two': no list named 'no-such-list'")
