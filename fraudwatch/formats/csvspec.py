"""CSV formats (`kind: csv`): exports whose header names the columns, in any order, in English or Chinese.

A CSV format maps each canonical column of its table to the header labels that may carry it (matched without
case, spaces or a BOM). `required` lists the essentials: a file whose header lacks one is refused as a whole, a
row whose essential is empty or unconvertible is rejected. Times may be epoch seconds, epoch milliseconds (as
VOS3000 stores them) or datetime text in the formats listed, read in the source's zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fraudwatch.errors import ConfigError, Location
from fraudwatch.formats.spec import ENGINE_COLUMNS, TimeSpec, _time_spec
from fraudwatch.store.schema import TABLES
from fraudwatch.yamlfile import Lines

CSV_TABLES = ("cdrs", "customers")


@dataclass(frozen=True)
class CsvSample:
    csv: str
    expect: tuple[dict[str, Any], ...]
    rejected: int
    where: Location


@dataclass(frozen=True, eq=False)
class CsvFormat:
    name: str
    description: str
    table: str
    path: Path
    key: str
    labels: dict[str, tuple[str, ...]]  # column -> accepted header labels
    required: tuple[str, ...]
    time: TimeSpec
    samples: tuple[CsvSample, ...]
    kind: str = "csv"

    def label_index(self) -> dict[str, str]:
        """Normalised header label -> column."""
        return {norm_label(label): col for col, labels in self.labels.items() for label in labels}


def norm_label(label: str) -> str:
    return label.strip().lstrip("\ufeff").strip().strip('"').strip().lower().replace(" ", "").replace("_", "")


def load_csv_format(doc: dict[str, Any], lines: Lines) -> CsvFormat:
    top = lines.at(doc)
    known = {"name", "description", "kind", "table", "key", "columns", "required", "time", "samples"}
    unknown = sorted(set(doc) - known)
    if unknown:
        raise ConfigError(f"unknown key '{unknown[0]}'", lines.at(doc, unknown[0]))
    name = doc.get("name")
    table = doc.get("table")
    if not isinstance(name, str) or not name:
        raise ConfigError("'name' is required", top)
    if table not in CSV_TABLES:
        raise ConfigError(f"'table' must be one of {', '.join(CSV_TABLES)}", lines.at(doc, "table"))
    columns = TABLES[table].names
    raw_cols = doc.get("columns")
    if not isinstance(raw_cols, dict) or not raw_cols:
        raise ConfigError("'columns' must map column -> [header labels]", lines.at(doc, "columns"))
    labels: dict[str, tuple[str, ...]] = {}
    for col, raw in raw_cols.items():
        at = lines.at(raw_cols, col)
        if col not in columns or col in ENGINE_COLUMNS or col in ("updated_at",):
            raise ConfigError(f"'{col}' is not a column of {table}", at)
        items = [raw] if isinstance(raw, str) else raw
        if not isinstance(items, list) or not items or not all(isinstance(x, str) for x in items):
            raise ConfigError(f"columns.{col} must be a header label or a list of them", at)
        labels[col] = tuple(items)
    seen: dict[str, str] = {}
    for col, items in labels.items():
        for label in items:
            other = seen.setdefault(norm_label(label), col)
            if other != col:
                raise ConfigError(f"header label '{label}' maps to both '{other}' and '{col}'",
                                  lines.at(raw_cols, col))
    key = doc.get("key")
    if key not in labels:
        raise ConfigError("'key' must be one of the mapped columns", lines.at(doc, "key"))
    required = doc.get("required") or []
    if not isinstance(required, list) or any(r not in labels for r in required):
        raise ConfigError("'required' must list mapped columns", lines.at(doc, "required"))
    time = _time_spec(doc.get("time") or {"formats": ["%Y-%m-%d %H:%M:%S"]}, lines, lines.at(doc, "time"))
    samples = []
    for raw in doc.get("samples") or []:
        at = lines.at(raw)
        if not isinstance(raw, dict) or not isinstance(raw.get("csv"), str):
            raise ConfigError("a CSV sample has 'csv' text and 'expect' rows", at)
        expect = raw.get("expect") or []
        if not isinstance(expect, list) or not all(isinstance(e, dict) for e in expect):
            raise ConfigError("'expect' is a list of column: value mappings", at)
        for row in expect:
            for col in row:
                if col not in columns:
                    raise ConfigError(f"sample expects unknown column '{col}'", lines.at(row, col))
        samples.append(CsvSample(raw["csv"], tuple(expect), int(raw.get("rejected") or 0), at))
    if not samples:
        raise ConfigError("a CSV format needs 'samples'", top)
    return CsvFormat(name, str(doc.get("description") or ""), str(table), lines.path, str(key), labels,
                     tuple(required), time, tuple(samples))
