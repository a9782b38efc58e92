"""Arrow arrays built from buffers (fraudwatch.arrays) equal pyarrow's own, and keep pandas out of a backfill."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from fraudwatch.arrays import instant, int64s, strings


@pytest.mark.parametrize("values", [[], [None], [""], ["198.51.100.7", None, "2001:db8::1", "", "ü€𝄞", None],
                                    [f"v{i}" if i % 3 else None for i in range(1000)]])
def test_strings_equal_pyarrows(values: list[str | None]) -> None:
    got = strings(values)
    got.validate(full=True)
    assert got.equals(pa.array(values, pa.string()))


def test_int64s_equal_pyarrows_for_any_integer_array() -> None:
    for values in (np.arange(0), np.arange(-3, 5, dtype=np.int32), np.arange(10, dtype=np.int64)[::3]):
        got = int64s(values)
        got.validate(full=True)
        assert got.equals(pa.array(values.tolist(), pa.int64()))


def test_a_backfill_does_not_import_pandas(tmp_path: Path) -> None:
    """pyarrow imports pandas on its first conversion of a Python value (0.35-0.45 s): the bulk path of a backfill
    (a log's batches of more than SMALL_PARSE lines, a CDR export's pieces) makes none. (A watcher's small batches
    and a CSV row with the wrong number of fields do: once in a process, off the bulk path.)"""
    log = tmp_path / "sipproxy.log"
    log.write_text("".join(
        f'2026-11-20 03:00:{i % 60:02d}.000 [INFO] RECV REGISTER from {ip}:5060 user="{i}" callid="c{i}" ua="x"\n'
        for i, ip in enumerate(["198.51.100.7", "2001:db8::7", "999.1.1.1"] * 1000)) + "garbage\n")
    cdr = tmp_path / "e_cdr_20261120.csv"
    cdr.write_text("flowno,starttime,stoptime,holdtime,fee,customeraccount,calleee164,callerip\n"
                   "1,1763607600000,1763607660000,60,0.25,10001,0044770090001,2001:db8::7\n"
                   "2,1763607600000,1763607660000,x,0.25,10001,0044770090001,198.51.100.7\n"
                   "3,1763607600000,1763607660000,60,0.25,10001,0044770090001,198.51.100.7\n")
    store = str(tmp_path / "f.duckdb")
    code = ("import sys\nfrom fraudwatch.cli import main\n"
            f"main(['--db', {store!r}, 'ingest', '--json', '--format', 'vos3000-sipproxy', {str(log)!r}])\n"
            f"main(['--db', {store!r}, 'ingest', '--json', {str(cdr)!r}])\n"
            "print('pandas' in sys.modules, file=sys.stderr)\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    assert run.stdout.count('"parsed": ') == 2 and '"rejected": 0' not in run.stdout, run.stdout
    assert run.stderr.strip().splitlines()[-1] == "False", run.stderr


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
@pytest.mark.parametrize("tz", ["UTC", "Asia/Kolkata"])
def test_instant_is_the_utc_time_of_as_py(unit: str, tz: str) -> None:
    per_second = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[unit]
    values = [0, 1_763_607_600 * per_second + per_second // 7, -86_401 * per_second - 1, None]
    for v, scalar in zip(values, pa.array(values, pa.timestamp(unit, tz)), strict=True):
        got = instant(scalar)
        if v is None:
            assert got is None
        else:
            want = scalar.as_py()  # pandas for nanoseconds: its Timestamp
            want = want.to_pydatetime(warn=False) if hasattr(want, "to_pydatetime") else want
            assert got == want and got.utcoffset() == dt.timedelta(0)


def test_a_backfill_with_detection_imports_no_pandas(tmp_path: Path) -> None:
    """`ingest --detect` scores in a second process: neither the ingest (the watermarks' times) nor the scoring
    process (the alerts made rows) converts a Python value with pyarrow, so neither imports pandas; nor does
    the scoring process import DuckDB."""
    log = tmp_path / "sipproxy.log"
    log.write_text("".join(
        f'2026-11-20 03:00:{i // 100:02d}.{i % 100:02d}0 [INFO] RECV REGISTER from 198.51.100.{i % 3}:5060 '
        f'user="{i}" callid="c{i}" ua="x"\n' for i in range(3000)))
    run = subprocess.run([sys.executable, "-X", "importtime", "-m", "fraudwatch", "--db", str(tmp_path / "f.duckdb"),
                          "ingest", "--json", "--detect", "--format", "vos3000-sipproxy", str(log)],
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    assert '"detection": "alongside the ingest"' in run.stdout and '"alerts": 0' not in run.stdout, run.stdout
    imported = [line.rsplit("|", 1)[1].strip() for line in run.stderr.splitlines() if line.startswith("import time:")]
    assert imported.count("fraudwatch.detect.runners.engine") == 2  # both processes reported
    assert "pandas" not in imported
    assert imported.count("duckdb") == 1  # the ingest's: the scoring process reads no store (0.1 s to import)
