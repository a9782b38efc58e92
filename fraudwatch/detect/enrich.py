"""Derived columns rules can filter and group on, added to each batch before the detectors see it.

- every source: `trusted_ip` (the source address is in [trusted] networks);
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

import phonenumbers
import polars as pl
from phonenumbers import PhoneNumberType

from fraudwatch.detect.numbers import classify
from fraudwatch.netaddr import IPNetwork, parse_ip

_TYPE_NAMES = {getattr(PhoneNumberType, n): n.lower() for n in dir(PhoneNumberType) if n.isupper()}
CHALLENGE_TTL = dt.timedelta(minutes=5)

ENRICHED = {
    "sip_events": ("trusted_ip", "challenge_repeat"),
    "netfilter_events": ("trusted_ip",),
    "cdrs": ("ts", "trusted_ip", "answered", "callee_number", "callee_country", "callee_class"),
}
ENRICHED_TYPES = {"ts": "TIMESTAMPTZ", "trusted_ip": "BOOLEAN", "challenge_repeat": "BOOLEAN", "answered": "BOOLEAN",
                  "callee_number": "VARCHAR", "callee_country": "VARCHAR", "callee_class": "VARCHAR"}


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
        self.challenged: dict[str, dt.datetime] = {}  # Call-ID -> last challenge seen

    def _trusted_map(self, ips: pl.Series) -> pl.Series:
        def is_trusted(ip: str | None) -> bool:
            addr = parse_ip(ip) if ip else None
            return addr is not None and any(addr.version == n.version and addr in n for n in self.trusted)

        uniques = ips.unique().to_list()
        table = {ip: is_trusted(ip) for ip in uniques}
        return ips.replace_strict(table, default=False, return_dtype=pl.Boolean)

    def __call__(self, source: str, frame: pl.DataFrame) -> pl.DataFrame:
        if source == "cdrs":
            frame = self._cdrs(frame)
        ip_col = "caller_ip" if source == "cdrs" else "src_ip"
        frame = frame.with_columns(self._trusted_map(frame.get_column(ip_col)).alias("trusted_ip"))
        if source == "sip_events":
            frame = self._challenges(frame)
        return frame

    def _cdrs(self, frame: pl.DataFrame) -> pl.DataFrame:
        from fraudwatch.detect.filters import normalise_number

        frame = frame.with_columns(pl.col("stop_time").alias("ts"), (pl.col("hold_seconds") > 0).alias("answered"),
                                   normalise_number(pl.col("callee_e164")).alias("callee_number"))
        info = classify(frame.get_column("callee_number")).rename(
            {"number": "callee_number", "country": "callee_country", "kind": "callee_class"})
        return frame.join(info, on="callee_number", how="left", maintain_order="left").sort("ts", maintain_order=True)

    def _challenges(self, frame: pl.DataFrame) -> pl.DataFrame:
        """`challenge_repeat`: a 401/407 whose Call-ID was already challenged within CHALLENGE_TTL with no 2xx
        since. Digest authentication (401, then 200) and a phone re-registering on its Call-ID are not failures;
        a wrong password (401, answered, 401 again) is. Decided per event, so batch cuts do not matter."""
        response = (pl.col("event") == "response") & pl.col("call_id").is_not_null()
        is_challenge = (response & pl.col("status").is_in([401, 407])).fill_null(False)
        is_success = (response & (pl.col("status") >= 200) & (pl.col("status") < 300)).fill_null(False)
        rows = frame.with_row_index("_row")
        steps = rows.filter(is_challenge | is_success).select("_row", "call_id", "ts", is_challenge.alias("_ch"))
        remembered = pl.DataFrame({"call_id": list(self.challenged), "_open": list(self.challenged.values())},
                                  schema={"call_id": pl.Utf8, "_open": steps.schema["ts"]})
        before = pl.col("ts").shift(1).over("call_id")
        # the challenge still open before this step: the previous step on the Call-ID if it was a challenge;
        # for the Call-ID's first step in this batch, the one remembered from earlier batches
        open_since = pl.when(pl.col("_ch").shift(1).over("call_id").is_null()).then(pl.col("_open")) \
            .when(pl.col("_ch").shift(1).over("call_id")).then(before)
        steps = steps.join(remembered, on="call_id", how="left", maintain_order="left").with_columns(
            (pl.col("_ch") & (pl.col("ts") - open_since <= CHALLENGE_TTL)).fill_null(False).alias("_repeat"))
        repeated = steps.filter("_repeat").get_column("_row")
        frame = rows.with_columns(pl.col("_row").is_in(repeated.implode()).alias("challenge_repeat")).drop("_row")
        for call_id, challenged, ts in steps.group_by("call_id", maintain_order=True) \
                .agg(pl.col("_ch").last(), pl.col("ts").last()).iter_rows():
            if challenged:
                self.challenged[call_id] = ts
            else:
                self.challenged.pop(call_id, None)
        if frame.height:
            newest = frame.get_column("ts").max()
            if isinstance(newest, dt.datetime):
                cutoff = newest - CHALLENGE_TTL
                self.challenged = {k: v for k, v in self.challenged.items() if v >= cutoff}
        return frame
