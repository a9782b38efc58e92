"""Live equals replay: alerts raised while ingesting (the watcher's path) match a replay of the stored data,
and the detection CLI (detect, alerts list/show, lint) behaves."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.conftest import Run
from tests.test_ingest_sample import copy_sample

KEY = ("rule", "key", "severity", "first_seen", "detected_at", "count", "action", "trusted")


def _alerts(cli: Callable[..., Run], config: Path, *extra: str) -> list[tuple[object, ...]]:
    run = cli("--config", config, "alerts", "list", "--json", *extra)
    assert run.code == 0, run.err
    return sorted(tuple(a[k] for k in KEY) for a in json.loads(run.out))


def test_alerts_raised_during_ingest_equal_a_replay(tmp_path: Path, cli: Callable[..., Run]) -> None:
    folder = copy_sample(tmp_path)
    config = folder / "fraudwatch.toml"
    assert cli("--config", config, "ingest", "--detect", "--quiet").code == 0
    live = _alerts(cli, config)
    assert live, "the sample's attacks raised no alert at all"
    replayed = cli("--config", config, "detect", "--dry-run", "--json")
    assert replayed.code == 0, replayed.err
    replay_rows = sorted(tuple(a[k] for k in KEY) for a in json.loads(replayed.out)["alerts"])
    assert replay_rows == live


def test_detect_saves_replaces_and_shows(tmp_path: Path, cli: Callable[..., Run]) -> None:
    folder = copy_sample(tmp_path)
    config = folder / "fraudwatch.toml"
    assert cli("--config", config, "ingest", "--quiet").code == 0
    first = cli("--config", config, "detect", "--json")
    assert first.code == 0, first.err
    n = len(json.loads(first.out)["alerts"])
    assert n > 0
    assert cli("--config", config, "detect").code == 0  # a second replay replaces, not duplicates
    listed = json.loads(cli("--config", config, "alerts", "list", "--json").out)
    assert len(listed) == n and all(a["origin"] == "replay" for a in listed)
    for field in ("id", "rule", "severity", "key_type", "key", "first_seen", "last_seen", "count", "action"):
        assert field in listed[0]
    ip_alert = next(a for a in listed if a["key_type"] == "ip")
    shown = cli("--config", config, "alerts", "show", str(ip_alert["id"]), "--json")
    assert shown.code == 0
    detail = json.loads(shown.out)
    assert detail["raw_lines"] and all(ip_alert["key"] in (r["text"] or "") for r in detail["raw_lines"])
    text = cli("--config", config, "alerts", "show", str(ip_alert["id"]))
    assert ip_alert["key"] in text.out and "evidence lines" in text.out
    missing = cli("--config", config, "alerts", "show", "999999")
    assert missing.code != 0 and "no alert 999999" in missing.err
    since = cli("--config", config, "alerts", "list", "--json", "--since", "2030-01-01")
    assert json.loads(since.out) == []


def test_lint_names_file_line_and_reason(tmp_path: Path, cli: Callable[..., Run]) -> None:
    assert cli("lint").code == 0
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "bad.yaml").write_text(
        "rules:\n"
        "  - id: ok-rule\n    type: threshold\n    key: src_ip\n    warning: 5\n"
        "  - id: bad-type\n    type: nosuch\n    warning: 5\n"
        "  - id: bad-window\n    type: threshold\n    window: soon\n    warning: 5\n", encoding="utf-8")
    run = cli("lint", folder)
    assert run.code == 2
    errors = run.err.strip().splitlines()
    assert len(errors) == 2
    assert f"{folder / 'bad.yaml'}:7: rule 'bad-type': unknown type 'nosuch'" in errors[0]
    assert f"{folder / 'bad.yaml'}:11: rule 'bad-window'" in errors[1] and "not a duration" in errors[1]
    assert "1 rule(s) valid, 2 error(s)" in run.out
