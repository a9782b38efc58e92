"""Derived columns rules can filter and group on, added to each batch before the detectors see it.

- every source: `trusted_ip` (the source address is in [trusted] networks), `trusted_source` (that address when
  it is trusted, else none: what a match's evidence keeps as `trusted_sources`) and `src_country` (its ISO
  country code, from iptocc's offline registry data; none for private and documentation ranges);
- sip_events: `challenge_repeat` — a 401/407 on a Call-ID already challenged (within CHALLENGE_TTL, with no 2xx
  since), i.e. the peer answered the challenge and failed (one 401 followed by 200 is normal digest
  authentication, and so is a phone re-registering on the same Call-ID);
- cdrs: `ts` (the stop time: when the record exists), `answered`, `callee_number` (digits, without 00/+),
  `callee_country` and `callee_class` (libphonenumber's region and number type: premium_rate, shared_cost, uan,
  voip, mobile, fixed_line ...).

Enrichment keeps state only where a signal spans batches (the Call-IDs already challenged), bounded in time.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import iptocc
import phonenumbers
import polars as pl
from phonenumbers import PhoneNumberType

from fraudwatch.detect.filters import distinct_hashes, hashed
from fraudwatch.detect.numbers import classify
from fraudwatch.netaddr import IPNetwork, parse_ip

if TYPE_CHECKING:
    from fraudwatch.detect.rows import Rows

_TYPE_NAMES = {getattr(PhoneNumberType, n): n.lower() for n in dir(PhoneNumberType) if n.isupper()}
CHALLENGE_TTL = dt.timedelta(minutes=5)
SMALL_BATCH = 4096  # batches up to this many rows are enriched in plain Python: no queries' fixed cost
TRUSTED_CACHE = 1 << 17  # addresses whose trust is remembered between batches
NUMBER_CACHE = 1 << 18  # called numbers whose class is remembered between batches



@functools.lru_cache(maxsize=1 << 17)
def classify_number(digits: str) -> tuple[str | None, str | None]:
    """(region, number type) of an international number given as digits; (None, None) when unparseable.
    The per-number reference for `numbers.classify`, which enrichment uses (vectorised, same metadata)."""
    if not digits or len(digits) > 20:
        return None, None
    try:
        num = phonenumbers.parse("+" + digits)
    except phonenumbers.NumberParseException:
        return None, None
    region = phonenumbers.region_code_for_number(num)
    kind = _TYPE_NAMES.get(phonenumbers.number_type(num), "unknown")
    return region if region and region != "001" else f"+{num.country_code}", kind


class Enricher:
    def __init__(self, trusted: Sequence[IPNetwork]) -> None:
        self.trusted = tuple(trusted)
        self.known: dict[str, bool] = {}  # address -> trusted, remembered across batches (bounded)
        self.countries: dict[str, str | None] = {}  # address -> country (bounded)
        # callee_number -> callee_country, callee_class (bounded; null: no calling code fits)
        self.classes = pl.DataFrame(schema={"callee_number": pl.Utf8, "callee_country": pl.Utf8,
                                            "callee_class": pl.Utf8})
        # Call-IDs whose last step was a challenge, and when (kept for CHALLENGE_TTL)
        # (a frame for big batches, a dict in time order for small ones: each path converts what it finds)
        self.challenged: pl.DataFrame | dict[str, dt.datetime] = pl.DataFrame(schema=_OPEN_SCHEMA)
        self.challenged_us: dict[str, int] = {}  # the same for `rows`, in epoch microseconds

    def _small_maps(self, ips: pl.Series) -> tuple[pl.Series, pl.Series]:
        """`_trusted_map` and `_country_map` for a small batch, in plain Python (the same values and caches)."""
        trusted, countries = self._small_lists(ips.to_list())
        return pl.Series("", trusted, dtype=pl.Boolean), pl.Series("", countries, dtype=pl.Utf8)

    def _small_lists(self, values: list[str | None], countries: bool = True) \
            -> tuple[list[bool], list[str | None]]:
        """Whether each address is trusted, and its country (none asked: `countries` false)."""
        uniques = list(dict.fromkeys(v for v in values if v is not None))
        if not self.trusted:
            trusted = [False] * len(values)
        else:
            self._learn_trusted(uniques)
            known = self.known
            trusted = [v is not None and known[v] for v in values]
        if not countries:
            return trusted, []
        self._learn_countries(uniques)
        return trusted, [None if v is None else self.countries[v] for v in values]

    def rows(self, source: str, rows: Rows, wanted: Sequence[str]) -> None:
        """Add the `wanted` derived columns of a line source to `rows` (ts in epoch microseconds), as `__call__`
        adds them to a frame: the sentry's path, which keeps its own challenges (in microseconds)."""
        columns = rows.columns
        if "trusted_ip" in wanted or "src_country" in wanted or "trusted_source" in wanted:
            columns["trusted_ip"], country = self._small_lists(columns["src_ip"], "src_country" in wanted)
            if "src_country" in wanted:
                columns["src_country"] = country
            if "trusted_source" in wanted:
                columns["trusted_source"] = [ip if t else None for ip, t in
                                             zip(columns["src_ip"], columns["trusted_ip"], strict=True)]
        if source == "sip_events" and "challenge_repeat" in wanted:
            ttl = round(CHALLENGE_TTL.total_seconds() * 1_000_000)
            columns["challenge_repeat"] = _repeats(self.challenged_us, columns["event"], columns["status"],
                                                   columns["call_id"], columns["ts"], ttl)

    def _learn_countries(self, uniques: list[str]) -> None:
        """The country of each address (offline, iptocc), cached (bounded: a botnet brings many)."""
        missing = [ip for ip in uniques if ip not in self.countries]
        if len(self.countries) + len(missing) > TRUSTED_CACHE:
            self.countries.clear()
            missing = uniques
        if missing:
            self.countries.update(zip(missing, iptocc.country_code(missing), strict=True))

    def _learn_trusted(self, uniques: list[str]) -> None:
        """Whether each address is in a trusted network, cached (bounded: a botnet brings many)."""
        if len(self.known) + len(uniques) > TRUSTED_CACHE:
            self.known.clear()
        for ip in uniques:
            if ip not in self.known:
                addr = parse_ip(ip)
                self.known[ip] = addr is not None and any(addr.version == n.version and addr in n
                                                          for n in self.trusted)

    def _trusted_map(self, ips: pl.Series, uniques: list[str]) -> pl.Series:
        """Whether each address is trusted (`uniques`: its distinct non-null addresses)."""
        if not self.trusted:
            from fraudwatch.detect.filters import constant

            return constant("", False, ips.len())
        self._learn_trusted(uniques)
        trusted = [ip for ip in uniques if self.known[ip]]
        return ips.is_in(pl.Series(trusted, dtype=pl.Utf8).implode()).fill_null(False)

    def _country_map(self, ips: pl.Series, wanted: list[str]) -> pl.Series:
        """ISO country of each address (offline, iptocc), looked up once per distinct address (`wanted`)."""
        self._learn_countries(wanted)
        table = pl.DataFrame({"ip": wanted, "cc": [self.countries[ip] for ip in wanted]},
                             schema={"ip": pl.Utf8, "cc": pl.Utf8})
        return ips.replace_strict(table.get_column("ip"), table.get_column("cc"), default=None,
                                  return_dtype=pl.Utf8)

    def __call__(self, source: str, frame: pl.DataFrame) -> pl.DataFrame:
        if source == "rejects":  # no address, nothing to add
            return frame
        if source == "cdrs":
            frame = self._cdrs(frame)
        ip_col = "caller_ip" if source == "cdrs" else "src_ip"
        ips = frame.get_column(ip_col).cast(pl.Utf8)
        small = frame.height <= SMALL_BATCH
        if small:
            trusted, country = self._small_maps(ips)
        else:
            uniques = ips.drop_nulls().unique().to_list()
            trusted, country = self._trusted_map(ips, uniques), self._country_map(ips, uniques)
        frame = frame.with_columns(trusted.alias("trusted_ip"), country.alias("src_country"),
                                   pl.when(trusted).then(ips).alias("trusted_source"))
        if source == "sip_events":
            frame = self._challenges_small(frame) if small else self._challenges(frame)
        return frame

    def _open_frame(self) -> pl.DataFrame:
        """The open challenges as a frame (call_id, _open, and the Call-ID's hash), for the frame path."""
        if isinstance(self.challenged, dict):
            opened = pl.DataFrame({"call_id": list(self.challenged), "_open": list(self.challenged.values())},
                                  schema={k: _OPEN_SCHEMA[k] for k in ("call_id", "_open")})
            self.challenged = opened.with_columns(_codes(opened.get_column("call_id")).alias(_CODE))
        return self.challenged

    def _open_dict(self) -> dict[str, dt.datetime]:
        """The open challenges as a dict in time order (oldest first), for the plain-Python path: a small batch
        then costs what it holds, not what the last five minutes of a flood left open."""
        if isinstance(self.challenged, pl.DataFrame):
            known = self.challenged.drop_nulls().sort("_open", maintain_order=True)
            self.challenged = dict(zip(known.get_column("call_id").to_list(), known.get_column("_open").to_list(),
                                       strict=True))
        return self.challenged

    def _challenges_small(self, frame: pl.DataFrame) -> pl.DataFrame:
        """`_challenges` step by step in plain Python, for a small batch: the same flags and the same memory."""
        opened = self._open_dict()
        events, statuses, call_ids, times = (frame.get_column(n).to_list()
                                             for n in ("event", "status", "call_id", "ts"))
        repeated = _repeats(opened, events, statuses, call_ids, times, CHALLENGE_TTL)
        return frame.with_columns(pl.Series("challenge_repeat", repeated, dtype=pl.Boolean))

    def _cdrs(self, frame: pl.DataFrame) -> pl.DataFrame:
        from fraudwatch.detect.filters import normalise_number

        frame = frame.with_columns(pl.col("stop_time").alias("ts"), (pl.col("hold_seconds") > 0).alias("answered"),
                                   normalise_number(pl.col("callee_e164")).alias("callee_number"))
        # CDR streams call the same destinations again and again: each number is classified once, then
        # remembered (up to NUMBER_CACHE; beyond, only the last batch's). Joins, not a dict: a million CDRs bring
        # some 10^5 distinct numbers, and looking each up in Python costs more than classifying them.
        numbers = frame.select(pl.col("callee_number").drop_nulls().unique())
        if self.classes.height:
            info = self.classes.join(numbers, on="callee_number", how="semi")
            missing = numbers.join(info, on="callee_number", how="anti")
        else:
            info, missing = self.classes, numbers
        if missing.height:
            fresh = classify(missing.get_column("callee_number")).rename(
                {"number": "callee_number", "country": "callee_country", "kind": "callee_class"})
            info = pl.concat([info, fresh])
            if self.classes.height + fresh.height > NUMBER_CACHE:
                self.classes = info
            else:  # one chunk a batch: keep them few, joins on thousands of chunks are slower
                self.classes = pl.concat([self.classes, fresh], rechunk=self.classes.n_chunks() >= 32)
        frame = _join_numbers(frame, info)
        # a replay's and the watcher's batches come in stop-time order already: checked (cheap), not sorted again
        return frame if frame.get_column("ts").is_sorted() else frame.sort("ts", maintain_order=True)

    def _challenges(self, frame: pl.DataFrame) -> pl.DataFrame:
        """`challenge_repeat`: a 401/407 whose Call-ID was already challenged within CHALLENGE_TTL with no 2xx
        since. Digest authentication (401, then 200) and a phone re-registering on its Call-ID are not failures;
        a wrong password (401, answered, 401 again) is. Decided per event, so batch cuts do not matter."""
        response = (pl.col("event") == "response") & pl.col("call_id").is_not_null()
        is_challenge = (response & pl.col("status").is_in([401, 407])).fill_null(False)
        is_success = (response & (pl.col("status") >= 200) & (pl.col("status") < 300)).fill_null(False)
        steps = frame.select("call_id", "ts", is_challenge.alias("_ch"), is_success.alias("_ok")) \
            .with_row_index("_row").filter(pl.col("_ch") | pl.col("_ok")).drop("_ok")
        remembered = self._open_frame().cast({"_open": steps.schema["ts"]})
        steps, key = _coded_steps(steps, remembered)
        # the challenge still open before this step: the previous step on the Call-ID if it was a challenge;
        # for the Call-ID's first step in this batch, the one remembered from earlier batches. Call-IDs with
        # one step in the batch (most of a flood's) need no per-Call-ID window.
        previous = pl.col("_ch").shift(1).over(key)
        open_since = pl.when(previous.is_null()).then(pl.col("_open")) \
            .when(previous).then(pl.col("ts").shift(1).over(key))
        steps = steps.join(remembered.drop("call_id" if key == _CODE else _CODE), on=key, how="left",
                           maintain_order="left")
        several = steps.select(pl.col(key).is_duplicated()).to_series()
        once, many = steps.filter(~several), steps.filter(several)
        steps = pl.concat([once.with_columns(pl.col("_open").alias("_since")),
                           many.with_columns(open_since.alias("_since"))]).sort("_row").with_columns(
            (pl.col("_ch") & (pl.col("ts") - pl.col("_since") <= CHALLENGE_TTL)).fill_null(False).alias("_repeat"))
        repeated = steps.filter("_repeat").get_column("_row")
        from fraudwatch.detect.filters import flags

        frame = frame.with_columns(flags(frame.height, repeated).alias("challenge_repeat"))
        # what to remember: each Call-ID's last step, when it is a challenge (a 2xx closes it), recent enough
        texts = [pl.col("call_id").last()] if key == _CODE else []
        last = steps.group_by(key).agg(*texts, pl.col("_ch").last(), pl.col("ts").last().alias("_open"))
        kept = remembered.join(last, on=key, how="anti")
        closed = last.filter("_ch")
        if key != _CODE:
            closed = closed.with_columns(_codes(closed.get_column("call_id")).alias(_CODE))
        state = pl.concat([kept, closed.select(kept.columns)])
        if frame.height:
            newest = frame.get_column("ts").max()
            if isinstance(newest, dt.datetime):
                state = state.filter(pl.col("_open") >= newest - CHALLENGE_TTL)
        self.challenged = state
        return frame


_CODE = "_call_code"  # a Call-ID's 64-bit hash, beside it in the open challenges
_OPEN_SCHEMA: dict[str, pl.DataType] = {"call_id": pl.String(), "_open": pl.Datetime("us", "UTC"), _CODE: pl.UInt64()}


def _codes(call_ids: pl.Series) -> pl.Series:
    """64-bit hashes of Call-IDs (a function of its own: tests make them collide)."""
    return call_ids.hash()


def _coded_steps(steps: pl.DataFrame, remembered: pl.DataFrame) -> tuple[pl.DataFrame, str]:
    """`steps` with its Call-IDs' hashes, and the column to key on: the hashes when they tell the batch's
    Call-IDs apart and every remembered Call-ID sharing a hash with one of them is that same Call-ID, else the
    text. Windows, joins and groups on integers cost the flood's challenges much less than on the text (figures:
    benchmarks/RESULTS.md, "Text keys grouped and joined on 64-bit hashes"); with this check, what they find is
    exactly what the text finds."""
    codes = _codes(steps.get_column("call_id"))
    if codes.n_unique() != steps.get_column("call_id").n_unique():
        return steps, "call_id"
    coded = steps.with_columns(codes.alias(_CODE))
    shared = coded.select(_CODE, "call_id").join(remembered.select(_CODE, pl.col("call_id").alias("_was")), on=_CODE)
    if not shared.select((pl.col("call_id") == pl.col("_was")).all()).item():
        return steps, "call_id"
    return coded, _CODE


def _join_numbers(frame: pl.DataFrame, info: pl.DataFrame) -> pl.DataFrame:
    """`frame` with the classes of its called numbers from `info` (one row per distinct number: all of the
    frame's). On the numbers' 64-bit hashes when they tell `info`'s numbers apart (`distinct_hashes`), as
    `WindowDetector._coded` does: joining on integers is cheaper than on text (figures: benchmarks/RESULTS.md,
    "Text keys grouped and joined on 64-bit hashes")."""
    hashes = distinct_hashes(info.get_column("callee_number"))
    if hashes is None:
        return frame.join(info, on="callee_number", how="left", maintain_order="left")
    keyed = frame.with_columns(hashed("callee_number").alias("_number_hash"))
    return keyed.join(info.drop("callee_number").with_columns(hashes.alias("_number_hash")), on="_number_hash",
                      how="left", maintain_order="left").drop("_number_hash")


def _repeats(opened: dict[str, Any], events: list[str | None], statuses: list[int | None],
             call_ids: list[str | None], times: list[Any], ttl: Any) -> list[bool]:
    """`challenge_repeat` step by step in plain Python, for a small batch: `opened` (Call-ID -> when it was
    challenged, oldest first; datetimes or microseconds, with `ttl` in the same unit) is updated as the frame
    path updates its frame, and what is older than `ttl` before the batch's newest time is dropped."""
    repeated = [False] * len(events)
    for i, (event, status, call_id) in enumerate(zip(events, statuses, call_ids, strict=True)):
        if event != "response" or call_id is None or status is None:
            continue
        if status in (401, 407):
            ts = times[i]
            since = opened.pop(call_id, None)  # re-inserted below: the dict stays in time order
            if since is not None and ts is not None and ts - since <= ttl:
                repeated[i] = True
            if ts is not None:
                opened[call_id] = ts
        elif 200 <= status < 300:
            opened.pop(call_id, None)
    newest = max((t for t in times if t is not None), default=None)
    if newest is not None:
        horizon = newest - ttl
        stale = []
        for call_id, since in opened.items():  # oldest first: stop at the first one still open
            if since >= horizon:
                break
            stale.append(call_id)
        for call_id in stale:
            del opened[call_id]
    return repeated
