"""A broken format file fails with its file, line and reason — never a traceback, never a silent skip."""

from __future__ import annotations

from pathlib import Path

import pytest

from fraudwatch.errors import ConfigError
from fraudwatch.formats.registry import load_format_file, load_formats

GOOD = """\
name: tiny
table: sip_events
time:
  formats: ["%Y-%m-%d %H:%M:%S"]
prefix: '(?P<ts>\\S+ \\S+) '
patterns:
  - name: fail
    regex: 'FAIL from (?P<src_ip>\\S+)'
    set: {event: auth_failure}
    samples:
      - line: '2026-11-20 03:14:07 FAIL from 192.0.2.1'
        expect: {src_ip: 192.0.2.1}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fmt.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_good_file_loads(tmp_path: Path) -> None:
    fmt = load_format_file(write(tmp_path, GOOD))
    assert fmt.name == "tiny"


@pytest.mark.parametrize(("change", "line", "reason"), [
    (("(?P<src_ip>", "(?P<nosuch>"), 8, "group 'nosuch' in pattern 'fail' is not a column of sip_events"),
    (("    samples:\n      - line: '2026-11-20 03:14:07 FAIL from 192.0.2.1'\n        expect: {src_ip: 192.0.2.1}\n",
      ""), 7, "every pattern needs 'samples'"),
    (("table: sip_events", "table: nope"), 2, "'table' must be one of"),
    (("FAIL from (?P<src_ip>\\S+)", "FAIL (?<=x) (?P<src_ip>\\S+)"), 7, "regex does not compile in RE2"),
    (("{event: auth_failure}", "{id: 3}"), 9, "'set.id' is not a column"),
    (("name: tiny", "name: Tiny Format"), 1, "'name' must be lower-case"),
    (("  formats:", "  formatz:"), 4, "unknown key 'time.formatz'"),
    (("    regex: 'FAIL", "    regexx: 'FAIL"), 7, "unknown key 'regexx'"),
    (("expect: {src_ip: 192.0.2.1}", "expect: {source_ip: 1}"), 12, "unknown column 'source_ip'"),
    (("patterns:", "patterns: [\n"), 8, "invalid YAML"),
    (("FAIL from (?P<src_ip>", "(FAIL) from (?P<src_ip>"), 8, "unnamed capturing group"),
])
def test_errors_name_file_line_and_reason(tmp_path: Path, change: tuple[str, str], line: int, reason: str) -> None:
    path = write(tmp_path, GOOD.replace(*change))
    with pytest.raises(ConfigError) as info:
        load_format_file(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert reason in message


def test_token_must_be_defined(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("(?P<src_ip>\\S+)", "(?P<src_ip><HOST>)"))
    with pytest.raises(ConfigError, match=r"unknown token <HOST>"):
        load_format_file(path)


def test_user_folder_overrides_shipped_format_by_name(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "sip.yaml").write_text(GOOD.replace("name: tiny", "name: vos3000-sipproxy"), encoding="utf-8")
    formats = load_formats([folder])
    assert formats["vos3000-sipproxy"].path == folder / "sip.yaml"
    assert "vos3000-mbx" in formats


def test_prefix_variants_with_different_groups_fill_the_right_columns(tmp_path: Path) -> None:
    """DuckDB returns captures by position: each prefix variant must use its own group order."""
    from fraudwatch.formats.spec import LineFormat
    from fraudwatch.formats.trial import trial

    text = GOOD.replace("prefix: '(?P<ts>\\S+ \\S+) '",
                        "prefix:\n  - '(?P<ts>\\S+ \\S+) '\n  - '(?P<host>[a-z]+) (?P<ts>\\S+ \\S+) '")
    fmt = load_format_file(write(tmp_path, text))
    assert isinstance(fmt, LineFormat)
    lines = ["2026-11-20 03:14:07 FAIL from 192.0.2.1", "pbx 2026-11-20 03:14:08 FAIL from 192.0.2.2"]
    plain, hosted = trial(fmt, lines)
    assert plain.fields["src_ip"] == "192.0.2.1" and "host" not in plain.fields
    assert hosted.fields["host"] == "pbx" and hosted.fields["src_ip"] == "192.0.2.2"
    assert hosted.fields["ts"].second == 8
