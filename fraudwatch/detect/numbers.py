"""Classifying called numbers (region and libphonenumber number type) for a whole column at once.

`phonenumbers.parse` + `number_type`, number by number in Python, would cost a backfill of CDRs more than every
rule together. This applies the same libphonenumber metadata — country calling codes, each region's general
pattern and its per-type national-number patterns — as vectorised regex matches over the distinct numbers of a
batch, grouped by country code. The test suite checks it against `phonenumbers` number by number.

What it costs, and so how it is organised (figures: benchmarks/RESULTS.md, "Called numbers classified by
vectorised regexes"):
- matching a regex is cheap, but each polars query has a fixed cost and compiles its regexes again (Unicode `\\d`
  the dearest). So each step is one query over only the numbers it can still decide: a region's general pattern
  first (number_type's first check, which most invalid numbers fail), then its type patterns in one when/then
  query over the numbers that passed (a query per type would cost more than it saves: most valid numbers are
  fixed lines or mobiles, the last types tried); and a region that shares its calling code (44: GB, GG, IM, JE;
  1: US, CA and 23 more) only sees the numbers no earlier region took. Between queries, numbers travel as
  Series filtered by direct (query-free) Series calls.
- a regex does not check a length, so each number is matched as a `key`: its national number's length in two
  digits, then the number ('10447400123456'); one regex per type then checks the possible lengths and the
  pattern together ('^(?:10)44(?:7...)$') instead of an extra length test per type.
- `\\d` is written `[0-9]`, which compiles much faster; the two differ only on non-ASCII digits, so a batch
  that has any non-ASCII character keeps libphonenumber's patterns as they are.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import polars as pl
from phonenumbers import PhoneMetadata
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

# libphonenumber's order of checks in number_type(): the first type whose pattern matches wins.
TYPE_ORDER = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan", "voicemail")
KEY = pl.col("key")  # '{national length:02d}{number}', see the module docstring


@dataclass(frozen=True)
class Desc:
    pattern: str  # regex of the national number (the whole of it must match)
    lengths: tuple[int, ...]  # possible lengths (empty: any)

    def matches(self, cc: int) -> pl.Expr:
        """Whether the KEY's national number has a possible length and matches the pattern."""
        lengths = "|".join(f"{n:02d}" for n in self.lengths) or "[0-9]{2}"
        return KEY.str.contains(f"^(?:{lengths}){cc}(?:{self.pattern})$")


@dataclass(frozen=True)
class Region:
    cc: int
    code: str  # 'GB', or '+979' for a non-geographic code
    leading: str | None  # leading-digits pattern that alone selects this region among its code's regions
    general: Desc
    types: tuple[tuple[str, Desc], ...]  # (type name, desc) in libphonenumber's check order
    fixed: Desc | None
    mobile: Desc | None
    same_fixed_mobile: bool

    @functools.cached_property
    def led(self) -> pl.Expr:
        """Whether the KEY's national number starts with this region's leading digits."""
        return KEY.str.contains(f"^[0-9]{{2}}{self.cc}{self.leading}")

    @functools.cached_property
    def valid(self) -> pl.Expr:
        """Whether the KEY matches the general pattern: number_type's first check (unknown when it fails)."""
        return self.general.matches(self.cc)

    @functools.cached_property
    def kind(self) -> pl.Expr:
        """libphonenumber's number_type for this region's metadata, for KEYs that are `valid`."""
        fixed = self.fixed.matches(self.cc) if self.fixed else pl.lit(False)
        mobile = self.mobile.matches(self.cc) if self.mobile else pl.lit(False)
        if self.same_fixed_mobile:
            tail = pl.when(fixed).then(pl.lit("fixed_line_or_mobile")).otherwise(pl.lit("unknown"))
        else:
            tail = (pl.when(fixed & mobile).then(pl.lit("fixed_line_or_mobile")).when(fixed).then(pl.lit("fixed_line"))
                    .when(mobile).then(pl.lit("mobile")).otherwise(pl.lit("unknown")))
        for name, desc in reversed(self.types):
            tail = pl.when(desc.matches(self.cc)).then(pl.lit(name)).otherwise(tail)
        return tail


def _desc(d: object, ascii_digits: bool) -> Desc | None:
    pattern = getattr(d, "national_number_pattern", None)
    if not pattern:
        return None
    lengths = tuple(n for n in (getattr(d, "possible_length", None) or ()) if n > 0)
    # the metadata's only escape is \d, never inside a [...] class
    return Desc(pattern.replace(r"\d", "[0-9]") if ascii_digits else pattern, lengths)


@functools.lru_cache(maxsize=1024)
def regions_of(cc: int, ascii_digits: bool = True) -> tuple[Region, ...]:
    """The regions of a calling code, in libphonenumber's order; `ascii_digits`: \\d as [0-9] (see the module
    docstring)."""
    out = []
    for region in COUNTRY_CODE_TO_REGION_CODE.get(cc, ()):
        meta = (PhoneMetadata.metadata_for_nongeo_region(cc) if region == "001"
                else PhoneMetadata.metadata_for_region(region))
        general = _desc(meta.general_desc, ascii_digits) if meta is not None else None
        if meta is None or general is None:
            continue
        types = tuple((name, d) for name in TYPE_ORDER
                      if (d := _desc(getattr(meta, name, None), ascii_digits)) is not None)
        code = f"+{cc}" if region == "001" else region
        leading = f"(?:{meta.leading_digits})" if meta.leading_digits else None
        out.append(Region(cc, code, leading, general, types, _desc(meta.fixed_line, ascii_digits),
                          _desc(meta.mobile, ascii_digits), bool(meta.same_mobile_and_fixed_line_pattern)))
    return tuple(out)


def _country_code(digits: pl.Expr) -> pl.Expr:
    """The 1-3 digit calling code that starts the number, as a string (codes are prefix-free: one at most fits)."""
    return digits.str.extract(f"^({'|'.join(str(c) for c in COUNTRY_CODE_TO_REGION_CODE)})")


def _split(keys: pl.DataFrame, expr: pl.Expr) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The keys `expr` (on KEY) holds for, and the others, in one query."""
    mask = keys.select(expr).to_series()
    return keys.filter(mask), keys.filter(~mask)


class _Found:
    """What is classified so far, as parts: (keys with their input positions, country, kinds or one kind for all),
    written at those positions at the end."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.parts: list[tuple[pl.DataFrame, str, pl.Series | str]] = []

    def add(self, keys: pl.DataFrame, country: str, kind: pl.Series | str) -> None:
        if keys.height:
            self.parts.append((keys, country, kind))

    def columns(self) -> tuple[pl.Series, pl.Series]:
        """country and kind of every input number (null where none was found)."""
        country = pl.Series("country", [None], dtype=pl.Utf8).new_from_index(0, self.n)
        kind = pl.Series("kind", [None], dtype=pl.Utf8).new_from_index(0, self.n)
        for keys, code, kinds in self.parts:
            at = keys.get_column("i")
            country.scatter(at, code)
            kind.scatter(at, kinds)
        return country, kind


def _classify_code(regions: tuple[Region, ...], cc: int, keys: pl.DataFrame, found: _Found) -> None:
    """Classify the keys (columns key and i) of one calling code as libphonenumber does: a code's only region
    takes them all; among several regions, the first whose leading-digits pattern matches (whatever the type) or
    — for a region without one — for which the number's type is not unknown; numbers no region takes are '+CC',
    unknown."""
    shared = len(regions) > 1
    rest = keys  # not yet given a region
    for region in regions:
        if not rest.height:
            break
        if not shared:
            mine, rest = rest, rest.clear()
        elif region.leading:
            mine, rest = _split(rest, region.led)
        else:
            mine = rest
        if not mine.height:
            continue
        valid, invalid = _split(mine, region.valid)
        kinds = valid.select(region.kind).to_series() if valid.height else pl.Series([], dtype=pl.Utf8)
        if shared and not region.leading:  # the region takes only the numbers it knows a type for
            typed = kinds != "unknown"
            found.add(valid.filter(typed), region.code, kinds.filter(typed))
            rest = pl.concat([invalid, valid.filter(~typed)])
        else:
            found.add(valid, region.code, kinds)
            found.add(invalid, region.code, "unknown")
    found.add(rest, f"+{cc}", "unknown")


def classify(numbers: pl.Series) -> pl.DataFrame:
    """For digit strings (international, no 00/+): columns number, country, kind, a row per number, in order.
    kind is libphonenumber's type name in lower case (premium_rate, mobile, fixed_line, ...) or 'unknown';
    country is the region ('GB'), '+CC' when no region of the code fits; both are null when no calling code
    does (or the number is null, or shorter than 3 or longer than 20 characters). Each number is classified as
    often as it comes: callers that see repeats pass distinct numbers."""
    number = pl.col("number")
    frame = pl.DataFrame({"number": numbers.cast(pl.Utf8)})
    found = _Found(frame.height)
    keys = frame.with_row_index("i").filter(number.str.len_chars().is_between(3, 20)) \
        .with_columns(_country_code(number).alias("cc")).drop_nulls()
    if keys.height:
        national_length = number.str.len_chars() - pl.col("cc").str.len_chars()
        keys = keys.select("i", "cc", pl.concat_str(national_length.cast(pl.Utf8).str.zfill(2), number).alias("key"),
                           (number.str.len_bytes() > number.str.len_chars()).alias("wide"))
        ascii_digits = not keys.get_column("wide").any()
        for (code,), group in keys.partition_by("cc", as_dict=True).items():
            cc = int(str(code))
            _classify_code(regions_of(cc, ascii_digits), cc, group.select("key", "i"), found)
    country, kind = found.columns()
    return frame.with_columns(country, kind)
