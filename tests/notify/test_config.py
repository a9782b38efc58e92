"""`[alerts]`: channels, routes, realert, quiet hours; every mistake names the file, the line and the reason."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from fraudwatch.config import load_config
from fraudwatch.errors import ConfigError

GOOD = """\
[alerts]
timezone = "Asia/Shanghai"
send_timeout = "5s"
digest_top = 5

[alerts.realert]
default = "30m"
"scanner-*" = "6h"

[alerts.quiet_hours]
start = "22:00"
end = "07:00"

[[alerts.channels]]
name = "noc-mail"
url = "mailtos://fraudwatch:secret@smtp.example.com?to=noc@example.com"

[[alerts.channels]]
name = "noc-whatsapp"
url_env = "FW_TEST_WHATSAPP_URL"

[[alerts.channels]]
name = "noc-slack"
url = "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#noc"

[[alerts.routes]]
name = "toll fraud"
severity = "critical"
tags = ["toll-fraud"]
channels = ["noc-whatsapp", "noc-mail"]

[[alerts.routes]]
tags = ["scanner", "flood"]
channels = ["noc-slack"]
digest = "5m"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fraudwatch.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_good_alerts_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FW_TEST_WHATSAPP_URL", raising=False)
    a = load_config(write(tmp_path, GOOD)).alerts
    assert [c.name for c in a.channels] == ["noc-mail", "noc-whatsapp", "noc-slack"]
    assert a.timezone == "Asia/Shanghai" and a.send_timeout == 5.0 and a.digest_top == 5
    assert a.realert == 1800 and a.realert_for("scanner-user-agent") == 6 * 3600 and a.realert_for("x") == 1800
    assert a.routes[0].severity == ("critical",) and a.routes[0].channels == ("noc-whatsapp", "noc-mail")
    assert a.routes[1].digest == 300 and a.routes[1].name == "route 2"
    assert a.routes[0].matches("high-risk-spend-account", "critical", ("toll-fraud", "irsf"))
    assert not a.routes[0].matches("high-risk-spend-account", "warning", ("toll-fraud",))
    assert a.routes[1].matches("register-flood-ip", "warning", ("flood", "register"))
    wa = a.channel("noc-whatsapp")
    assert wa is not None and wa.url is None
    with pytest.raises(ConfigError, match=r"fraudwatch.toml:20: channel 'noc-whatsapp': environment variable "
                                          r"FW_TEST_WHATSAPP_URL is not set"):
        wa.resolved_url()
    monkeypatch.setenv("FW_TEST_WHATSAPP_URL", "whatsapp://abc123@12345/15551234567")
    assert wa.resolved_url().startswith("whatsapp://")
    quiet = a.quiet_hours
    assert quiet is not None
    assert quiet.contains(dt.datetime(2026, 11, 20, 23, 30)) and quiet.contains(dt.datetime(2026, 11, 20, 6, 59))
    assert not quiet.contains(dt.datetime(2026, 11, 20, 7, 0))


def test_no_alerts_section_means_no_channels(tmp_path: Path) -> None:
    a = load_config(write(tmp_path, "[store]\npath = 'x.duckdb'\n")).alerts
    assert a.channels == () and a.routes == ()


@pytest.mark.parametrize(("text", "line", "reason"), [
    ('[alerts]\n\n[[alerts.channels]]\nname = "x"\nurl = "nosuch://whatever"\n', 5,
     "channel 'x': not a URL apprise can send to"),
    ('[[alerts.channels]]\nname = "x"\nurl = "json://localhost/h"\n\n[[alerts.routes]]\nchannels = ["y"]\n', 6,
     "unknown channel 'y' (defined: x)"),
    ('[[alerts.channels]]\nname = "x"\nurl = "json://localhost/h"\n\n[[alerts.routes]]\nchannels = ["x"]\n'
     'digest = "soon"\n', 7, "'digest': 'soon' is not a duration"),
    ('[[alerts.channels]]\nname = "x"\nurl = "json://localhost/h"\n[[alerts.routes]]\nchannels = ["x"]\n'
     'severity = ["urgent"]\n', 6, "unknown severity 'urgent'"),
    ('[alerts]\ntimezone = "Asia/Shangai"\n', 2, "unknown time zone 'Asia/Shangai'"),
    ('[alerts]\nrealert = "never"\n', 2, "'realert': 'never' is not a duration"),
    ('[alerts.realert]\ndefault = "1h"\nscanner-user-agent = "forever"\n', 3, "'scanner-user-agent': 'forever'"),
    ('[alerts.quiet_hours]\nstart = "22:00"\nend = "25:00"\n', 3, "'end' must be a local time"),
    ('[alerts]\nchanels = []\n', 2, "unknown key 'chanels' in [alerts]"),
    ('[[alerts.channels]]\nname = "x"\n', 2, "channel 'x' needs exactly one of 'url' or 'url_env'"),
    ('[[alerts.channels]]\nname = "x"\nurl = "json://a/b"\n[[alerts.channels]]\nname = "x"\nurl = "json://a/c"\n',
     5, "channel 'x' is defined twice"),
    ('[[alerts.channels]]\nname = "x"\nurl_env = "not a var"\n', 3, "'url_env' must be the name"),
])
def test_bad_alerts_config_names_file_and_line(tmp_path: Path, text: str, line: int, reason: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value).startswith(f"{path}:{line}: "), str(err.value)
    assert reason in str(err.value)


def test_bad_url_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FW_TEST_BAD_URL", "nosuch://x")
    path = write(tmp_path, '[[alerts.channels]]\nname = "x"\nurl_env = "FW_TEST_BAD_URL"\n')
    with pytest.raises(ConfigError, match=r":3: channel 'x': \$FW_TEST_BAD_URL is not a URL apprise can send to"):
        load_config(path)
