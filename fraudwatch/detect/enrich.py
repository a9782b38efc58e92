"""Derived columns rules can filter and group on, added to each batch before the detectors see it.

- every source: `trusted_ip` (the source address is in [trusted] networks);
- sip_events: `challenge_repeat` — a 401/407 that is not the first challenge on its Call-ID, i.e. the peer
  answered the challenge and failed (one 401 followed by 200 is normal digest authentication);
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

from fraudwatch.netaddr import IPNetwork, parse_ip

_TYPE_NAMES = {getattr(PhoneNumberType, n): n.lower() for n in dir(PhoneNumberType) if n.isupper()}
CHALLENGE_TTL = dt.timedelta(minutes=5)

ENRICHED = {
    "sip_events": ("trusted_ip", "challenge_repeat"),
    "netfilter_events": ("trusted_ip",),
    "cdrs": ("ts", "trusted_ip", "answered", "callee_number", "callee_country", "callee_class"),
}


@functools.lru_cache(maxsize=1 << 17)
def classify_number(digits: str) -> tuple[str | None, str | None]:
    """(region, number type) of an international number given as digits; (None, None) when unparseable."""
    if not digits or len(digits) > 20:
        return None, None
    try:
        num = phonenumbers.parse("+" + digits)
    except phonenumbers.NumberParseException:
        return None, None
    region = phonenumbers.region_code_for_number(num)
    kind = _TYPE_NAMES.get(phonenumbers.number_type(num), "unknown")
    return region or f"+{num.country_code}", kind


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
        numbers = frame.get_column("callee_number").unique().to_list()
        info = {n: classify_number(n) if n else (None, None) for n in numbers}
        return frame.with_columns(
            pl.col("callee_number").replace_strict({n: v[0] for n, v in info.items()}, default=None,
                                                   return_dtype=pl.Utf8).alias("callee_country"),
            pl.col("callee_number").replace_strict({n: v[1] for n, v in info.items()}, default=None,
                                                   return_dtype=pl.Utf8).alias("callee_class"),
        ).sort("ts", maintain_order=True)

    def _challenges(self, frame: pl.DataFrame) -> pl.DataFrame:
        is_challenge = (pl.col("event") == "response") & pl.col("status").is_in([401, 407]) & \
            pl.col("call_id").is_not_null()
        nth = pl.when(is_challenge).then(pl.int_range(pl.len()).over("call_id", is_challenge)).otherwise(None)
        frame = frame.with_columns(nth.alias("_nth"))
        seen_before = pl.col("call_id").is_in(list(self.challenged))
        frame = frame.with_columns(
            (is_challenge & ((pl.col("_nth") > 0) | seen_before)).fill_null(False).alias("challenge_repeat")
        ).drop("_nth")
        last = frame.filter(is_challenge).group_by("call_id").agg(pl.col("ts").max())
        for call_id, ts in last.iter_rows():
            self.challenged[call_id] = ts
        if frame.height:
            newest = frame.get_column("ts").max()
            if isinstance(newest, dt.datetime):
                cutoff = newest - CHALLENGE_TTL
                self.challenged = {k: v for k, v in self.challenged.items() if v > cutoff}
        return frame
