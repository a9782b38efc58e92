"""`fraudwatch explain`: what each line becomes and which rules fire, the same as ingest + detect would make of
the file, with no store opened or created."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import ROOT, Run

SAMPLE = ROOT / "data-samples" / "vos3000-3d"
GOOD = ('2026-11-01 00:00:10.073 [INFO] RECV REGISTER from 198.51.100.7:14435 user="441216879950" '
        'callid="c8c0198c-f559@192.168.1.240" ua="Fanvil X4U 2.12.1.20"')
CHATTER = "2026-11-01 00:04:12.687 [DEBUG] timer T1 fired for transaction z9hG4bK2ea5151948"
BAD_IP = GOOD.replace("198.51.100.7:", "999.51.100.7:")


def _head(src: Path, dst: Path, lines: int) -> Path:
    with src.open("rb") as f:
        dst.write_bytes(b"".join(f.readline() for _ in range(lines)))
    return dst


def _explain(cli: Callable[..., Run], *argv: str | Path) -> dict[str, Any]:
    r = cli("explain", "--json", *argv)
    assert r.code == 0, r.err
    return dict(json.loads(r.out))


def _by_rule(alerts: list[dict[str, Any]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for a in alerts:
        out.setdefault(a["rule"], []).append(a["key"])
    return {k: sorted(v) for k, v in out.items()}


def test_explain_is_what_ingest_and_detect_make_and_touches_no_store(tmp_path: Path, cli: Callable[..., Run]
                                                                     ) -> None:
    log = _head(SAMPLE / "sipproxy.log", tmp_path / "sipproxy.log", 8000)
    never = tmp_path / "never.duckdb"
    got = _explain(cli, "--db", never, log)
    assert not never.exists() and not list(tmp_path.glob("never*")), "explain must not create a store"
    assert got["format"] == "vos3000-sipproxy"  # detected
    assert got["lines"] == 8000
    assert got["matched"] + got["ignored"] + got["unmatched"] + sum(got["rejected"].values()) == 8000
    db = tmp_path / "store.duckdb"
    ingested = cli("--db", db, "ingest", "--json", "--format", "vos3000-sipproxy", log)
    assert ingested.code == 0, ingested.err
    stored = json.loads(cli("--db", db, "sql", "--json",
                            "SELECT pattern, count(*) AS n FROM sip_events GROUP BY 1").out)
    assert {r["pattern"]: r["n"] for r in stored} == got["patterns"]
    detected = cli("--db", db, "detect", "--dry-run", "--json")
    assert detected.code == 0, detected.err
    want = _by_rule(json.loads(detected.out)["alerts"])
    assert want, "the sample's first lines should fire rules"
    assert _by_rule(got["alerts"]) == want
    assert {r["rule"]: r["alerts"] for r in got["rules"] if r["alerts"]} == {k: len(v) for k, v in want.items()}


def test_every_kind_of_line_is_accounted_for(tmp_path: Path, cli: Callable[..., Run]) -> None:
    log = tmp_path / "mixed.log"
    long_line = GOOD + " x" * 40_000  # over the 64 KiB a line may have
    log.write_text("\n".join([GOOD, CHATTER, "garbage that no pattern takes", BAD_IP, long_line, GOOD]) + "\n")
    got = _explain(cli, "--format", "vos3000-sipproxy", log)
    assert got["lines"] == 6
    assert got["patterns"] == {"request": 2}
    assert got["ignored"] == 1 and got["unmatched"] == 1
    assert got["rejected"] == {"bad src_ip": 1, "line too long": 1}
    outcome = {d["line"]: d["outcome"] for d in got["details"]}
    assert outcome == {1: "event", 2: "ignored", 3: "unmatched", 4: "rejected", 5: "rejected", 6: "event"}
    first = next(d for d in got["details"] if d["line"] == 1)
    assert first["pattern"] == "request"
    assert first["fields"]["src_ip"] == "198.51.100.7" and first["fields"]["src_port"] == 14435
    assert first["fields"]["ts"].startswith("2026-11-01T00:00:10.073")
    problems = {d["line"]: d["reason"] for d in got["problems"]}
    assert problems[3] == "no pattern matched" and problems[4] == "bad src_ip"
    assert problems[5].startswith("line too long")
    shown = cli("explain", "--format", "vos3000-sipproxy", "-v", log)
    assert shown.code == 0, shown.err
    assert "line 3: no pattern matched" in shown.out and "bad src_ip" in shown.out
    assert shown.out.index("what the lines became") < shown.out.index("line 1:")  # summary first


def test_lines_bounds_what_is_kept(tmp_path: Path, cli: Callable[..., Run]) -> None:
    log = tmp_path / "many.log"
    log.write_text("\n".join(["junk"] * 50 + [GOOD] * 50) + "\n")
    got = _explain(cli, "--format", "vos3000-sipproxy", "--lines", "7", log)
    assert len(got["details"]) == 7 and len(got["problems"]) == 7
    assert got["unmatched"] == 50 and got["patterns"] == {"request": 50}


def test_gz_reads_as_the_plain_file(tmp_path: Path, cli: Callable[..., Run]) -> None:
    log = _head(SAMPLE / "sipproxy.log", tmp_path / "sipproxy.log", 2000)
    gz = tmp_path / "sipproxy.log.1.gz"
    gz.write_bytes(gzip.compress(log.read_bytes()))
    plain, packed = _explain(cli, log), _explain(cli, gz)
    for k in ("format", "lines", "patterns", "ignored", "unmatched", "rejected", "rules"):
        assert plain[k] == packed[k], k


def test_one_line(cli: Callable[..., Run]) -> None:
    got = _explain(cli, "--format", "vos3000-sipproxy", "--line", GOOD)
    assert got["lines"] == 1 and got["patterns"] == {"request": 1}
    assert got["details"][0]["fields"]["username"] == "441216879950"
    bad = _explain(cli, "--format", "vos3000-sipproxy", "--line", BAD_IP)
    assert bad["rejected"] == {"bad src_ip": 1} and bad["problems"][0]["reason"] == "bad src_ip"
    r = cli("explain", "--line", GOOD)
    assert r.code == 2 and "--format" in r.err and len(r.err.strip().splitlines()) == 1


def test_kernel_log_fires_its_rule(cli: Callable[..., Run]) -> None:
    got = _explain(cli, SAMPLE / "kern.log")
    assert got["format"] == "linux-netfilter"
    fired = {r["rule"] for r in got["rules"] if r["alerts"]}
    assert "netfilter-drops-ip" in fired
    alert = next(a for a in got["alerts"] if a["rule"] == "netfilter-drops-ip")
    assert alert["line_nos"] and alert["action"] in ("ban_ip", "alert")


def test_mistakes_are_one_line(tmp_path: Path, cli: Callable[..., Run]) -> None:
    for argv, code, words in (
            (["explain", tmp_path / "nope.log"], 4, "no such file"),
            (["explain", tmp_path], 4, "one file"),
            (["explain", "--format", "vos3000-sipproxy", "--lines", "-1", SAMPLE / "kern.log"], 2, "--lines"),
            (["explain"], 2, "FILE or --line"),
            (["explain", "--format", "no-such", SAMPLE / "kern.log"], 2, "unknown format"),
            (["explain", "--format", "vos3000-cdr", "--line", "1,2,3"], 2, "CSV export"),
            (["explain", "--timezone", "Asia/Shangai", SAMPLE / "kern.log"], 2, "unknown time zone"),
            (["explain", "--rules", tmp_path / "none", SAMPLE / "kern.log"], 2, "not a folder")):
        r = cli(*argv)
        assert r.code == code, (argv, r.err)
        assert words in r.err and len(r.err.strip().splitlines()) == 1, r.err


def test_cdr_export_is_what_ingest_and_detect_make(tmp_path: Path, cli: Callable[..., Run]) -> None:
    export = tmp_path / "e_cdr_20261101.csv"
    export.write_bytes((SAMPLE / "cdr" / "e_cdr_20261101.csv").read_bytes())
    got = _explain(cli, export)
    assert got["format"] == "vos3000-cdr" and got["kind"] == "csv" and got["table"] == "cdrs"
    db = tmp_path / "store.duckdb"
    assert cli("--db", db, "ingest", export).code == 0
    (stored,) = json.loads(cli("--db", db, "sql", "--json", "SELECT count(*) AS n FROM cdrs").out)
    assert got["patterns"] == {"cdrs": stored["n"]} and got["lines"] == stored["n"]
    want = _by_rule(json.loads(cli("--db", db, "detect", "--dry-run", "--json").out)["alerts"])
    assert want, "the sample's first day of CDRs should fire rules"
    assert _by_rule(got["alerts"]) == want


def test_cdr_rows_that_cannot_be_used_say_why(tmp_path: Path, cli: Callable[..., Run]) -> None:
    rows = (SAMPLE / "cdr" / "e_cdr_20261101.csv").read_text().splitlines()
    header, first, second = rows[0], rows[1], rows[2]
    export = tmp_path / "bad.csv"
    bad_time = ",".join(["x" if i == 1 else v for i, v in enumerate(second.split(","))])
    export.write_text("\n".join([header, first, "1,2,3", bad_time, first]) + "\n")
    got = _explain(cli, "--format", "vos3000-cdr", export)
    assert got["lines"] == 4 and got["patterns"] == {"cdrs": 1}
    assert got["ignored"] == 1  # the same flowno again: stored once
    assert got["rejected"] == {"wrong number of fields": 1, "bad start_time": 1}
    assert {p["line"]: p["reason"] for p in got["problems"]} == {3: "wrong number of fields", 4: "bad start_time"}
    assert next(d for d in got["details"] if d["line"] == 2)["text"] == first


def test_details_are_the_first_lines_in_order(tmp_path: Path, cli: Callable[..., Run]) -> None:
    log = tmp_path / "late.log"
    log.write_text("\n".join([GOOD, "junk", GOOD, GOOD, GOOD + " x" * 40_000, "junk"]) + "\n")
    got = _explain(cli, "--format", "vos3000-sipproxy", "--lines", "3", log)
    assert [d["line"] for d in got["details"]] == [1, 2, 3]
    assert [(p["line"], p["outcome"]) for p in got["problems"]] == [(2, "unmatched"), (5, "rejected"),
                                                                     (6, "unmatched")]
