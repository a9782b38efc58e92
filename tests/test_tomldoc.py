"""The one duration parser every config section, rule file and CLI option uses."""

from __future__ import annotations

import pytest

from fraudwatch.tomldoc import parse_duration


@pytest.mark.parametrize(("value", "seconds"), [
    (90, 90.0), (0.5, 0.5), ("90", 90.0), ("90s", 90.0), ("500ms", 0.5), ("15m", 900.0), ("1.5h", 5400.0),
    ("2d", 172800.0), ("1w", 604800.0), (" 5 m ", 300.0),
])
def test_durations_in_every_unit(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", [0, -5, "0s", "-1h", "1y", "10 minutes", "1h;reboot", True, None, [], "",
                                   "3650d"])
def test_what_is_not_a_duration_is_refused_with_a_reason(value: object) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(value)


@pytest.mark.parametrize(("value", "seconds"), [(90, 90.0), ("90", 90.0), ("1h", 3600.0)])
def test_whole_seconds(value: object, seconds: float) -> None:
    assert parse_duration(value, whole=True) == seconds


@pytest.mark.parametrize("value", ["1.5h", "500ms", 1.5])
def test_whole_seconds_refuse_fractions(value: object) -> None:
    with pytest.raises(ValueError, match="not a duration in whole seconds"):
        parse_duration(value, whole=True)
