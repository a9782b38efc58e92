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


def test_known_classes() -> None:
    got = {n: (c, k) for n, c, k in classify(pl.Series(["449012345678", "447400123456", "979123456789",
                                                          "882130000000"])).iter_rows()}
    assert got["449012345678"] == ("GB", "premium_rate")
    assert got["447400123456"] == ("GB", "mobile")
    assert got["979123456789"] == ("+979", "premium_rate")
