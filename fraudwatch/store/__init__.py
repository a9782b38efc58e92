"""The DuckDB store: schema, migrations, the single writer and read-only access."""

from fraudwatch.store.db import Store, open_read_only

__all__ = ["Store", "open_read_only"]
