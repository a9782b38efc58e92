"""Shared fixtures: a fresh store file, the shipped formats, and the CLI run in-process."""

from __future__ import annotations

import io
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest

from fraudwatch.cli import main
from fraudwatch.formats.registry import Format, load_formats

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


@dataclass
class Run:
    code: int
    out: str
    err: str


@pytest.fixture(scope="session")
def formats() -> dict[str, Format]:
    return load_formats()


@pytest.fixture
def cli() -> Callable[..., Run]:
    def run(*argv: str | Path) -> Run:
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            code = main([str(a) for a in argv])
        return Run(code, out.getvalue(), err.getvalue())

    return run


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "store.duckdb"
