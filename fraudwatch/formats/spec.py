"""Format definitions: YAML files under rules/formats/ turned into frozen, validated objects.

Two kinds of format exist:

* line formats (`kind: lines`, the default) — a `prefix` and named `patterns` of regexes whose named groups are
  the canonical columns of the format's `table`; `ignore` rules for lines that are recognised but of no
  interest; `negative` sample lines that must be rejected.
* CSV formats (`kind: csv`, see `csvspec.py`) — a header-to-column mapping for CDR and customer exports.

Regexes are RE2 syntax (they run inside DuckDB): no look-around, no back-references. `<NAME>` inserts the
fragment `NAME` from the file's `define:` map. Every pattern and ignore rule carries samples, and the test suite
checks each sample field by field (fail2ban's failJSON discipline).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fraudwatch.errors import ConfigError, Location
from fraudwatch.store.schema import EVENT_TABLES, TABLES
from fraudwatch.yamlfile import Lines

_TOKEN = re.compile(r"<([A-Z][A-Z0-9_]*)>")
_GROUP = re.compile(r"\(\?P<([A-Za-z_][A-Za-z0-9_]*)>")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
# Columns the engine fills itself; a format may not capture them (except ts, which every line must carry).
ENGINE_COLUMNS = frozenset({"id", "source", "line_no", "byte_offset", "format", "pattern", "repaired"})


@dataclass(frozen=True)
class TimeSpec:
    """How the `ts` group becomes an instant: strptime formats tried in order, and the zone rules."""

    formats: tuple[str, ...]
    infer_year: bool = False  # syslog stamps ("Jun  8 14:34:33") carry no year: take it from the file's mtime

    @property
    def has_zone(self) -> bool:
        return "%z" in self.formats[0] or "%Z" in self.formats[0]


@dataclass(frozen=True)
class Sample:
    line: str
    expect: dict[str, Any]
    where: Location


@dataclass(frozen=True)
class Pattern:
    """One regex of a format. `regexes` holds one full-line regex per prefix variant."""

    name: str
    regexes: tuple[str, ...]
    groups: tuple[str, ...]
    contains: str | None
    set: dict[str, Any]
    time: TimeSpec
    samples: tuple[Sample, ...]
    where: Location


@dataclass(frozen=True)
class IgnoreRule:
    name: str
    regex: str
    samples: tuple[str, ...]
    where: Location


@dataclass(frozen=True)
class Derive:
    """A column computed from another: the first regex (RE2, searched) that matches gives the value."""

    column: str
    source: str
    cases: tuple[tuple[str, str], ...]
    default: str | None


@dataclass(frozen=True)
class Negative:
    line: str
    reason: str
    where: Location


@dataclass(frozen=True, eq=False)
class LineFormat:
    name: str
    description: str
    table: str
    path: Path
    patterns: tuple[Pattern, ...]
    ignores: tuple[IgnoreRule, ...]
    derives: tuple[Derive, ...]
    negatives: tuple[Negative, ...]
    kind: str = "lines"


def _expect(cond: bool, reason: str, where: Location) -> None:
    if not cond:
        raise ConfigError(reason, where)


def _str(doc: dict[str, Any], key: str, lines: Lines, required: bool = True) -> str | None:
    value = doc.get(key)
    if value is None:
        _expect(not required, f"'{key}' is required", lines.at(doc))
        return None
    _expect(isinstance(value, str) and value != "", f"'{key}' must be non-empty text", lines.at(doc, key))
    return str(value)


def _expand(regex: str, define: dict[str, str], where: Location) -> str:
    """Replace <NAME> tokens (repeatedly, so definitions may use each other)."""
    for _ in range(10):
        unknown = [m for m in _TOKEN.findall(regex) if m not in define]
        _expect(not unknown, f"unknown token <{unknown[0] if unknown else ''}> (define it under 'define:')", where)
        expanded = _TOKEN.sub(lambda m: define[m.group(1)], regex)
        if expanded == regex:
            return regex
        regex = expanded
    raise ConfigError("'define:' tokens nest too deeply (a token refers to itself?)", where)


def _unnamed_groups(regex: str) -> int:
    """Capturing groups without a name. DuckDB returns captures by position, so there must be none.

    Python's parser counts the groups; a regex it cannot parse (RE2-only syntax) is checked by RE2 later."""
    try:
        with warnings.catch_warnings():  # RE2's [[:alpha:]] reads to Python as a possible nested set: only counted
            warnings.simplefilter("ignore", FutureWarning)
            compiled = re.compile(regex)
    except re.error:
        return 0
    return compiled.groups - len(compiled.groupindex)


def _time_spec(raw: object, lines: Lines, where: Location) -> TimeSpec:
    _expect(isinstance(raw, dict), "'time' must be a mapping with 'formats'", where)
    assert isinstance(raw, dict)
    unknown = sorted(set(raw) - {"formats", "year"})
    if unknown:
        raise ConfigError(f"unknown key 'time.{unknown[0]}'", lines.at(raw, unknown[0]))
    formats = raw.get("formats")
    if isinstance(formats, str):
        formats = [formats]
    _expect(isinstance(formats, list) and bool(formats) and all(isinstance(f, str) and f for f in formats),
            "'time.formats' must be a list of strptime formats", lines.at(raw, "formats"))
    assert isinstance(formats, list)
    zoned = {("%z" in f or "%Z" in f) for f in formats}
    _expect(len(zoned) == 1, "'time.formats' must all carry a zone (%z) or all lack one", lines.at(raw, "formats"))
    year = raw.get("year")
    _expect(year in (None, "infer"), "'time.year' may only be 'infer'", lines.at(raw, "year"))
    return TimeSpec(tuple(formats), infer_year=year == "infer")


def _set_values(raw: object, columns: set[str], lines: Lines, where: Location) -> dict[str, Any]:
    if raw is None:
        return {}
    _expect(isinstance(raw, dict), "'set' must be a mapping of column: value", where)
    assert isinstance(raw, dict)
    for key, value in raw.items():
        _expect(key in columns and key not in ENGINE_COLUMNS and key != "ts",
                f"'set.{key}' is not a column this format may set", lines.at(raw, key))
        _expect(value is None or isinstance(value, str | int | float),
                f"'set.{key}' must be a plain value", lines.at(raw, key))
    return dict(raw)


def _samples(raw: object, lines: Lines, where: Location, columns: set[str]) -> tuple[Sample, ...]:
    _expect(isinstance(raw, list) and bool(raw), "every pattern needs 'samples' (line + expect)", where)
    assert isinstance(raw, list)
    out = []
    for item in raw:
        at = lines.at(item)
        _expect(isinstance(item, dict) and isinstance(item.get("line"), str),
                "a sample is a mapping with 'line' and 'expect'", at)
        expect = item.get("expect") or {}
        _expect(isinstance(expect, dict), "'expect' must be a mapping of column: value", at)
        for key in expect:
            _expect(key in columns, f"sample expects unknown column '{key}'", lines.at(expect, key))
        out.append(Sample(item["line"], dict(expect), at))
    return tuple(out)


def _derives(raw: object, columns: set[str], lines: Lines, where: Location) -> tuple[Derive, ...]:
    if raw is None:
        return ()
    _expect(isinstance(raw, dict), "'derive' must map column -> {from, cases, default}", where)
    assert isinstance(raw, dict)
    out = []
    for column, spec in raw.items():
        at = lines.at(raw, column)
        _expect(column in columns and column not in ENGINE_COLUMNS, f"'derive.{column}' is not a column", at)
        _expect(isinstance(spec, dict) and isinstance(spec.get("from"), str), "derive needs 'from: column'", at)
        _expect(spec["from"] in columns, f"derive.{column}.from: unknown column '{spec['from']}'", at)
        cases = spec.get("cases") or []
        _expect(isinstance(cases, list) and all(isinstance(c, list) and len(c) == 2 for c in cases),
                "derive cases are [regex, value] pairs", at)
        out.append(Derive(column, spec["from"], tuple((str(r), str(v)) for r, v in cases),
                          None if spec.get("default") is None else str(spec["default"])))
    return tuple(out)


def load_line_format(doc: dict[str, Any], lines: Lines) -> LineFormat:
    """Validate a line format document (already parsed, with line numbers) into a `LineFormat`."""
    top = lines.at(doc)
    known = {"name", "description", "kind", "table", "set", "time", "define", "prefix", "patterns", "ignore",
             "negative", "derive", "detect"}
    unknown = sorted(set(doc) - known)
    if unknown:
        raise ConfigError(f"unknown key '{unknown[0]}'", lines.at(doc, unknown[0]))
    name = _str(doc, "name", lines)
    assert name is not None
    _expect(bool(_NAME.match(name)), "'name' must be lower-case letters, digits, '-', '_' or '.'",
            lines.at(doc, "name"))
    table = _str(doc, "table", lines)
    _expect(table in EVENT_TABLES, f"'table' must be one of {', '.join(EVENT_TABLES)}", lines.at(doc, "table"))
    assert table is not None
    columns = set(TABLES[table].names)
    define = doc.get("define") or {}
    _expect(isinstance(define, dict) and all(isinstance(v, str) for v in define.values()),
            "'define' must map NAME to a regex fragment", lines.at(doc, "define"))
    fmt_set = _set_values(doc.get("set"), columns, lines, lines.at(doc, "set"))
    fmt_time = _time_spec(doc.get("time"), lines, lines.at(doc, "time")) if "time" in doc else None
    prefixes_raw = doc.get("prefix", "")
    prefixes = prefixes_raw if isinstance(prefixes_raw, list) else [prefixes_raw]
    _expect(all(isinstance(p, str) for p in prefixes), "'prefix' must be a regex or a list of regexes",
            lines.at(doc, "prefix"))
    prefixes = [_expand(p, define, lines.at(doc, "prefix")) for p in prefixes]

    patterns_raw = doc.get("patterns")
    _expect(isinstance(patterns_raw, list) and bool(patterns_raw), "'patterns' must be a non-empty list", top)
    assert isinstance(patterns_raw, list)
    patterns: list[Pattern] = []
    seen: set[str] = set()
    for raw in patterns_raw:
        at = lines.at(raw)
        _expect(isinstance(raw, dict), "a pattern is a mapping with 'name' and 'regex'", at)
        pname = _str(raw, "name", lines)
        assert pname is not None
        _expect(pname not in seen, f"duplicate pattern name '{pname}'", at)
        seen.add(pname)
        unknown = sorted(set(raw) - {"name", "regex", "contains", "set", "samples", "time", "prefix"})
        _expect(not unknown, f"unknown key '{unknown[0] if unknown else ''}' in pattern '{pname}'", at)
        body = _expand(_str(raw, "regex", lines) or "", define, lines.at(raw, "regex"))
        own_prefix = raw.get("prefix")
        pat_prefixes = prefixes if own_prefix is None else [
            _expand(p, define, lines.at(raw, "prefix"))
            for p in (own_prefix if isinstance(own_prefix, list) else [own_prefix])]
        regexes = tuple(f"^(?:{p}{body})\\r?\\n?$" for p in pat_prefixes)
        groups: list[str] = []
        for regex in regexes:
            _expect(_unnamed_groups(regex) == 0,
                    f"pattern '{pname}' has an unnamed capturing group: write (?:...) for grouping, "
                    "(?P<column>...) to capture", lines.at(raw, "regex"))
            found = _GROUP.findall(regex)
            dup = {g for g in found if found.count(g) > 1}
            _expect(not dup, f"group '{sorted(dup)[0] if dup else ''}' appears twice in pattern '{pname}'", at)
            for g in found:
                _expect(g in columns and g not in ENGINE_COLUMNS,
                        f"group '{g}' in pattern '{pname}' is not a column of {table}", lines.at(raw, "regex"))
                if g not in groups:
                    groups.append(g)
        _expect("ts" in groups, f"pattern '{pname}' captures no 'ts' group (in its prefix or regex)", at)
        time = _time_spec(raw["time"], lines, lines.at(raw, "time")) if "time" in raw else fmt_time
        _expect(time is not None, f"pattern '{pname}' has no 'time' (set it on the format or the pattern)", at)
        assert time is not None
        pset = {**fmt_set, **_set_values(raw.get("set"), columns, lines, lines.at(raw, "set"))}
        contains = raw.get("contains")
        _expect(contains is None or (isinstance(contains, str) and contains != ""),
                "'contains' must be non-empty text", lines.at(raw, "contains"))
        samples = _samples(raw.get("samples"), lines, at, columns)
        patterns.append(Pattern(pname, regexes, tuple(groups), contains, pset, time, samples, at))

    ignores: list[IgnoreRule] = []
    for raw in doc.get("ignore") or []:
        at = lines.at(raw)
        _expect(isinstance(raw, dict) and isinstance(raw.get("regex"), str), "an ignore rule needs 'regex'", at)
        iname = str(raw.get("name") or f"ignore-{len(ignores) + 1}")
        samples = raw.get("samples")
        _expect(isinstance(samples, list) and bool(samples) and all(isinstance(s, str) for s in samples),
                f"ignore rule '{iname}' needs 'samples' (lines it must swallow)", at)
        body = _expand(raw["regex"], define, lines.at(raw, "regex"))
        own = raw.get("prefix")
        own_list = own if isinstance(own, list) else [own]
        _expect(own is None or all(isinstance(p, str) for p in own_list),
                "'prefix' must be a regex or a list of regexes", lines.at(raw, "prefix"))
        ign_prefixes = prefixes if own is None else [_expand(str(p), define, at) for p in own_list]
        alt = "|".join(f"(?:{p}{body})" for p in ign_prefixes)
        regex = _GROUP.sub("(?:", f"^(?:{alt})\\r?\\n?$")  # ignore rules capture nothing
        ignores.append(IgnoreRule(iname, regex, tuple(samples), at))

    negatives: list[Negative] = []
    for raw in doc.get("negative") or []:
        at = lines.at(raw)
        _expect(isinstance(raw, dict) and isinstance(raw.get("line"), str) and isinstance(raw.get("reason"), str),
                "a negative sample has 'line' and 'reason' (text the reject reason must contain)", at)
        negatives.append(Negative(raw["line"], raw["reason"], at))

    return LineFormat(
        name=name,
        description=str(doc.get("description") or ""),
        table=table,
        path=lines.path,
        patterns=tuple(patterns),
        ignores=tuple(ignores),
        derives=_derives(doc.get("derive"), columns, lines, lines.at(doc, "derive")),
        negatives=tuple(negatives),
    )
