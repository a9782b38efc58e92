"""The vectorised number classifier agrees with phonenumbers itself, number by number."""

from __future__ import annotations

import random

import phonenumbers
import polars as pl
from phonenumbers import PhoneNumberType

from fraudwatch.detect.enrich import classify_number
from fraudwatch.detect.numbers import classify

TYPES = (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE, PhoneNumberType.PREMIUM_RATE,
         PhoneNumberType.SHARED_COST, PhoneNumberType.TOLL_FREE, PhoneNumberType.UAN, PhoneNumberType.VOIP,
         PhoneNumberType.PERSONAL_NUMBER)


def sample_numbers() -> list[str]:
    rng = random.Random(11)
    out = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in TYPES:
            ex = phonenumbers.example_number_for_type(region, kind)
            if ex is None:
                continue
            digits = f"{ex.country_code}{ex.national_number}"
            out.append(digits)
            out.append(digits[:-3] + f"{rng.randrange(1000):03d}")  # a neighbour, often another type or invalid
    for cc in sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS):
        ex = phonenumbers.example_number_for_non_geo_entity(cc)
        if ex is not None:
            out.append(f"{ex.country_code}{ex.national_number}")
    return [*out, "4490000000", "999999999999", "12", "0", "447911123456789"]


def test_vectorised_classification_matches_phonenumbers() -> None:
    numbers = sample_numbers()
    assert len(numbers) > 2000
    got = {n: (c, k) for n, c, k in classify(pl.Series(numbers)).iter_rows()}
    mismatches = [(n, got.get(n), classify_number(n)) for n in set(numbers)
                  if got.get(n, (None, None)) != classify_number(n)]
    assert mismatches == []


def test_a_row_per_number_in_input_order() -> None:
    """Repeats, nulls and numbers no calling code fits keep their places (null class), so the caller needs no
    join to put the classes back."""
    numbers = ["447400123456", None, "12", "449012345678", "447400123456", "999999999999", "4" * 21, "979123456789"]
    got = classify(pl.Series(numbers, dtype=pl.Utf8))
    assert got.rows() == [("447400123456", "GB", "mobile"), (None, None, None), ("12", None, None),
                          ("449012345678", "GB", "premium_rate"), ("447400123456", "GB", "mobile"),
                          ("999999999999", None, None), ("4" * 21, None, None),
                          ("979123456789", "+979", "premium_rate")]
    assert classify(pl.Series([], dtype=pl.Utf8)).rows() == []


def test_known_classes() -> None:
    got = {n: (c, k) for n, c, k in classify(pl.Series(["449012345678", "447400123456", "979123456789",
                                                          "882130000000"])).iter_rows()}
    assert got["449012345678"] == ("GB", "premium_rate")
    assert got["447400123456"] == ("GB", "mobile")
    assert got["979123456789"] == ("+979", "premium_rate")


def matches_phonenumbers(numbers: list[str]) -> list[tuple[str, object, object]]:
    got = {n: (c, k) for n, c, k in classify(pl.Series(numbers)).iter_rows()}
    return [(n, got.get(n), classify_number(n)) for n in set(numbers) if got.get(n, (None, None)) != classify_number(n)]


def test_later_regions_of_a_shared_code() -> None:
    """A region is tried only on the numbers earlier regions of its code left: by leading digits (IM, JM, KZ) or
    by a known type (GG, JE, CA, CC); a number no region knows stays '+CC'."""
    got = {n: (c, k) for n, c, k in classify(pl.Series([
        "447400123456", "441481256789", "441624756789", "447924123456", "441534456789", "447797712345",
        "15062345678", "18765230123", "12015550123", "77123456789", "61891621234", "4490000000"])).iter_rows()}
    assert got["441481256789"] == ("GG", "fixed_line")
    assert got["441624756789"] == ("IM", "fixed_line")
    assert got["447924123456"] == ("GB", "mobile")  # IM's example mobile number, but valid in GB, tried first
    assert got["441534456789"] == ("JE", "fixed_line")
    assert got["15062345678"] == ("CA", "fixed_line_or_mobile")
    assert got["18765230123"] == ("JM", "fixed_line_or_mobile")
    assert got["77123456789"] == ("KZ", "fixed_line")
    assert got["61891621234"] == ("CC", "fixed_line")
    assert got["4490000000"] == ("+44", "unknown")
    assert matches_phonenumbers(list(got)) == []


def test_random_numbers_match_phonenumbers() -> None:
    """Mostly invalid numbers: most stop at a region's general pattern. (Lengths libphonenumber parses as they
    are: it rejects shorter numbers and may strip a national prefix from longer ones, which classify ignores.)"""
    rng = random.Random(5)
    numbers = ["44" + str(rng.randrange(10**8, 10**9)) for _ in range(1000)]
    for cc, digits in (("44", 10), ("1", 10), ("7", 10), ("61", 9), ("590", 9), ("49", 11), ("979", 9)):
        numbers += [cc + str(rng.randrange(10**5, 10**digits)) for _ in range(300)]
    assert matches_phonenumbers(numbers) == []


def test_a_number_is_classified_the_same_in_any_batch() -> None:
    numbers = sample_numbers()
    whole = classify(pl.Series(numbers)).unique().sort("number")
    random.Random(3).shuffle(numbers)
    parts = pl.concat([classify(pl.Series(numbers[i:i + 97])) for i in range(0, len(numbers), 97)])
    assert parts.unique().sort("number").equals(whole)


def test_non_ascii_digits_keep_libphonenumber_patterns() -> None:
    """\\d is [0-9] only in batches of ASCII numbers: a number written in other digits still matches \\d."""
    arabic = ["493012٣٤٥٦", "4990012345٦٧"]  # DE fixed line, premium rate
    got = {n: (c, k) for n, c, k in classify(pl.Series([*arabic, "4930123456"])).iter_rows()}
    assert got == {"493012٣٤٥٦": ("DE", "fixed_line"), "4990012345٦٧": ("DE", "premium_rate"),
                   "4930123456": ("DE", "fixed_line")}
    assert matches_phonenumbers(arabic) == []
    numbers = sample_numbers()
    mixed = classify(pl.Series([*numbers, *arabic])).filter(~pl.col("number").is_in(arabic))
    assert mixed.sort("number").equals(classify(pl.Series(numbers)).sort("number"))
