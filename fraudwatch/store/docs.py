"""docs/schema.md is generated from the schema's own docstrings, so the data model is written once.

    .venv/bin/python -m fraudwatch.store.docs > docs/schema.md     (a test fails when it is stale)
"""

from __future__ import annotations

from fraudwatch.store.schema import SCHEMA_VERSION, TABLES


def render_markdown() -> str:
    out = [f"# The fraudwatch store (schema version {SCHEMA_VERSION})", "",
           "Generated from `fraudwatch/store/schema.py` by `python -m fraudwatch.store.docs`; do not edit.", "",
           "Times are TIMESTAMPTZ (UTC instants). IPs are text in canonical form (`ipaddress` compressed form; "
           "IPv4-mapped IPv6 folded to IPv4). Money is DECIMAL(18,4) in the switch's billing currency, as VOS3000 "
           "stores it. Durations are whole seconds unless the column name says `_ms`. Attacker-controlled text "
           "(user-agents, usernames, numbers) is stored verbatim, as data.", ""]
    for t in TABLES.values():
        out += [f"## `{t.name}`", "", t.doc, "", "| column | type | meaning |", "|---|---|---|"]
        out += [f"| `{c.name}` | {c.type} | {c.doc.replace('|', '/')} |" for c in t.columns]
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(render_markdown(), end="")
