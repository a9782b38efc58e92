"""Imports in watch, enforce and notify point down only: enforce and notify import neither the watcher nor each
other (nor the CLI), and the watcher does not import the CLI. Every import counts, type-only ones included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "fraudwatch"
FORBIDDEN = {
    "enforce": ("fraudwatch.watch", "fraudwatch.notify", "fraudwatch.cli", "fraudwatch.commands"),
    "notify": ("fraudwatch.watch", "fraudwatch.enforce", "fraudwatch.cli", "fraudwatch.commands"),
    "watch": ("fraudwatch.cli", "fraudwatch.commands"),
}


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_point_down(package: str) -> None:
    found = [(str(path.relative_to(PACKAGE)), name) for path in sorted((PACKAGE / package).rglob("*.py"))
             for name in sorted(imported(path))
             if any(name == up or name.startswith((f"{up}.", f"{up}_")) for up in FORBIDDEN[package])]
    assert found == []
