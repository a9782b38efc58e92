"""Every shipped format's annotated samples, checked field by field (fail2ban's failJSON discipline).

A pattern or ignore rule without samples fails to load, so it fails here; a sample that matches another pattern
than its own fails; every `negative` line must be rejected with the stated reason.
"""

from __future__ import annotations

import datetime as dt
import decimal
from pathlib import Path
from typing import Any

import pytest

from fraudwatch.formats.csvspec import CsvFormat
from fraudwatch.formats.registry import Format, load_formats
from fraudwatch.formats.spec import LineFormat
from fraudwatch.formats.trial import trial
from fraudwatch.ingest import Ingestor
from fraudwatch.rulesdir import shipped_rules_dir
from fraudwatch.store.db import Store

FORMATS = load_formats()
LINE_FORMATS = sorted(n for n, f in FORMATS.items() if isinstance(f, LineFormat))
CSV_FORMATS = sorted(n for n, f in FORMATS.items() if isinstance(f, CsvFormat))
REF = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)


def same(got: Any, want: Any) -> bool:
    """Compare a stored value with a sample's expectation written in YAML."""
    if want is None:
        return got is None
    if isinstance(got, dt.datetime):
        return got == dt.datetime.fromisoformat(str(want))
    if isinstance(got, decimal.Decimal):
        return got == decimal.Decimal(str(want))
    return bool(got == want)


def test_every_shipped_format_file_loads_and_names_are_unique() -> None:
    files = sorted((shipped_rules_dir() / "formats").glob("*.yaml"))
    assert len(files) == len(FORMATS), "two format files share a name"
    assert {"vos3000-sipproxy", "vos3000-mbx", "vos3000-cdr", "vos3000-customers"} <= set(FORMATS)


@pytest.mark.parametrize("name", LINE_FORMATS)
def test_line_format_samples(name: str) -> None:
    fmt = FORMATS[name]
    assert isinstance(fmt, LineFormat)
    for pattern in fmt.patterns:
        assert pattern.samples, f"{name}/{pattern.name} has no sample"
        results = trial(fmt, [s.line for s in pattern.samples], ref_time=REF)
        for sample, res in zip(pattern.samples, results, strict=True):
            where = f"{sample.where}: {sample.line[:80]}"
            assert res.matched, f"{where}: not parsed ({res.reason or 'ignored'})"
            assert res.pattern == pattern.name, f"{where}: parsed by '{res.pattern}', not '{pattern.name}'"
            for field, want in sample.expect.items():
                got = res.fields.get(field)
                assert same(got, want), f"{where}: {field} = {got!r}, sample expects {want!r}"


@pytest.mark.parametrize("name", LINE_FORMATS)
def test_ignore_rules_swallow_their_samples(name: str) -> None:
    fmt = FORMATS[name]
    assert isinstance(fmt, LineFormat)
    for rule in fmt.ignores:
        for res, line in zip(trial(fmt, list(rule.samples), ref_time=REF), rule.samples, strict=True):
            assert res.ignored, f"{rule.where}: ignore rule '{rule.name}' does not swallow {line[:80]!r}"


@pytest.mark.parametrize("name", LINE_FORMATS)
def test_negative_samples_are_rejected_with_reason(name: str) -> None:
    fmt = FORMATS[name]
    assert isinstance(fmt, LineFormat)
    results = trial(fmt, [n.line for n in fmt.negatives], ref_time=REF)
    for neg, res in zip(fmt.negatives, results, strict=True):
        assert not res.matched and not res.ignored, f"{neg.where}: negative sample was accepted: {res.fields}"
        assert neg.reason in (res.reason or ""), f"{neg.where}: rejected for '{res.reason}', expected '{neg.reason}'"


def test_negative_samples_exist_for_vos_formats() -> None:
    for name in ("vos3000-sipproxy", "vos3000-mbx"):
        fmt = FORMATS[name]
        assert isinstance(fmt, LineFormat) and fmt.negatives


@pytest.mark.parametrize("name", CSV_FORMATS)
def test_csv_format_samples(name: str, tmp_path: Path) -> None:
    fmt = FORMATS[name]
    assert isinstance(fmt, CsvFormat)
    for i, sample in enumerate(fmt.samples):
        path = tmp_path / f"sample{i}.csv"
        path.write_text(sample.csv, encoding="utf-8")
        with Store(tmp_path / f"s{i}.duckdb") as store:
            summary = Ingestor(store, FORMATS).ingest(path, name)
            assert summary.error is None, f"{sample.where}: {summary.error}"
            assert summary.counts.rejected == sample.rejected, f"{sample.where}: {summary.counts.reasons}"
            cur = store.con.execute(f"SELECT * FROM {fmt.table} ORDER BY {fmt.key}")
            cols = [d[0] for d in cur.description]
            rows = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
        assert len(rows) == len(sample.expect), f"{sample.where}: {len(rows)} rows stored"
        for want, got in zip(sample.expect, rows, strict=True):
            for field, value in want.items():
                assert same(got[field], value), f"{sample.where}: {field} = {got[field]!r}, expected {value!r}"
        assert summary.parsed + summary.counts.ignored + summary.counts.rejected == summary.lines


def test_every_format_names_its_table_columns_only() -> None:
    """A format whose groups do not exist in its table cannot load: covered by the loader, proven here."""
    fmt: Format = FORMATS["vos3000-sipproxy"]
    assert isinstance(fmt, LineFormat)
    assert all("ts" in p.groups for p in fmt.patterns)
