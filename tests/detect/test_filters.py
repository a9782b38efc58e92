"""The `where:` language compiled to polars expressions: each operator, nulls, and the errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest

from fraudwatch.detect.fields import columns_of
from fraudwatch.detect.filters import FilterError, Selection, compile_conjuncts, compile_where, load_list, select
from tests.detect.frames import lists_dir, sip

COLUMNS = columns_of("sip_events")


@pytest.fixture
def frame() -> pl.DataFrame:
    rows: list[dict[str, Any]] = [
        {"t": 0, "event": "request", "method": "REGISTER", "src_ip": "192.0.2.1", "username": "1001",
         "user_agent": "friendly-scanner", "callee": "+44 909 879 0000"},
        {"t": 1, "event": "response", "method": "REGISTER", "status": 401, "src_ip": "192.0.2.2",
         "username": "alice", "callee": "00447400123456"},
        {"t": 2, "event": "response", "method": "INVITE", "status": 403, "src_ip": "192.0.2.3",
         "user_agent": "Yealink SIP-T46S"},
        {"t": 3, "event": "request", "method": "OPTIONS", "src_ip": "192.0.2.4", "username": "1002",
         "user_agent": "SIPCLI/v1.8", "callee": "8821234"},
        {"t": 4, "event": "auth_failure"},
    ]
    return sip(*rows)


def ids(tmp_path: Path, frame: pl.DataFrame, where: dict[str, Any]) -> list[int]:
    folder = lists_dir(tmp_path, scanners=["friendly-scanner", "sipcli"], premium=["+44 90", "00882", "881"])
    expr = compile_where(where, folder, COLUMNS)
    return frame.filter(expr).get_column("id").to_list()


@pytest.mark.parametrize(("where", "expect"), [
    ({}, [1, 2, 3, 4, 5]),
    ({"event": "request"}, [1, 4]),
    ({"status": [401, 403]}, [2, 3]),
    ({"status": {"in": [401]}}, [2]),
    ({"method": {"not_in": ["OPTIONS", "INVITE"]}}, [1, 2, 5]),
    ({"status": {"lt": 403}}, [2]),
    ({"status": {"le": 403}}, [2, 3]),
    ({"status": {"gt": 401}}, [3]),
    ({"status": {"ge": 401, "lt": 500}}, [2, 3]),
    ({"status": {"eq": 401}}, [2]),
    ({"method": {"ne": "REGISTER"}}, [3, 4, 5]),
    ({"username": {"regex": "^[0-9]+$"}}, [1, 4]),
    ({"username": {"exists": True}}, [1, 2, 4]),
    ({"username": {"exists": False}}, [3, 5]),
    ({"user_agent": {"list": "scanners"}}, [1, 4]),
    ({"callee": {"prefix_list": "premium"}}, [1, 4]),
    ({"any": [{"status": 403}, {"event": "auth_failure"}]}, [3, 5]),
    ({"not": {"event": "request"}}, [2, 3, 5]),
    ({"not": {"any": [{"event": "request"}, {"status": 403}]}}, [2, 5]),
    ({"event": "response", "method": "REGISTER"}, [2]),
    ({"username": 1001}, [1]),  # YAML reads 1001 as a number; the column is text
])
def test_operators(tmp_path: Path, frame: pl.DataFrame, where: dict[str, Any], expect: list[int]) -> None:
    assert ids(tmp_path, frame, where) == expect


def test_nulls_never_equal_but_are_not_in(tmp_path: Path, frame: pl.DataFrame) -> None:
    assert ids(tmp_path, frame, {"status": 401}) == [2]
    assert ids(tmp_path, frame, {"status": {"not_in": [401]}}) == [1, 3, 4, 5]
    assert ids(tmp_path, frame, {"status": {"ne": 401}}) == [1, 3, 4, 5]
    assert ids(tmp_path, frame, {"not": {"status": 401}}) == [1, 3, 4, 5]


def test_trusted_and_challenge_columns_are_known() -> None:
    assert {"trusted_ip", "challenge_repeat", "ts"} <= COLUMNS
    assert {"callee_class", "callee_country", "answered"} <= columns_of("cdrs")


@pytest.mark.parametrize(("where", "reason"), [
    ({"evnt": "request"}, "unknown field 'evnt'"),
    ({"status": {"greater": 400}}, "unknown operator 'greater'"),
    ({"status": {"lt": [1, 2]}}, "'lt' takes one value"),
    ({"status": {"in": 401}}, "'in' takes a list"),
    ({"username": {"regex": "(["}}, "bad regex"),
    ({"username": {"regex": 5}}, "'regex' takes a regular expression"),
    ({"any": {"status": 1}}, "'any' takes a list of conditions"),
    ({"any": []}, "'any' takes a list of conditions"),
    ({"not": [{"status": 1}]}, "'not' takes a mapping"),
    ({"user_agent": {"list": "nope"}}, "no list named 'nope'"),
    ({"any": [{"nested_bad": 1}]}, "unknown field 'nested_bad'"),
    ({"status": "401"}, "'status' is a number"),
    ({"status": {"in": [401, "403"]}}, "'status' is a number"),
    ({"trusted_ip": "yes"}, "'trusted_ip' is true or false"),
])
def test_errors(tmp_path: Path, where: dict[str, Any], reason: str) -> None:
    with pytest.raises(FilterError, match=None) as info:
        compile_where(where, lists_dir(tmp_path), COLUMNS)
    assert reason in str(info.value)


def test_list_files_skip_comments_and_blanks(tmp_path: Path) -> None:
    folder = tmp_path / "lists"
    folder.mkdir()
    (folder / "x.txt").write_text("# header\n\n  alpha  # trailing comment\nbeta\n   \n", encoding="utf-8")
    assert load_list(folder, "x") == ("alpha", "beta")


@pytest.mark.parametrize("where", [
    {"user_agent": {"list": "scanners"}},
    {"event": "request", "user_agent": {"list": "scanners"}},
    {"callee": {"prefix_list": "premium"}, "event": {"ne": "auth_failure"}},
    {"username": {"regex": "^[0-9]+$"}},
    {"any": [{"user_agent": {"list": "scanners"}}, {"status": 403}]},
    {"not": {"username": {"regex": "^[0-9]+$"}}},
    {"user_agent": {"regex": "^$", "exists": False}},  # null user-agents pass: the null value is evaluated too
])
def test_a_shared_selection_gives_the_rows_of_the_plain_filter(tmp_path: Path, frame: pl.DataFrame,
                                                               where: dict[str, Any]) -> None:
    """Conditions evaluated cheap ones first, costly ones once per distinct value, and shared between rules
    (`Selection`), select exactly what the compiled expression selects."""
    folder = lists_dir(tmp_path, scanners=["friendly-scanner", "sipcli"], premium=["+44 90", "882"])
    big = pl.concat([frame] * 20)  # values repeat, so costly conditions go through their distinct values
    expected = big.filter(compile_where(where, folder, COLUMNS))
    selection = Selection(big)
    conjuncts = compile_conjuncts(where, folder, COLUMNS)
    assert selection(conjuncts).equals(expected)
    assert selection(conjuncts, ["id", "username"]).equals(expected.select("id", "username"))
    assert select(big, conjuncts).equals(expected)  # without a shared selection
    assert [c.costly for c in conjuncts] == sorted(c.costly for c in conjuncts)  # cheap ones first
