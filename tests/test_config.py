"""The TOML config: typed values, relative paths, and errors that name the file, the line and the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from fraudwatch.config import load_config
from fraudwatch.errors import ConfigError

GOOD = """\
[store]
path = "data/fraudwatch.duckdb"

[[sources]]
path = "/home/kunshi/mbx3000/log/sipproxy.log"
format = "vos3000-sipproxy"
timezone = "Asia/Shanghai"

[[sources]]
path = "cdr/"
format = "vos3000-cdr"

[trusted]
networks = ["203.0.113.0/24", "2001:db8::/32", "198.51.100.7"]
accounts = ["10001"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fraudwatch.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_good_config_is_typed_and_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD))
    assert cfg.store_path == tmp_path / "data/fraudwatch.duckdb"
    assert [s.path for s in cfg.sources] == [Path("/home/kunshi/mbx3000/log/sipproxy.log"), tmp_path / "cdr"]
    assert cfg.sources[0].timezone == "Asia/Shanghai" and cfg.sources[1].timezone == "UTC"
    assert [str(n) for n in cfg.trusted_networks] == ["203.0.113.0/24", "2001:db8::/32", "198.51.100.7/32"]
    assert cfg.trusted_accounts == ("10001",)


@pytest.mark.parametrize(("change", "line", "reason"), [
    (('timezone = "Asia/Shanghai"', 'timezone = "Mars/Base"'), 7, "unknown time zone 'Mars/Base'"),
    (('"198.51.100.7"]', '"198.51.100.300"]'), 14, "'198.51.100.300' is not an IP address or network"),
    (('format = "vos3000-cdr"', 'fromat = "vos3000-cdr"'), 11, "unknown key 'fromat' in [sources]"),
    (('path = "cdr/"', 'path = 5'), 10, "every [[sources]] needs 'path'"),
    (('[trusted]', '[trustd]'), 13, "unknown section 'trustd'"),
    (('accounts = ["10001"]', 'accounts = [10001]'), 15, "'accounts' must be a list of account numbers"),
    (('[store]', '[store'), 1, "invalid TOML"),
])
def test_errors_name_file_line_and_reason(tmp_path: Path, change: tuple[str, str], line: int, reason: str) -> None:
    path = write(tmp_path, GOOD.replace(*change))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}:{line}: "), str(info.value)
    assert reason in str(info.value)


def test_missing_explicit_config_is_an_error_but_no_config_means_defaults(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml")
    monkeypatch.chdir(tmp_path)
    if Path("/etc/fraudwatch/fraudwatch.toml").exists():
        pytest.skip("this machine has a system-wide config")
    cfg = load_config(None)
    assert cfg.path is None and cfg.store_path == Path("fraudwatch.duckdb") and cfg.sources == ()


@pytest.mark.parametrize("section", ["model", "report", "vos3000"])
def test_a_section_no_code_reads_yet_is_refused(tmp_path: Path, section: str) -> None:
    """An operator who writes `[vos3000]` must not believe it is in force before the code that reads it exists."""
    path = write(tmp_path, GOOD + f"\n[{section}]\nenabled = true\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}:17: unknown section '{section}'"), str(info.value)
