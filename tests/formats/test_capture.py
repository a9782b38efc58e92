"""The Python capture path (`LineParser.capture` + `convert_captured`, what the sentry parses with) against the
ingest SQL (`LineParser.parse`): the same rows, values and rejections on every line the formats know — their own
samples and negative samples, CrowdSec's hub logs in ../shared/peer-samples, a simulated flood — and on hostile
lines built to find where Python's `re` and RE2 could read a pattern differently."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from fraudwatch.formats.engine import LineParser, prepare_connection
from fraudwatch.formats.registry import load_formats
from fraudwatch.formats.spec import LineFormat
from fraudwatch.sim.flood import write_sipproxy_flood

HUB = Path(__file__).resolve().parents[2].parent / "shared" / "peer-samples" / "crowdsec-hub"
REF = dt.datetime(2026, 11, 26, tzinfo=dt.UTC).timestamp()
FORMATS = {n: f for n, f in load_formats().items() if isinstance(f, LineFormat)}
HOSTILE = [
    "",
    "\n",
    "2026-11-20 03:14:07.123 [INFO] RECV REGISTER from 198.51.100.7:5060 user=\"١٢٣\" callid=\"x\" ua=\"a\"\n",
    "2026-11-20 03:14:07.123 [INFO] RECV REGISTER from 198.51.100.7:٥٠٦٠ callid=\"x\" ua=\"a\"\n",
    "２０２６-11-20 03:14:07.123 [INFO] RECV REGISTER from 198.51.100.7:5060 callid=\"x\" ua=\"a\"\n",
    "2026-11-20 03:14:07.123 [INFO] RECV REGISTER from 198.51.100.7:5060 callid=\"x\" ua=\"a\"\r\n",
    "2026-11-20 03:14:07.123 [INFO] RECV REGISTER from 198.51.100.7:5060 callid=\"x\" ua=\"a\"\x0b\n",
    "2026-11-20 03:14:07.123 [INFO] SEND 403 Forbidden to 999.51.100.7:5060 method=REGISTER callid=\"z\"\n",
    "2026-11-20 03:14:07.123 [INFO] SEND 403 Forbidden to [::ffff:198.51.100.7]:5060 method=REGISTER callid=\"z\"\n",
    "2026-11-20 03:14:07.123 [INFO] SEND 403 Forbidden to 198.51.100.7:99999 method=REGISTER callid=\"z\"\n",
    "2026-11-20 03:14:07.123 [INFO] SEND 403 Forbidden to 198.51.100.7:65536 method=REGISTER callid=\"z\"\n",
    "2026-11-20 03:14:07.123 [INFO] SEND 403 Forbidden to 198.51.100.7:65535 method=REGISTER callid=\"z\"\n",
    "2026-13-40 03:14:07.123 [INFO] SEND 403 Forbidden to 198.51.100.7:5060 method=REGISTER callid=\"z\"\n",
    "2026-11-20 03:14:07.123 [INFO] RECV REGISTER from 198.51.100.7:5060 callid=\"a\\\"; rm -rf /\" ua=\"$(id)\"\n",
    "2026-11-20 03:14:07.123 [İNFO] RECV REGISTER from 198.51.100.7:5060 callid=\"x\" ua=\"a\"\n",
    # escapes around the quoted-value idiom the Python path unrolls
    '2026-11-20 03:14:07.123 [INFO] RECV REGISTER from 198.51.100.7:5060 user="a\\\\" callid="x" ua="a"\n',
    '2026-11-20 03:14:07.123 [INFO] RECV REGISTER from 198.51.100.7:5060 user="a\\" callid="x" ua="a"\n',
    '2026-11-20 03:14:07.123 [INFO] RECV REGISTER from 198.51.100.7:5060 user="\\"\\"\\\\" callid="x" ua="a"\n',
    '2026-11-20 03:14:07.123 [INFO] RECV REGISTER from 198.51.100.7:5060 user="" callid="\\x\\" ua="a"\n',
]


def _sample_lines(fmt: LineFormat) -> list[str]:
    lines = [s.line for p in fmt.patterns for s in p.samples]
    lines += [n.line for n in fmt.negatives] + [s for i in fmt.ignores for s in i.samples]
    return [line if line.endswith("\n") else line + "\n" for line in lines]


def _hub_lines(name: str) -> list[str]:
    folders = {"asterisk": "asterisk", "freeswitch": "freeswitch", "linux-netfilter": "iptables"}
    prefix = folders.get(name)
    if prefix is None or not HUB.is_dir():
        return []
    out: list[str] = []
    for folder in sorted(HUB.iterdir()):
        if folder.name.startswith(prefix) or (prefix == "iptables" and "iptables" in folder.name):
            for log in sorted(folder.glob("*.log")):
                out += log.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
    return out


def _rows(table: pa.Table) -> list[dict[str, Any]]:
    return sorted(table.to_pylist(), key=lambda r: r["idx"])


def _all(fmt: LineFormat, lines: list[str], tz: str = "UTC") -> tuple[list[dict[str, Any]], ...]:
    """The ingest's rows, then the captures typed by the SQL, then `parse_small` (typed in Python where sure)."""
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    prepare_connection(con)
    parser = LineParser(fmt, tz, REF)
    offsets = list(range(len(lines)))
    batch = pa.table({"idx": pa.array(offsets, pa.int64()), "off": pa.array(offsets, pa.int64()),
                      "line": pa.array(lines, pa.large_string())})
    parsed = parser.parse(con, batch)
    sql = parsed.conv
    # the whole of `parse` for small batches (what ingest uses for them): every line's class too
    small_parsed = parser.parse_batch_small(con, batch)
    assert small_parsed.cls.column("k").to_pylist() == parsed.cls.column("k").to_pylist()
    assert _rows(small_parsed.conv) == _rows(sql)
    captured = parser.convert_captured(con, parser.capture(lines, offsets))
    small = parser.parse_small(con, lines, offsets)
    # narrowed to a few columns (what the sentry reads): the same rows kept and rejected, the same values
    narrow = parser.parse_small(con, lines, offsets, ["src_ip", "status", "user_agent"])
    keep = set(narrow.column_names)
    assert _rows(narrow) == [{k: v for k, v in r.items() if k in keep} for r in _rows(sql)]
    # row by row (what the sentry reads): the good rows as tuples, narrowed or not
    everything = [c for c in sql.column_names if c not in ("idx", "off", "variant", "bad")]
    for columns in (["src_ip", "status", "user_agent"], everything):
        rows = parser.parse_rows(con, lines, offsets, columns)
        names = list(rows)
        assert names[:3] == ["idx", "off", "ts"] and set(names) <= {"idx", "off", *everything}
        assert {"idx", "off", "ts", *columns} & set(sql.column_names) == set(names)
        good = [r for r in _rows(sql) if r["bad"] == ""]
        assert rows == {n: [_micros(r[n]) if n == "ts" else r[n] for r in good] for n in names}
    return _rows(sql), _rows(captured), _rows(small)


def _micros(ts: dt.datetime | None) -> int | None:
    return None if ts is None else round(ts.timestamp() * 1_000_000)


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_capture_gives_the_ingest_rows_on_every_known_line(name: str) -> None:
    fmt = FORMATS[name]
    lines = _sample_lines(fmt) + _hub_lines(name) + HOSTILE
    sql, captured, small = _all(fmt, lines)
    assert sql, f"{name}: no line parsed at all"
    assert captured == sql
    assert small == sql


def test_capture_gives_the_ingest_rows_on_a_flood(tmp_path: Path) -> None:
    log = tmp_path / "flood.log"
    write_sipproxy_flood(log, 20_000, seed=11)
    lines = log.read_text(encoding="utf-8").splitlines(keepends=True)
    sql, captured, small = _all(FORMATS["vos3000-sipproxy"], lines)
    assert len(sql) > 19_000
    assert captured == sql
    assert small == sql


@pytest.mark.parametrize("tz", ["America/New_York", "Asia/Shanghai", "Europe/London"])
def test_parse_small_reads_local_times_as_the_sql_does(tz: str) -> None:
    """Zoned sources, with the hours a clock change skips or repeats (left to the SQL), and bad dates."""
    line = '{} [INFO] SEND 403 Forbidden to 198.51.100.8:5060 method=REGISTER callid="z"\n'
    stamps = ["2026-03-08 02:30:00.000", "2026-11-01 01:30:00.500", "2026-03-29 01:30:00.25", "2026-10-25 01:30:00",
              "2026-06-01 12:00:00.123", "2026-02-29 00:00:00.000", "2026-12-31 23:59:59.999"]
    sql, captured, small = _all(FORMATS["vos3000-sipproxy"], [line.format(s) for s in stamps], tz)
    assert len(sql) == len(stamps)
    assert captured == sql
    assert small == sql


def test_parse_small_types_a_plain_line_without_the_sql() -> None:
    """The point of it: an ordinary line never reaches DuckDB (a closed connection proves it)."""
    parser = LineParser(FORMATS["vos3000-sipproxy"], "UTC", REF)
    con = duckdb.connect(":memory:")
    con.close()
    lines = ['2026-11-20 03:14:07.190 [WARN] SEND 403 Forbidden to 198.51.100.8:5060 method=REGISTER user="1001" '
             'callid="z" reason="password error"\n']
    conv = parser.parse_small(con, lines, [0])
    assert conv.to_pylist()[0]["src_ip"] == "198.51.100.8"
    assert conv.to_pylist()[0]["status"] == 403


def test_the_python_patterns_unroll_the_quoted_value_idiom() -> None:
    """What makes capture affordable (half its cost on a flood): the VOS3000 formats' quoted values run unrolled;
    the rows are the SQL's all the same (the tests above)."""
    from fraudwatch.formats.engine import _UNROLLED

    for name in ("vos3000-sipproxy", "vos3000-mbx"):
        parser = LineParser(FORMATS[name], "UTC", REF)
        patterns = [rx.pattern for _, rx in parser._matchers()]
        assert not any(idiom in p for p in patterns for idiom in _UNROLLED), name
        assert any(unrolled in p for p in patterns for unrolled in _UNROLLED.values()), name


def test_capture_leaves_out_ignored_and_unmatched_lines() -> None:
    fmt = FORMATS["vos3000-sipproxy"]
    lines = ["not a sipproxy line\n", *_sample_lines(fmt)[:1]]
    caps = LineParser(fmt, "UTC", REF).capture(lines, [0, 100])
    assert caps.column("idx").to_pylist() == [1]
    assert caps.column("off").to_pylist() == [100]


def test_a_format_python_cannot_read_the_same_is_parsed_by_duckdb(tmp_path: Path) -> None:
    """RE2 syntax Python's re reads differently ([[:alpha:]], \\Q...\\E, \\pL ...) keeps a format on the SQL path."""
    (tmp_path / "posix.yaml").write_text(
        "name: posix-test\ndescription: a user format with a POSIX class\ntable: sip_events\n"
        "time:\n  formats: ['%Y-%m-%d %H:%M:%S']\n"
        "prefix: '(?P<ts>\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d) '\n"
        "patterns:\n  - name: request\n"
        "    regex: 'RECV (?P<method>[[:alpha:]]+) from (?P<src_ip>[0-9.]+)'\n"
        "    set: {event: request}\n"
        "    samples:\n      - line: '2026-11-20 03:14:07 RECV REGISTER from 192.0.2.1'\n"
        "        expect: {method: REGISTER, src_ip: 192.0.2.1}\n", encoding="utf-8")
    fmt = load_formats([tmp_path])["posix-test"]
    assert isinstance(fmt, LineFormat)
    parser = LineParser(fmt, "UTC", REF)
    assert not parser.python_ok
    lines = ["2026-11-20 03:14:07 RECV REGISTER from 192.0.2.1\n", "2026-11-20 03:14:07 RECV R:G from 192.0.2.1\n"]
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    prepare_connection(con)
    offsets = [0, 1]
    batch = pa.table({"idx": pa.array(offsets, pa.int64()), "off": pa.array(offsets, pa.int64()),
                      "line": pa.array(lines, pa.large_string())})
    expected = parser.parse(con, batch)
    got = parser.parse_batch_small(con, batch)
    assert got.cls.column("k").to_pylist() == expected.cls.column("k").to_pylist() == [0, -2]
    assert _rows(got.conv) == _rows(expected.conv)
    assert [r["method"] for r in _rows(parser.parse_small(con, lines, offsets))] == ["REGISTER"]
