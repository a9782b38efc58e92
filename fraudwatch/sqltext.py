"""SQL literals for constants the code itself puts in a statement (format files, config, our own paths), where
DuckDB takes no parameter: in DDL, COPY targets and `read_parquet` lists."""

from __future__ import annotations


def lit(value: object) -> str:
    """An SQL literal (a string's quotes doubled)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"
