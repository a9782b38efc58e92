"""The one registry of rule types: `type:` in a rule file -> the class whose fields are its parameters."""

from __future__ import annotations

from typing import Any

from fraudwatch.detect.stateful import CreditLimit, NewTerm, Seasonal
from fraudwatch.detect.windowed import Distinct, ListMatch, Spike, Sum, Threshold

TYPES: dict[str, type[Any]] = {
    cls.type_name: cls for cls in (Threshold, Distinct, Sum, Spike, ListMatch, NewTerm, Seasonal, CreditLimit)
}

