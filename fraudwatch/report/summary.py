"""`fraudwatch summary`: what is in the store, at a glance — the first screen an operator reads after ingest.

Plain read-only queries over the canonical tables; no detection here (that is the rule engine's job), only the
numbers a NOC engineer looks at first: volumes, the noisiest failing sources, scanners' user-agents, spend.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

# Each section: (title, SQL). Queries only read; their text is fixed (no user input reaches it).
SECTIONS: tuple[tuple[str, str], ...] = (
    ("tables", """
        SELECT 'sip_events' AS "table", count(*) AS rows, min(ts) AS first, max(ts) AS last FROM sip_events
        UNION ALL SELECT 'netfilter_events', count(*), min(ts), max(ts) FROM netfilter_events
        UNION ALL SELECT 'cdrs', count(*), min(start_time), max(stop_time) FROM cdrs
        UNION ALL SELECT 'customers', count(*), NULL, NULL FROM customers
        UNION ALL SELECT 'rejects', count(*), NULL, NULL FROM rejects"""),
    ("SIP events by type", """
        SELECT service, event, count(*) AS events, count(DISTINCT src_ip) AS source_ips
        FROM sip_events GROUP BY ALL ORDER BY events DESC LIMIT 12"""),
    ("sources with the most authentication failures (401/403 sent, failed auth)", """
        SELECT src_ip, count(*) AS failures, count(DISTINCT username) AS usernames,
               min(ts) AS first, max(ts) AS last
        FROM sip_events
        WHERE (event = 'response' AND status IN (401, 403, 407)) OR event IN ('auth_failure', 'invalid_user')
        GROUP BY src_ip ORDER BY failures DESC LIMIT 10"""),
    ("user-agents seen in requests", """
        SELECT user_agent, count(*) AS requests, count(DISTINCT src_ip) AS source_ips
        FROM sip_events WHERE event = 'request' AND user_agent IS NOT NULL
        GROUP BY user_agent ORDER BY requests DESC LIMIT 8"""),
    ("kernel firewall log: top sources", """
        SELECT src_ip, prefix, count(*) AS packets, count(DISTINCT dst_port) AS ports
        FROM netfilter_events GROUP BY ALL ORDER BY packets DESC LIMIT 8"""),
    ("CDRs: spend by account (answered calls)", """
        SELECT customer_account, count(*) AS calls, sum(hold_seconds) / 60 AS minutes, sum(fee) AS fee,
               count(DISTINCT callee_e164) AS destinations
        FROM cdrs WHERE hold_seconds > 0 GROUP BY ALL ORDER BY fee DESC LIMIT 10"""),
    ("rejected input by reason", """
        SELECT format, reason, count(*) AS lines FROM rejects GROUP BY ALL ORDER BY lines DESC LIMIT 10"""),
)


@dataclass(frozen=True)
class Section:
    title: str
    columns: list[str]
    rows: list[tuple[object, ...]]


def summarize(con: duckdb.DuckDBPyConnection) -> list[Section]:
    out = []
    for title, sql in SECTIONS:
        cur = con.execute(sql)
        out.append(Section(title, [d[0] for d in cur.description], cur.fetchall()))
    return out
