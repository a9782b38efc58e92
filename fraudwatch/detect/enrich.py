"""Derived columns rules can filter and group on, added to each batch before the detectors see it.

- every source: `trusted_ip` (the source address is in [trusted] networks) and `src_country` (its ISO country
  code, from iptocc's offline registry data; none for private and documentation ranges);
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

import iptocc
import phonenumbers
import polars as pl
from phonenumbers import PhoneNumberType

from fraudwatch.detect.numbers import classify
from fraudwatch.netaddr import IPNetwork, parse_ip

_TYPE_NAMES = {getattr(PhoneNumberType, n): n.lower() for n in dir(PhoneNumberType) if n.isupper()}
CHALLENGE_TTL = dt.timedelta(minutes=5)
TRUSTED_CACHE = 1 << 17  # addresses whose trust is remembered between batches

ENRICHED = {
    "sip_events": ("trusted_ip", "src_country", "challenge_repeat"),
    "netfilter_events": ("trusted_ip", "src_country"),
    "cdrs": ("ts", "trusted_ip", "src_country", "answered", "callee_number", "callee_country", "callee_class"),
}
ENRICHED_TYPES = {"ts": "TIMESTAMPTZ", "trusted_ip": "BOOLEAN", "src_country": "VARCHAR", "challenge_repeat": "BOOLEAN",
                  "answered": "BOOLEAN", "callee_number": "VARCHAR", "callee_country": "VARCHAR",
                  "callee_class": "VARCHAR"}


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
        # Call-IDs whose last step was a challenge, and when (kept for CHALLENGE_TTL)
        self.challenged = pl.DataFrame(schema={"call_id": pl.Utf8, "_open": pl.Datetime("us", "UTC")})

    def _trusted_map(self, ips: pl.Series) -> pl.Series:
        if not self.trusted:
            return pl.repeat(False, ips.len(), dtype=pl.Boolean, eager=True)
        uniques = ips.drop_nulls().unique().to_list()
        if len(self.known) + len(uniques) > TRUSTED_CACHE:
            self.known.clear()
        for ip in uniques:
            if ip not in self.known:
                addr = parse_ip(ip)
                self.known[ip] = addr is not None and any(addr.version == n.version and addr in n
                                                          for n in self.trusted)
        trusted = [ip for ip in uniques if self.known[ip]]
        return ips.is_in(pl.Series(trusted, dtype=pl.Utf8).implode()).fill_null(False)

    def _country_map(self, ips: pl.Series) -> pl.Series:
        """ISO country of each address (offline, iptocc), looked up once per distinct address."""
        uniques = [ip for ip in ips.drop_nulls().unique().to_list() if ip not in self.countries]
        if len(self.countries) + len(uniques) > TRUSTED_CACHE:
            self.countries.clear()
            uniques = ips.drop_nulls().unique().to_list()
        if uniques:
            self.countries.update(zip(uniques, iptocc.country_code(uniques), strict=True))
        wanted = ips.drop_nulls().unique().to_list()
        table = pl.DataFrame({"ip": wanted, "cc": [self.countries[ip] for ip in wanted]},
                             schema={"ip": pl.Utf8, "cc": pl.Utf8})
        return ips.replace_strict(table.get_column("ip"), table.get_column("cc"), default=None,
                                  return_dtype=pl.Utf8)

    def __call__(self, source: str, frame: pl.DataFrame) -> pl.DataFrame:
        if source == "cdrs":
            frame = self._cdrs(frame)
        ip_col = "caller_ip" if source == "cdrs" else "src_ip"
        ips = frame.get_column(ip_col).cast(pl.Utf8)
        frame = frame.with_columns(self._trusted_map(ips).alias("trusted_ip"),
                                   self._country_map(ips).alias("src_country"))
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
        steps = frame.select("call_id", "ts", is_challenge.alias("_ch"), is_success.alias("_ok")) \
            .with_row_index("_row").filter(pl.col("_ch") | pl.col("_ok")).drop("_ok")
        remembered = self.challenged.cast({"_open": steps.schema["ts"]})
        # the challenge still open before this step: the previous step on the Call-ID if it was a challenge;
        # for the Call-ID's first step in this batch, the one remembered from earlier batches. Call-IDs with
        # one step in the batch (most of a flood's) need no per-Call-ID window.
        previous = pl.col("_ch").shift(1).over("call_id")
        open_since = pl.when(previous.is_null()).then(pl.col("_open")) \
            .when(previous).then(pl.col("ts").shift(1).over("call_id"))
        steps = steps.join(remembered, on="call_id", how="left", maintain_order="left")
        several = steps.select(pl.col("call_id").is_duplicated()).to_series()
        once, many = steps.filter(~several), steps.filter(several)
        steps = pl.concat([once.with_columns(pl.col("_open").alias("_since")),
                           many.with_columns(open_since.alias("_since"))]).sort("_row").with_columns(
            (pl.col("_ch") & (pl.col("ts") - pl.col("_since") <= CHALLENGE_TTL)).fill_null(False).alias("_repeat"))
        repeated = steps.filter("_repeat").get_column("_row")
        flags = pl.zeros(frame.height, dtype=pl.Boolean, eager=True).scatter(repeated, True)
        frame = frame.with_columns(flags.alias("challenge_repeat"))
        # what to remember: each Call-ID's last step, when it is a challenge (a 2xx closes it), recent enough
        last = steps.group_by("call_id").agg(pl.col("_ch").last(), pl.col("ts").last().alias("_open"))
        kept = remembered.join(last, on="call_id", how="anti")
        state = pl.concat([kept, last.filter("_ch").select("call_id", "_open")])
        if frame.height:
            newest = frame.get_column("ts").max()
            if isinstance(newest, dt.datetime):
                state = state.filter(pl.col("_open") >= newest - CHALLENGE_TTL)
        self.challenged = state
        return frame
