"""The store's schema: migrations create every documented table, and the generated docs are current."""

from __future__ import annotations

from pathlib import Path

import duckdb

from fraudwatch.store.db import Store, open_read_only
from fraudwatch.store.docs import render_markdown
from fraudwatch.store.schema import MIGRATIONS, SCHEMA_VERSION, TABLES

ROOT = Path(__file__).resolve().parents[2]


def test_docs_schema_md_is_generated_from_the_schema() -> None:
    assert (ROOT / "docs" / "schema.md").read_text(encoding="utf-8") == render_markdown(), \
        "docs/schema.md is stale: run `.venv/bin/python -m fraudwatch.store.docs > docs/schema.md`"


def test_a_new_store_has_every_table_with_its_types(tmp_path: Path) -> None:
    with Store(tmp_path / "s.duckdb") as store:
        for table in TABLES.values():
            got = store.con.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ? "
                "ORDER BY ordinal_position", [table.name]).fetchall()
            assert got == [(c.name, c.type.replace("TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE")) for c in table.columns]
    con = open_read_only(tmp_path / "s.duckdb")
    assert con.execute("SELECT max(version) FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    con.close()


def test_reopening_does_not_migrate_twice_and_newer_stores_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    Store(path).close()
    Store(path).close()
    con = duckdb.connect(str(path))
    assert con.execute("SELECT count(*) FROM schema_version").fetchall() == [(len(MIGRATIONS),)]
    con.execute("INSERT INTO schema_version VALUES (?, now())", [SCHEMA_VERSION + 1])
    con.close()
    import pytest

    from fraudwatch.errors import StoreError

    with pytest.raises(StoreError, match="newer than this fraudwatch"):
        Store(path)
