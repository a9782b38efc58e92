"""`make demo` ends with the main job's result: its fraudwatch commands, read from the Makefile and run here in
a temporary folder, end with the incidents beside the labelled attacks and the bans that would be made, well
within the 90 s the issue allows after setup."""

from __future__ import annotations

import re
import shlex
import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import ROOT, Run


def _demo_commands() -> list[list[str]]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = re.search(r"^demo:.*\n((?:\t.*\n)+)", text, re.MULTILINE)
    assert recipe is not None, "no demo target"
    out = []
    for line in recipe.group(1).splitlines():
        argv = shlex.split(line.strip().lstrip("@"))
        if argv and argv[0] == "$(BIN)/fraudwatch":
            out.append(argv[1:])
    return out


def test_make_demo_ends_with_the_incidents_beside_the_labels_and_the_bans(tmp_path: Path,
                                                                          cli: Callable[..., Run]) -> None:
    commands = _demo_commands()
    assert commands[-1][-3:-1] == ["list", "--labels"]
    start = time.monotonic()
    run = None
    for argv in commands:
        run = cli(*(a.replace("$(DEMO)", str(tmp_path / "demo")) for a in argv))
        assert run.code == 0, (argv, run.err)
    assert run is not None and time.monotonic() - start < 90
    assert re.search(r"(\d+) of \1 labelled attack\(s\) in exactly one incident", run.out), run.out
    assert "bans the watcher would make" in run.out and "hold more than one" not in run.out
