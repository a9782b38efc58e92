"""The values a rule's `where:` may compare a column with, where the schema fixes them: `fraudwatch lint` turns
`event: requets` (a rule that would then match nothing, silently) into an error with a suggestion.

Only columns whose values are a closed set written by fraudwatch itself are listed: the canonical event names the
formats produce (`fraudwatch.store.schema`, the `event` column), the SIP methods of the IANA registry (an
upper-case token close to none of them passes: a peer may send an extension method), the status code range of
RFC 3261, the directions and transports the formats write, netfilter actions, the end-direction
codes, and the number types enrichment derives (libphonenumber's). Free text (users, agents, reasons) is never
checked. The test suite checks that every value a shipped format writes is listed here, so the list cannot fall
behind the formats.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

from phonenumbers import PhoneNumberType

SIP_EVENTS = ("request", "response", "reg_online", "reg_offline", "auth_failure", "auth_challenge", "auth_suspend",
              "invalid_user", "acl_reject", "call_start", "call_end", "service")
# IANA "Session Initiation Protocol (SIP) Parameters", Methods and Response Codes: RFC 3261 (INVITE, ACK, BYE,
# CANCEL, OPTIONS, REGISTER), 3262 (PRACK), 6665 (SUBSCRIBE, NOTIFY), 3903 (PUBLISH), 6086 (INFO), 3515 (REFER),
# 3428 (MESSAGE), 3311 (UPDATE); and IAX2's registration request (RFC 5456, REGREQ), which the asterisk format writes
# for chan_iax2's lines
SIP_METHODS = ("ACK", "BYE", "CANCEL", "INFO", "INVITE", "MESSAGE", "NOTIFY", "OPTIONS", "PRACK", "PUBLISH", "REFER",
               "REGISTER", "SUBSCRIBE", "UPDATE", "REGREQ")
SIP_STATUS = (100, 699)  # RFC 3261 section 7.2: three digits, the first 1 to 6
NUMBER_TYPES = tuple(sorted(n.lower() for n in dir(PhoneNumberType) if n.isupper()))  # as enrichment names them
_COUNTRY = re.compile(r"^(?:[A-Z]{2}|\+[0-9]{1,3})$")  # ISO 3166-1 alpha-2, or +code for non-geographic numbers

# (source, column) -> the values it can hold
VALUES: dict[tuple[str, str], tuple[object, ...]] = {
    ("sip_events", "event"): SIP_EVENTS,
    ("sip_events", "method"): SIP_METHODS,
    ("sip_events", "direction"): ("in", "out"),
    ("sip_events", "transport"): ("UDP", "TCP", "TLS", "SCTP", "WS", "WSS"),
    ("sip_events", "end_direction"): (0, 1, 2),
    ("cdrs", "end_direction"): (0, 1, 2),
    ("cdrs", "callee_class"): NUMBER_TYPES,
    ("netfilter_events", "action"): ("DROP", "REJECT", "ACCEPT", "LOG"),
}
COUNTRY_COLUMNS = ("src_country", "callee_country")


def _suggest(value: object, known: Iterable[object]) -> str:
    names = [str(k) for k in known]
    text = str(value)
    same_case = [n for n in names if n.lower() == text.lower()]
    close = same_case or difflib.get_close_matches(text, names, n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else f"known: {', '.join(names)}"


def value_problem(source: str, column: str, value: object) -> str | None:
    """Why `value` can never be in `column` of `source` (None when it can, or when the column is free)."""
    if value is None:
        return None
    if column == "status" and source == "sip_events":
        low, high = SIP_STATUS
        if isinstance(value, int) and not isinstance(value, bool) and not low <= value <= high:
            return f"'status' {value} is not a SIP status code ({low} to {high})"
        return None
    if column in COUNTRY_COLUMNS:
        if isinstance(value, str) and not _COUNTRY.match(value):
            hint = f" (did you mean '{value.upper()}'?)" if _COUNTRY.match(value.upper()) else ""
            return f"'{column}' {value!r} is not a country code (two capital letters: GB, US){hint}"
        return None
    known = VALUES.get((source, column))
    if known is None or value in known:
        return None
    if column == "method" and _extension_method(value, known):
        return None
    return f"'{column}' has no value {value!r} ({_suggest(value, known)})"


def _extension_method(value: object, known: Iterable[object]) -> bool:
    """An upper-case token close to no registered method: a SIP extension method (RFC 3261 allows any token, and
    a peer may send one), not a typo of a known one."""
    text = str(value)
    names = [str(k) for k in known]
    return text.isupper() and text.isalpha() and not difflib.get_close_matches(text, names, n=1, cutoff=0.6)


def field_suggestion(name: str, columns: Iterable[str]) -> str:
    """' (did you mean ...?)' for a field name that is not a column, or '' when none is close."""
    close = difflib.get_close_matches(name, sorted(columns), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
