"""The DuckDB store: schema, migrations, the single writer and read-only access."""
