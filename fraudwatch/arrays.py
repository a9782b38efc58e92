"""Arrow arrays built from their buffers, for the ingest's hot paths.

`pa.array` would build the same arrays, but its first call imports pandas (to check whether it was handed a pandas
object): a cost paid on the way to the first chunk by an ingest that never uses pandas (figures:
benchmarks/RESULTS.md, "Arrow arrays built from buffers").
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import pyarrow as pa


def int64s(values: np.ndarray) -> pa.Array:
    """A numpy array as an Arrow int64 array (no copy when it already is contiguous int64)."""
    values = np.ascontiguousarray(values, dtype=np.int64)
    return pa.Array.from_buffers(pa.int64(), len(values), [None, pa.py_buffer(values)])


def bools(values: np.ndarray) -> pa.Array:
    """A numpy array of truth values as an Arrow boolean array, bit-packed here (`pa.array` would import pandas)."""
    values = np.ascontiguousarray(values, dtype=bool)
    return pa.Array.from_buffers(pa.bool_(), len(values), [None, pa.py_buffer(np.packbits(values,
                                                                                        bitorder="little"))])


def strings(values: Sequence[str | None]) -> pa.Array:
    """Python strings (or None) as an Arrow string array (32-bit offsets: under 2 GiB of text, as DuckDB's
    vectors of a few thousand values are). A little slower a value than `pa.array` (figures: benchmarks/RESULTS.md,
    "Arrow arrays built from buffers")."""
    encoded = [b"" if v is None else v.encode() for v in values]
    offsets = np.zeros(len(encoded) + 1, np.int32)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    valid = np.fromiter((v is not None for v in values), bool, len(values))
    nulls = len(values) - int(valid.sum())
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little")) if nulls else None
    return pa.StringArray.from_buffers(len(values), pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded)), bitmap,
                                       nulls)


def int64_values(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """An int64 array without nulls as numpy, read from its buffer (`to_numpy` would import pandas)."""
    arr = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    assert arr.type == pa.int64() and not arr.null_count
    return np.frombuffer(arr.buffers()[1], dtype=np.int64, count=len(arr), offset=arr.offset * 8)


def repeated(value: str, n: int) -> pa.Array:
    """One string `n` times."""
    return strings([value]).take(int64s(np.zeros(n, np.int64)))


def utc_micros(values: np.ndarray) -> pa.Array:
    """Epoch microseconds as a UTC timestamp array (TIMESTAMPTZ)."""
    values = np.ascontiguousarray(values, dtype=np.int64)
    return pa.Array.from_buffers(pa.timestamp("us", tz="UTC"), len(values), [None, pa.py_buffer(values)])


_MICROS = {"s": 1_000_000, "ms": 1_000, "us": 1}
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def instant(scalar: pa.TimestampScalar) -> dt.datetime | None:
    """A timestamp scalar (of a time zone's instants, as TIMESTAMPTZ columns are) as a UTC datetime: its `as_py`
    imports pandas. Nanoseconds are cut to microseconds, as Python's datetime holds them."""
    if not scalar.is_valid:
        return None
    unit = scalar.type.unit
    micros = scalar.value // 1_000 if unit == "ns" else scalar.value * _MICROS[unit]
    return _EPOCH + dt.timedelta(microseconds=micros)
