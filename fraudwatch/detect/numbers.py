"""Classifying called numbers (region and libphonenumber number type) for a whole column at once.

`phonenumbers.parse` + `number_type` costs about 80 µs a number in Python; a backfill of a million CDRs would
spend more time there than in every rule together. This applies the same libphonenumber metadata — country
calling codes, each region's general pattern and its per-type national-number patterns — as vectorised regex
matches over the distinct numbers of a batch, grouped by country code. The test suite checks it against
`phonenumbers` number by number.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import polars as pl
from phonenumbers import PhoneMetadata
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

# libphonenumber's order of checks in number_type(): the first type whose pattern matches wins.
TYPE_ORDER = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan", "voicemail")


@dataclass(frozen=True)
class Desc:
    pattern: str  # full-match regex of the national number
    lengths: tuple[int, ...]  # possible lengths (empty: any)

    def matches(self, national: pl.Expr) -> pl.Expr:
        hit = national.str.contains(self.pattern)
        return hit & national.str.len_chars().is_in(self.lengths) if self.lengths else hit


@dataclass(frozen=True)
class Region:
    code: str  # 'GB', or '+979' for a non-geographic code
    leading: str | None  # leading-digits pattern that alone selects this region among its code's regions
    general: Desc
    types: tuple[tuple[str, Desc], ...]  # (type name, desc) in libphonenumber's check order
    fixed: Desc | None
    mobile: Desc | None
    same_fixed_mobile: bool

    def kind(self, national: pl.Expr) -> pl.Expr:
        """libphonenumber's number_type for this region's metadata, as an expression."""
        fixed = self.fixed.matches(national) if self.fixed else pl.lit(False)
        mobile = self.mobile.matches(national) if self.mobile else pl.lit(False)
        if self.same_fixed_mobile:
            tail = pl.when(fixed).then(pl.lit("fixed_line_or_mobile")).otherwise(pl.lit("unknown"))
        else:
            tail = (pl.when(fixed & mobile).then(pl.lit("fixed_line_or_mobile")).when(fixed).then(pl.lit("fixed_line"))
                    .when(mobile).then(pl.lit("mobile")).otherwise(pl.lit("unknown")))
        for name, desc in reversed(self.types):
            tail = pl.when(desc.matches(national)).then(pl.lit(name)).otherwise(tail)
        return pl.when(self.general.matches(national)).then(tail).otherwise(pl.lit("unknown"))


def _desc(d: object) -> Desc | None:
    pattern = getattr(d, "national_number_pattern", None)
    if not pattern:
        return None
    lengths = tuple(n for n in (getattr(d, "possible_length", None) or ()) if n > 0)
    return Desc(f"^(?:{pattern})$", lengths)


@functools.lru_cache(maxsize=512)
def regions_of(cc: int) -> tuple[Region, ...]:
    out = []
    for region in COUNTRY_CODE_TO_REGION_CODE.get(cc, ()):
        meta = (PhoneMetadata.metadata_for_nongeo_region(cc) if region == "001"
                else PhoneMetadata.metadata_for_region(region))
        general = _desc(meta.general_desc) if meta is not None else None
        if meta is None or general is None:
            continue
        types = tuple((name, d) for name in TYPE_ORDER if (d := _desc(getattr(meta, name, None))) is not None)
        code = f"+{cc}" if region == "001" else region
        leading = f"^(?:{meta.leading_digits})" if meta.leading_digits else None
        out.append(Region(code, leading, general, types, _desc(meta.fixed_line), _desc(meta.mobile),
                          bool(meta.same_mobile_and_fixed_line_pattern)))
    return tuple(out)


def _country_code(digits: pl.Expr) -> pl.Expr:
    """The 1-3 digit calling code that starts the number (codes are prefix-free)."""
    codes = [str(c) for c in COUNTRY_CODE_TO_REGION_CODE]
    expr: pl.Expr = pl.lit(None, dtype=pl.Int64)
    for n in (3, 2, 1):
        head = digits.str.slice(0, n)
        expr = pl.when(head.is_in(codes)).then(head.cast(pl.Int64)).otherwise(expr)
    return expr


def classify(numbers: pl.Series) -> pl.DataFrame:
    """For digit strings (international, no 00/+): columns number, country, kind, one row per distinct number.
    kind is libphonenumber's type name in lower case (premium_rate, mobile, fixed_line, ...) or 'unknown';
    country is the region ('GB'), '+CC' when no region of the code fits, null when no calling code does."""
    frame = pl.DataFrame({"number": numbers.drop_nulls().unique().cast(pl.Utf8)}).filter(
        pl.col("number").str.len_chars().is_between(3, 20))
    frame = frame.with_columns(_country_code(pl.col("number")).alias("cc"))
    parts = []
    for (cc,), group in frame.filter(pl.col("cc").is_not_null()).group_by(["cc"]):
        national = pl.col("number").str.slice(len(str(cc)))
        regions = regions_of(int(cc))
        country: pl.Expr = pl.lit(f"+{cc}")
        kind: pl.Expr = pl.lit("unknown")
        if len(regions) == 1:  # libphonenumber takes a code's only region without checking the number
            country, kind = pl.lit(regions[0].code), regions[0].kind(national)
        else:  # else the first region whose leading digits match, or for which the number is valid
            for region in reversed(regions):
                region_kind = region.kind(national)
                fits = national.str.contains(region.leading) if region.leading else region_kind != "unknown"
                country = pl.when(fits).then(pl.lit(region.code)).otherwise(country)
                kind = pl.when(fits).then(region_kind).otherwise(kind)
        parts.append(group.select("number", country.alias("country"), kind.alias("kind")))
    if not parts:
        return pl.DataFrame(schema={"number": pl.Utf8, "country": pl.Utf8, "kind": pl.Utf8})
    return pl.concat(parts)
