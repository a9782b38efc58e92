"""Derived columns: challenge_repeat (digest auth done right is not a failure), trusted_ip, CDR number classes."""

from __future__ import annotations

import random

import polars as pl
import pytest

from fraudwatch.detect import enrich
from fraudwatch.detect.enrich import Enricher
from fraudwatch.netaddr import parse_networks
from tests.detect.frames import at, events, sip


def challenge(t: float, call_id: str | None, status: int = 401) -> dict[str, object]:
    return {"t": t, "event": "response", "method": "REGISTER", "status": status, "src_ip": "192.0.2.1",
            "call_id": call_id}


def ok(t: float, call_id: str) -> dict[str, object]:
    return {**challenge(t, call_id), "status": 200}


def repeats(enricher: Enricher, *rows: dict[str, object], first_id: int = 1) -> list[bool]:
    out = enricher("sip_events", sip(*rows, first_id=first_id))
    return out.get_column("challenge_repeat").to_list()


def test_first_challenge_is_normal_the_second_is_a_failure() -> None:
    e = Enricher(())
    assert repeats(e, challenge(0, "c1"), challenge(0.1, "c2"), challenge(0.2, "c1"), challenge(0.3, "c1", 407),
                   challenge(0.4, None), challenge(0.5, None)) == [False, False, True, True, False, False]


def test_only_challenges_are_marked() -> None:
    e = Enricher(())
    rows = [challenge(0, "c1"), {"t": 1, "event": "request", "method": "REGISTER", "call_id": "c1"},
            {**challenge(2, "c1"), "status": 403}, {**challenge(3, "c1"), "event": "request"}]
    assert repeats(e, *rows) == [False, False, False, False]


def test_challenge_repeat_across_batches() -> None:
    e = Enricher(())
    assert repeats(e, challenge(0, "c1")) == [False]
    assert repeats(e, challenge(1, "c2"), challenge(2, "c1"), first_id=2) == [False, True]


def test_a_successful_answer_resets_the_call_id() -> None:
    # a phone re-registering on the same Call-ID is challenged each time and answers correctly
    e = Enricher(())
    assert repeats(e, challenge(0, "c1"), ok(0.1, "c1"), challenge(60, "c1"), ok(60.1, "c1"),
                   challenge(120, "c1"), challenge(120.1, "c1")) == [False, False, False, False, False, True]
    assert repeats(e, ok(121, "c1"), first_id=10) == [False]
    assert repeats(e, challenge(180, "c1"), first_id=11) == [False]


def test_challenges_expire_after_the_ttl() -> None:
    whole = Enricher(())
    assert repeats(whole, challenge(0, "c1"), challenge(299, "c1"), challenge(900, "c1")) == [False, True, False]
    split = Enricher(())
    assert repeats(split, challenge(0, "c1")) == [False]
    assert repeats(split, challenge(299, "c1"), first_id=2) == [True]
    assert repeats(split, challenge(900, "c1"), first_id=3) == [False]


def _challenges_and_answers() -> list[dict[str, object]]:
    """40 Call-IDs over 20 minutes: challenges, answers, repeats, expiries."""
    rng = random.Random(5)
    rows = []
    for i in range(600):
        step = challenge(i * 2.0, f"c{rng.randrange(40)}", rng.choice([401, 401, 407]))
        rows.append(step if rng.random() < 0.8 else ok(i * 2.0, str(step["call_id"])))
    return rows


def test_challenges_carry_over_between_small_and_big_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small batches keep the open challenges in a dict, big ones in a frame: switching keeps them all."""
    rows = _challenges_and_answers()
    frame = sip(*rows)
    whole = repeats(Enricher(()), *rows)
    assert 10 < sum(whole) < 500
    monkeypatch.setattr(enrich, "SMALL_BATCH", 20)  # batches of 25 and more take the frame path
    mixed: list[bool] = []
    start, e = 0, Enricher(())
    for size in [3, 30, 1, 7, 50, 2, 25, 5, 80, 19, 40] * 3:
        mixed += e("sip_events", frame.slice(start, size)).get_column("challenge_repeat").to_list()
        start += size
    mixed += e("sip_events", frame.slice(start)).get_column("challenge_repeat").to_list()
    assert mixed == whole


@pytest.mark.parametrize("codes", ["hashes", "one for all", "ranks in the batch"])
def test_challenges_keyed_on_hashes_are_those_of_the_text(monkeypatch: pytest.MonkeyPatch, codes: str) -> None:
    """Big batches key Call-IDs on their 64-bit hashes when these tell them apart, in the batch and against the
    remembered ones. Codes that collide in a batch ("one for all"), or only across batches (a Call-ID's rank
    among the batch's), are caught and the text used: the flags are always those of the plain-Python steps."""
    frame = sip(*_challenges_and_answers())
    expected = enrich._repeats({}, *(frame.get_column(n).to_list() for n in ("event", "status", "call_id", "ts")),
                               enrich.CHALLENGE_TTL)
    assert 10 < sum(expected) < 500
    if codes == "one for all":
        monkeypatch.setattr(enrich, "_codes", lambda ids: pl.Series([7] * ids.len(), dtype=pl.UInt64))
    elif codes == "ranks in the batch":
        monkeypatch.setattr(enrich, "_codes", lambda ids: ids.rank("dense").cast(pl.UInt64))
    monkeypatch.setattr(enrich, "SMALL_BATCH", 20)
    e, got = Enricher(()), []
    for start in range(0, frame.height, 60):
        got += e("sip_events", frame.slice(start, 60)).get_column("challenge_repeat").to_list()
    assert got == expected


def test_trusted_ip_for_ipv4_ipv6_and_mapped() -> None:
    e = Enricher(parse_networks(["10.0.0.0/8", "2001:db8::/32", "198.51.100.7"]))
    ips = ["10.1.2.3", "2001:db8::5", "::ffff:10.1.2.3", "198.51.100.7", "198.51.100.8", "2001:db9::1",
           "::ffff:192.0.2.1", None, "not-an-ip", "[2001:db8::7]"]
    frame = sip(*({"t": i, "event": "request", "src_ip": ip} for i, ip in enumerate(ips)))
    got = e("sip_events", frame).get_column("trusted_ip").to_list()
    assert got == [True, True, True, True, False, False, False, False, False, True]
    nf = events("netfilter_events", [{"t": 0, "src_ip": "10.0.0.1"}, {"t": 1, "src_ip": "192.0.2.1"}])
    assert e("netfilter_events", nf).get_column("trusted_ip").to_list() == [True, False]


def test_cdr_enrichment_classifies_numbers() -> None:
    e = Enricher(parse_networks(["203.0.113.0/24"]))
    frame = events("cdrs", [
        {"t": 30, "callee_e164": "00449098790000", "hold_seconds": 20, "caller_ip": "203.0.113.5"},
        {"t": 10, "callee_e164": "+44 7400 123456", "hold_seconds": 0, "caller_ip": "192.0.2.1"},
        {"t": 20, "callee_e164": None},
        {"t": 40, "callee_e164": "garbage"},
    ])
    out = e("cdrs", frame)
    assert out.get_column("ts").to_list() == [at(10), at(20), at(30), at(40)]  # stop time, sorted
    rows = out.select("callee_number", "callee_country", "callee_class", "answered", "trusted_ip").rows()
    assert rows == [
        ("447400123456", "GB", "mobile", False, False),
        (None, None, None, False, False),
        ("449098790000", "GB", "premium_rate", True, True),
        ("", None, None, False, False),
    ]


def test_cdr_enrichment_of_an_empty_frame() -> None:
    out = Enricher(())("cdrs", events("cdrs", []))
    assert out.height == 0 and {"ts", "callee_class", "trusted_ip"} <= set(out.columns)
    assert out.schema["callee_class"] == pl.Utf8


@pytest.mark.parametrize("cache", [enrich.NUMBER_CACHE, 3])
def test_cdr_classes_are_remembered_across_batches(monkeypatch: pytest.MonkeyPatch, cache: int) -> None:
    """Each number is classified once while remembered (bounded: beyond the bound, the last batch's only);
    remembered or not, a batch gets the same columns as from a fresh enricher."""
    monkeypatch.setattr(enrich, "NUMBER_CACHE", cache)
    classified: list[str] = []
    classify = enrich.classify

    def counting(numbers: pl.Series) -> pl.DataFrame:
        classified.extend(numbers.to_list())
        return classify(numbers)

    callees = [["+44 7400 123456", "00449098790000", None], ["+44 7400 123456", "garbage", "+1 201 555 0123"],
               ["00449098790000", "+44 7400 123456", "garbage", "4"], ["+1 201 555 0123"]]
    e = Enricher(())
    for i, batch in enumerate(callees):
        frame = events("cdrs", [{"t": 10 * i + j, "callee_e164": c} for j, c in enumerate(batch)])
        with monkeypatch.context() as m:
            m.setattr(enrich, "classify", counting)
            got = e("cdrs", frame)
        assert got.equals(Enricher(())("cdrs", frame))
    if cache > 3:
        assert sorted(classified) == ["", "12015550123", "4", "447400123456", "449098790000"]
    else:  # over 3, only the batch's numbers are kept: 4490... is forgotten by the second, 1201... by the third
        assert sorted(classified) == ["", "12015550123", "12015550123", "4", "447400123456", "449098790000",
                                      "449098790000"]
        assert e.classes.get_column("callee_number").to_list() == ["12015550123"]


def test_classes_joined_on_number_hashes_equal_the_text_join() -> None:
    """`_join_numbers` joins on 64-bit hashes when they tell the numbers apart, on the text otherwise: the same
    rows either way, nulls and repeats included."""
    frame = pl.DataFrame({"row": range(8), "callee_number": ["4474", None, "4490", "4474", "979", None, "4490", "1"]})
    info = pl.DataFrame({"callee_number": ["4474", "4490", "979", "1"], "callee_country": ["GB", "GB", "+979", None],
                         "callee_class": ["mobile", "premium_rate", "premium_rate", None]})
    text = frame.join(info, on="callee_number", how="left", maintain_order="left")
    assert enrich._join_numbers(frame, info).equals(text)
    assert text.get_column("callee_class").to_list() == ["mobile", None, "premium_rate", "mobile", "premium_rate",
                                                         None, "premium_rate", None]
    twice = pl.concat([info, info.head(1)])  # hashes no longer distinct per row: the text join, as it gives
    assert enrich._join_numbers(frame, twice).equals(frame.join(twice, on="callee_number", how="left",
                                                                maintain_order="left"))
