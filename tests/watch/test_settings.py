"""[watch] settings: defaults, bounds, loopback-only metrics; errors name file, line and reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from fraudwatch.config import parse_config
from fraudwatch.errors import ConfigError


def _cfg(text: str) -> object:
    return parse_config(Path("/etc/fraudwatch/fw.toml"), text)


def test_defaults_and_values() -> None:
    cfg = parse_config(Path("fw.toml"), "[watch]\nbatch_delay_ms = 0\npublish_seconds = 30\ninotify = false\n")
    assert (cfg.watch.batch_delay_ms, cfg.watch.publish_seconds, cfg.watch.inotify) == (0, 30.0, False)
    assert parse_config(Path("fw.toml"), "").watch.publish_seconds == 10.0
    assert parse_config(Path("fw.toml"), "").watch.memory_limit == "512MB"
    assert parse_config(Path("fw.toml"), "[watch]\nmemory_limit = ' 2GiB '\n").watch.memory_limit == "2GiB"
    assert parse_config(Path("fw.toml"), "[watch]\nmemory_limit = ''\n").watch.memory_limit == ""


@pytest.mark.parametrize(("text", "line", "reason"), [
    ("[store]\npath = 'x'\n[watch]\npublish_seconds = 120\n", 4, "'publish_seconds' must be a number from 1 to 60"),
    ("[watch]\nbatch_delay = 5\n", 2, "unknown key 'batch_delay' in [watch]"),
    ("[watch]\nmetrics = '0.0.0.0:9851'\n", 2, "'metrics' must be a loopback HOST:PORT"),
    ("[watch]\nmetrics = '127.0.0.1:99999'\n", 2, "'metrics' must be a loopback HOST:PORT"),
    ("[watch]\ninotify = 'yes'\n", 2, "'inotify' must be true or false"),
    ("[watch]\npoll_seconds = true\n", 2, "'poll_seconds' must be a number"),
    ("[watch]\nmemory_limit = '512'\n", 2, "'memory_limit' must be a size such as \"512MB\""),
    ("[watch]\nmemory_limit = \"1GB'; SET threads = 1; --\"\n", 2, "'memory_limit' must be a size"),
])
def test_errors_name_file_line_and_reason(text: str, line: int, reason: str) -> None:
    with pytest.raises(ConfigError) as err:
        _cfg(text)
    assert str(err.value).startswith(f"/etc/fraudwatch/fw.toml:{line}: {reason}")

