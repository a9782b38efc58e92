"""Arrow arrays built from buffers (fraudwatch.arrays) equal pyarrow's own, and keep pandas out of a backfill."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from fraudwatch.arrays import int64s, strings


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
