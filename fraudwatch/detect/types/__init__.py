"""The registry of rule types: `type:` in a rule file -> the class whose fields are its parameters (a `RuleType`).

One family per module: `counts` (threshold, list_match, spike), `aggregates` (distinct, sum), `newterm`,
`seasonal` and `credit`. A new type is a module here and an entry below.
"""

from __future__ import annotations

from fraudwatch.detect.types.aggregates import Distinct, Sum
from fraudwatch.detect.types.base import RuleType
from fraudwatch.detect.types.counts import ListMatch, Spike, Threshold
from fraudwatch.detect.types.credit import CreditLimit
from fraudwatch.detect.types.newterm import NewTerm
from fraudwatch.detect.types.seasonal import Seasonal

TYPES: dict[str, type[RuleType]] = {
    cls.type_name: cls for cls in (Threshold, Distinct, Sum, Spike, ListMatch, NewTerm, Seasonal, CreditLimit)
}

__all__ = ["TYPES", "RuleType"]
