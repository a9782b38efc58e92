"""Rule files: YAML under rules/ (shipped) and the user's folders, turned into typed rule objects.

A rule names a `type:`; `TYPES` maps it to a class whose dataclass fields are exactly the rule's parameters
(pySigma / ElastAlert style). Common keys (id, description, source, where, key, window, warning, critical,
action, ...) live in `Common`; type-specific ones are the class's own fields. Every error names the file, the
line and the reason, and `lint` collects all of them instead of stopping at the first.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from fraudwatch import tomldoc
from fraudwatch.detect.fields import columns_of
from fraudwatch.detect.known import field_suggestion
from fraudwatch.detect.wherecheck import where_problems
from fraudwatch.errors import ConfigError, Location
from fraudwatch.yamlfile import Lines, load_with_lines

SOURCES = ("sip_events", "netfilter_events", "cdrs", "rejects")
ACTIONS = ("alert", "ban_ip", "lock_account")
KEY_TYPES = {"src_ip": "ip", "caller_ip": "ip", "username": "account", "account": "account",
             "customer_account": "account", "callee_prefix": "prefix", "callee_e164": "number",
             "caller_e164": "number", "callee": "number"}
_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
R = TypeVar("R")  # a rule type (`fraudwatch.detect.types.base.RuleType`: this module is below it)


class ParamError(ValueError):
    """A rule parameter's value is wrong (raised by a rule class's `check`); the error points at `key`'s line."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


class RuleErrors(ConfigError):
    """Every mistake found in one rule, each with its line (`errors`); as one error, the first and a count, for
    the commands that load rules to run them (`fraudwatch lint` lists them all)."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        more = f" (and {len(errors) - 1} more: `fraudwatch lint` lists them)" if len(errors) > 1 else ""
        super().__init__(errors[0].reason + more, errors[0].where)


class Duration(float):
    """Seconds, written in YAML as '10s', '5m', '1h', '7d' (or a number of seconds)."""


def parse_duration(value: object) -> Duration:
    """`value` as a Duration, spelt as everywhere else in fraudwatch (`fraudwatch.tomldoc.parse_duration`)."""
    return Duration(tomldoc.parse_duration(value))


@dataclass(frozen=True)
class EventSample:
    """Events for a rule's sample, generated from compact YAML; `expect` is none, warning or critical."""

    name: str
    expect: str
    events: tuple[dict[str, Any], ...]
    where: Location


@dataclass(frozen=True, eq=False)
class Common:
    """Keys every rule has."""

    id: str
    type: str
    description: str
    source: str
    where: dict[str, Any]
    key: tuple[str, ...]  # empty: one switch-wide key
    window: Duration
    warning: float | None
    critical: float | None
    action: str
    act_on: str  # lowest severity at which `action` is proposed (below it the alert proposes 'alert')
    cooldown: Duration  # quiet time after which an ongoing alert closes (default: the window)
    report_only: bool
    tags: tuple[str, ...]
    group: int | None  # this many keys alerting within a cooldown: further warnings join one switch-wide alert
    samples: tuple[EventSample, ...]
    path: Path
    line: int | None

    @property
    def key_type(self) -> str:
        if not self.key:
            return "global"
        return KEY_TYPES.get(self.key[0], "key")

    @property
    def location(self) -> Location:
        return Location(self.path, self.line)


COMMON_KEYS = {f.name for f in dataclasses.fields(Common)} - {"path", "line"} | {"enabled"}


def _convert(value: Any, hint: Any, name: str) -> Any:
    """YAML value -> the annotated type of a rule parameter (int, float, str, bool, Duration, tuple, dict)."""
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _convert(value, args[0], name)
    if hint is Duration:
        return parse_duration(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ValueError("must be true or false")
        return value
    if hint is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError("must be a whole number")
        return value
    if hint is float:
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ValueError("must be a number")
        return float(value)
    if hint is str:
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise ValueError("must be text")
        return str(value)
    if origin is tuple:
        items = value if isinstance(value, list) else [value]
        inner = typing.get_args(hint)[0]
        return tuple(_convert(v, inner, name) for v in items)
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ValueError("must be a mapping")
        return dict(value)
    return value


def _params(cls: type[Any], raw: dict[str, Any], rid: str, rtype: str, lines: Lines) -> tuple[
        dict[str, Any], list[ConfigError]]:
    """The rule class's own parameters from its YAML mapping, converted by their annotations, and every mistake
    among them (unknown keys, values of the wrong kind, required keys missing)."""
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    errors: list[ConfigError] = []
    own = [f for f in dataclasses.fields(cls) if f.name != "common"]
    allowed = COMMON_KEYS | {f.name for f in own}
    for key in raw:
        if key not in allowed:
            close = difflib.get_close_matches(key, sorted(allowed), n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'? " if close else ""
            errors.append(ConfigError(f"rule '{rid}': unknown key '{key}' for type {rtype} ({hint}its own keys: "
                                      f"{', '.join(sorted(f.name for f in own)) or 'none'})", lines.at(raw, key)))
    for f in own:
        if f.name in raw:
            try:
                values[f.name] = _convert(raw[f.name], hints[f.name], f.name)
            except ValueError as exc:
                errors.append(ConfigError(f"rule '{rid}': '{f.name}' {exc}", lines.at(raw, f.name)))
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            errors.append(ConfigError(f"rule '{rid}': '{f.name}' is required for type {rtype}", lines.at(raw)))
    return values, errors


def _construct(cls: type[R], values: dict[str, Any], common: Common, raw: dict[str, Any], lines: Lines) -> R:
    obj = cls(**{"common": common, **values})
    check = getattr(obj, "check", None)
    if check is not None:
        try:
            check()
        except ValueError as exc:
            where = lines.at(raw, exc.key) if isinstance(exc, ParamError) and exc.key in raw else lines.at(raw)
            raise ConfigError(f"rule '{common.id}': {exc}", where) from None
    return obj


def build(cls: type[R], raw: dict[str, Any], common: Common, lines: Lines) -> R:
    """An instance of rule class `cls` (a dataclass) from its YAML mapping (common keys already parsed)."""
    values, errors = _params(cls, raw, common.id, common.type, lines)
    if errors:
        raise RuleErrors(errors)
    return _construct(cls, values, common, raw, lines)


def _samples(raw: object, rule_id: str, lines: Lines, where: Location) -> tuple[EventSample, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError(f"rule '{rule_id}': 'samples' must be a list", where)
    out: list[EventSample] = []
    for item in raw:
        at = lines.at(item)
        if not isinstance(item, dict) or item.get("expect") not in ("none", "warning", "critical") \
                or not isinstance(item.get("events"), list):
            raise ConfigError(f"rule '{rule_id}': a sample has 'name', 'expect' (none, warning, critical) and "
                              "'events'", at)
        out.append(EventSample(str(item.get("name") or f"sample-{len(out) + 1}"), item["expect"],
                               tuple(item["events"]), at))
    return tuple(out)


def _common(raw: dict[str, Any], lines: Lines, types_known: Iterable[str]) -> tuple[Common | None,
                                                                                     list[ConfigError]]:
    """The keys every rule has, or None, and every mistake among them (each with its line)."""
    at = lines.at(raw)
    errors: list[ConfigError] = []
    rid = raw.get("id")

    def bad(reason: str, key: str | None = None, prefix: bool = True) -> None:
        where = lines.at(raw, key) if key is not None and key in raw else at
        errors.append(ConfigError(f"rule '{rid}': {reason}" if prefix else reason, where))

    if not isinstance(rid, str) or not _ID.match(rid):
        bad("every rule needs an 'id' (lower-case letters, digits, '-', '_', '.')", "id", prefix=False)
    rtype = raw.get("type")
    known = sorted(set(types_known))
    if not isinstance(rtype, str) or rtype not in known:
        bad(f"unknown type '{rtype}' ({_hint(rtype, known)})", "type")
    source = raw.get("source", "sip_events")
    if source not in SOURCES:
        bad(f"'source' must be one of {', '.join(SOURCES)}{_did_you_mean(source, SOURCES)}", "source")
        source = None
    columns = columns_of(source) if source is not None else None
    where = raw.get("where") or {}
    if not isinstance(where, dict):
        bad("'where' must map fields to conditions", "where")
    elif columns is not None:
        for reason, place in where_problems(where, source, columns, lines):
            errors.append(ConfigError(f"rule '{rid}': {reason}", place))
    key = raw.get("key") or []
    key = [key] if isinstance(key, str) else key
    key_ok = isinstance(key, list) and all(isinstance(k, str) for k in key)
    if not key_ok:
        bad("'key' must be a field name or a list of them", "key")
    elif columns is not None:
        for k in key:
            if k not in columns:
                bad(f"unknown field '{k}' in 'key' for source {source}{field_suggestion(k, columns)}", "key")
    window = cooldown = Duration(60)
    try:
        window = parse_duration(raw.get("window", "60s"))
    except ValueError as exc:
        bad(f"'window' {exc}", "window")
    try:
        cooldown = parse_duration(raw["cooldown"]) if "cooldown" in raw else window
    except ValueError as exc:
        bad(f"'cooldown' {exc}", "cooldown")
    levels: dict[str, float | None] = {}
    for level in ("warning", "critical"):
        v = raw.get(level)
        if v is not None and (not isinstance(v, int | float) or isinstance(v, bool)):
            bad(f"'{level}' must be a number", level)
            v = None
        levels[level] = None if v is None else float(v)
    warning, critical = levels["warning"], levels["critical"]
    if warning is None and critical is None and not any(level in raw for level in levels):
        bad("give 'warning' and/or 'critical' levels")
    if warning is not None and critical is not None and critical < warning:
        bad("'critical' is below 'warning'", "critical")
    action = raw.get("action", "alert")
    if action not in ACTIONS:
        bad(f"'action' must be one of {', '.join(ACTIONS)}{_did_you_mean(action, ACTIONS)}", "action")
    act_on = raw.get("act_on", "critical" if critical is not None else "warning")
    if act_on not in ("warning", "critical") or (act_on == "critical" and critical is None and "critical" not in raw):
        bad("'act_on' must be warning or critical (and the rule must have that level)", "act_on")
    tags = raw.get("tags") or []
    group = raw.get("group")
    if group is not None and (not isinstance(group, int) or isinstance(group, bool) or group < 2):
        bad("'group' is a number of keys (2 or more)", "group")
    samples: tuple[EventSample, ...] = ()
    try:
        samples = _samples(raw.get("samples"), str(rid), lines, lines.at(raw, "samples"))
    except ConfigError as exc:
        errors.append(exc)
    if not (isinstance(rid, str) and _ID.match(rid) and isinstance(rtype, str) and rtype in known and source
            and isinstance(where, dict) and key_ok):
        return None, errors
    # with mistakes in the other keys, a stand-in (their defaults) that lets the type's parameters be checked too
    return Common(
        id=rid, type=rtype, description=str(raw.get("description") or ""), source=source, where=where,
        key=tuple(key), window=window, warning=warning, critical=critical, action=action,
        act_on=act_on, cooldown=cooldown, report_only=bool(raw.get("report_only", False)),
        tags=tuple(str(t) for t in (tags if isinstance(tags, list) else [tags])), group=group,
        samples=samples, path=lines.path, line=lines.of_node.get(id(raw)),
    ), errors


def _did_you_mean(value: object, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(value), list(known), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _hint(value: object, known: Iterable[str]) -> str:
    names = list(known)
    close = difflib.get_close_matches(str(value), names, n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else f"known: {', '.join(names)}"


@dataclass
class RuleFileResult(Generic[R]):
    rules: list[R] = field(default_factory=list)
    errors: list[ConfigError] = field(default_factory=list)
    disabled: list[str] = field(default_factory=list)  # ids given `enabled: false`: rules loaded earlier are dropped


def _disabled(raw: dict[str, Any], lines: Lines) -> str | None:
    """The rule's id when the mapping turns a rule off (`enabled: false`, nothing else needed); None when it is
    a rule to load."""
    if "enabled" not in raw:
        return None
    enabled = raw["enabled"]
    rid = raw.get("id")
    if not isinstance(enabled, bool):
        raise ConfigError(f"rule '{rid}': 'enabled' must be true or false", lines.at(raw, "enabled"))
    if enabled:
        return None
    if not isinstance(rid, str) or not _ID.match(rid):
        raise ConfigError("a rule with 'enabled: false' needs the 'id' of the rule it turns off", lines.at(raw))
    return rid


def load_rule_file(path: Path, registry: Mapping[str, type[R]], collect: bool = False) -> RuleFileResult[R]:
    """Rules of one file (a mapping with `rules:`, or a single rule). With `collect`, errors are gathered."""
    result: RuleFileResult[R] = RuleFileResult()
    try:
        doc, lines = load_with_lines(path)
    except ConfigError as exc:
        if not collect:
            raise
        result.errors.append(exc)
        return result
    items = doc.get("rules") if isinstance(doc, dict) and "rules" in doc else doc if isinstance(doc, list) else [doc]
    if not isinstance(items, list):
        err = ConfigError("'rules' must be a list of rules", Location(path, 1))
        if not collect:
            raise err
        result.errors.append(err)
        return result
    for raw in items:
        try:
            if not isinstance(raw, dict):
                raise ConfigError("a rule is a mapping", Location(path, lines.of_node.get(id(raw))))
            off = _disabled(raw, lines)
            if off is not None:
                result.disabled.append(off)
                continue
            result.rules.append(_rule(raw, lines, registry))
        except ConfigError as exc:
            if not collect:
                raise
            result.errors.extend(exc.errors if isinstance(exc, RuleErrors) else [exc])
    return result


def _rule(raw: dict[str, Any], lines: Lines, registry: Mapping[str, type[R]]) -> R:
    """One rule from its mapping; every mistake in its common keys and its type's parameters raised together."""
    common, errors = _common(raw, lines, registry)
    rtype = raw.get("type")
    values: dict[str, Any] = {}
    own: list[ConfigError] = []
    if isinstance(rtype, str) and rtype in registry:
        values, own = _params(registry[rtype], raw, str(raw.get("id")), rtype, lines)
        errors += own
    if common is not None and not own:
        try:
            provisional = registry[common.type](**{"common": common, **values})
        except (TypeError, ValueError):
            pass  # its own check (`_construct`) says what is wrong once the rest is right
        else:
            errors += _field_problems(provisional, raw, lines)
    if errors or common is None:
        raise RuleErrors(errors)
    return _construct(registry[common.type], values, common, raw, lines)


def _field_problems(rule: Any, raw: dict[str, Any], lines: Lines) -> list[ConfigError]:
    """The columns a rule type's own parameters name (`field:`, `terms:`: its `fields()`) that its source lacks,
    each at the line of the parameter that names it."""
    common: Common = rule.common  # a rule type (`fraudwatch.detect.types.base.RuleType`: this module is below it)
    columns = columns_of(common.source)
    errors = []
    for name in rule.fields():
        if name in columns:
            continue
        param = next((k for k, v in raw.items() if k not in COMMON_KEYS and (v == name or (isinstance(v, list) and
                                                                            name in v))), None)
        errors.append(ConfigError(f"rule '{common.id}': unknown field '{name}' for source {common.source}"
                                  f"{field_suggestion(name, columns)}", lines.at(raw, param)))
    return errors
