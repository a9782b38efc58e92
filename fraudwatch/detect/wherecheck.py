"""Every mistake of a rule's `where:` at once, each at its line: fields the rule's source does not have, operators
that do not exist, values of the wrong kind, and values the column can never hold (`fraudwatch.detect.known`).

The compiler (`fraudwatch.detect.filters`) stops at the first mistake, which is right for loading rules but makes
`fraudwatch lint` a loop of one fix per run; and it accepts `event: requets`, which is well formed and matches
nothing. This walks the whole condition first, so the loader reports all of them together.
"""

from __future__ import annotations

import difflib
from typing import Any

from fraudwatch.detect.filters import OPS, FilterError, check_value, field_kind
from fraudwatch.detect.known import field_suggestion, value_problem
from fraudwatch.errors import Location
from fraudwatch.yamlfile import Lines

_VALUE_OPS = ("eq", "ne", "in", "not_in", "lt", "le", "gt", "ge")  # operators whose argument is a column value
# how other query languages (Elasticsearch, MongoDB, SQL) spell ours
_SPELLED_ELSEWHERE = {"gte": "ge", "lte": "le", "greater": "gt", "less": "lt", "neq": "ne", "nin": "not_in",
                      "equals": "eq", "contains": "regex", "match": "regex", "like": "regex"}


def where_problems(where: dict[str, Any], source: str, columns: set[str], lines: Lines) -> list[tuple[str, Location]]:
    """(reason, location) for each mistake in `where` (a mapping read from `lines`) for a rule of `source`."""
    found: list[tuple[str, Location]] = []
    _walk(where, source, columns, lines, found)
    return found


def _walk(where: dict[str, Any], source: str, columns: set[str], lines: Lines,
          found: list[tuple[str, Location]]) -> None:
    for name, cond in where.items():
        at = lines.at(where, name)
        if name == "any":
            if not isinstance(cond, list) or not cond or not all(isinstance(c, dict) for c in cond):
                found.append(("'any' takes a list of conditions", at))
                continue
            for part in cond:
                _walk(part, source, columns, lines, found)
        elif name == "not":
            if not isinstance(cond, dict):
                found.append(("'not' takes a mapping of conditions", at))
                continue
            _walk(cond, source, columns, lines, found)
        elif name not in columns:
            found.append((f"unknown field '{name}' for source {source}{field_suggestion(name, columns)}", at))
        else:
            for reason in _condition(name, cond, source):
                found.append((reason, at))


def _condition(name: str, cond: Any, source: str) -> list[str]:
    """The mistakes of one field's condition."""
    if isinstance(cond, dict):
        if not cond:
            return [f"'{name}' has an empty mapping of operators"]
        out = []
        for op, arg in cond.items():
            if op not in OPS:
                close = [_SPELLED_ELSEWHERE[op]] if op in _SPELLED_ELSEWHERE else difflib.get_close_matches(
                    str(op), OPS, n=1, cutoff=0.6)
                hint = f"did you mean '{close[0]}'?" if close else f"known: {', '.join(OPS)}"
                out.append(f"'{name}': unknown operator '{op}' ({hint})")
            elif op in _VALUE_OPS:
                values = arg if op in ("in", "not_in") and isinstance(arg, list) else [arg]
                out += _values(name, values, source, membership=op in ("eq", "in"))
        return out
    return _values(name, cond if isinstance(cond, list) else [cond], source, membership=True)


def _values(name: str, values: list[Any], source: str, membership: bool) -> list[str]:
    out = []
    kind = field_kind(name)
    for value in values:
        if isinstance(value, list | dict):
            continue  # the compiler says what shape an operator takes
        try:
            value = check_value(name, kind, value)
        except FilterError as exc:
            out.append(str(exc))
            continue
        # a value the column never holds: an equality never matches (a comparison or an exclusion is then
        # pointless as well, but harmless)
        problem = value_problem(source, name, value) if membership or name == "status" else None
        if problem is not None:
            out.append(problem)
    return out
