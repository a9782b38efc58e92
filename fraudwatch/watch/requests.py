"""The shape of each control-socket request's arguments, checked before anything runs.

A client of the socket is normally `fraudwatch` itself, but anything that can connect can send any JSON: each
operation's arguments are checked here for their names and types (and the few generic bounds: text length, a
listing's limit), so that a bad request gets a clear error instead of a traceback deep in the operation. Ranges
that mean something to an operation (a ban's ttl) are that operation's to check. The names are written out
here, not imported, so that the CLI's side of the socket stays light; a test keeps this table and the watcher's
table of operations (`fraudwatch.watch.ops`) in step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from fraudwatch.errors import UsageError

MAX_TEXT = 4096  # characters in any text argument but a query's SQL (the request line itself is capped at 1 MiB)
MAX_LIMIT = 1_000_000
MAX_PARAMS = 1000


@dataclass(frozen=True)
class Arg:
    kind: str  # "text", "sql", "bool", "count" (an integer >= 0), "number", "params"
    required: bool = False


SHAPES: dict[str, dict[str, Arg]] = {
    "ping": {},
    "status": {},
    "query": {"sql": Arg("sql", required=True), "params": Arg("params")},
    "bans.list": {"all": Arg("bool"), "limit": Arg("count")},
    "bans.add": {"target": Arg("text", required=True), "reason": Arg("text"), "ttl": Arg("number")},
    "bans.remove": {"target": Arg("text", required=True)},
    "bans.flush": {},
    "bans.sync": {},
    "alerts.silence": {"key": Arg("text", required=True), "until": Arg("text", required=True), "rule": Arg("text"),
                       "reason": Arg("text"), "by": Arg("text")},
    "alerts.unsilence": {"target": Arg("text", required=True)},
    "alerts.outbox-retry": {},
}


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check(op: str, name: str, arg: Arg, value: object) -> None:
    where = f"{op}: argument '{name}'"
    if arg.kind in ("text", "sql"):
        if not isinstance(value, str):
            raise UsageError(f"{where} must be a string, not {_json_type(value)}")
        if arg.kind == "text" and len(value) > MAX_TEXT:
            raise UsageError(f"{where} is longer than {MAX_TEXT} characters")
    elif arg.kind == "bool":
        if not isinstance(value, bool):
            raise UsageError(f"{where} must be true or false, not {_json_type(value)}")
    elif arg.kind == "count":
        if not isinstance(value, int) or isinstance(value, bool):
            raise UsageError(f"{where} must be an integer, not {_json_type(value)}")
        if not 0 <= value <= MAX_LIMIT:
            raise UsageError(f"{where} must be between 0 and {MAX_LIMIT}")
    elif arg.kind == "number":
        if not (_is_int(value) or isinstance(value, float)):
            raise UsageError(f"{where} must be a number, not {_json_type(value)}")
        if isinstance(value, float) and not math.isfinite(value):  # Python's json reads NaN and Infinity
            raise UsageError(f"{where} must be a finite number")
    elif arg.kind == "params":
        if not isinstance(value, list):
            raise UsageError(f"{where} must be a list, not {_json_type(value)}")
        if len(value) > MAX_PARAMS:
            raise UsageError(f"{where} holds more than {MAX_PARAMS} values")
        if not all(v is None or isinstance(v, str | int | float | bool) for v in value):
            raise UsageError(f"{where} must hold only strings, numbers, booleans or null")


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list",
            dict: "an object"}.get(type(value), type(value).__name__)


def validate(op: object, args: object) -> tuple[str, dict[str, Any]]:
    """The request's operation name and arguments, checked; UsageError (one line) when anything is off.

    A missing or null optional argument is left out, so that each operation sees only what it was given."""
    if not isinstance(op, str) or not op:
        raise UsageError("a request is a JSON object with 'op' (a string) and 'args' (an object)")
    shape = SHAPES.get(op)
    if shape is None:
        raise UsageError(f"the watcher does not know the operation '{op[:64]}'")
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise UsageError(f"{op}: 'args' must be an object, not {_json_type(args)}")
    unknown = sorted(str(k)[:64] for k in args if k not in shape)
    if unknown:
        raise UsageError(f"{op}: unknown argument(s) {', '.join(unknown)} (known: {', '.join(shape) or 'none'})")
    checked: dict[str, Any] = {}
    for name, arg in shape.items():
        value = args.get(name)
        if value is None:
            if arg.required:
                raise UsageError(f"{op}: argument '{name}' is required")
            continue
        _check(op, name, arg, value)
        checked[name] = value
    return op, checked
