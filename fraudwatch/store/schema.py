"""The store's schema: tables, their columns and what each column means, and the migrations between versions.

The column lists here are the canonical fields a format may produce (a format's named groups must be columns of
its table), and `docs/` of the README is generated from the same docs strings, so the schema is written once.

Conventions: event times are TIMESTAMPTZ (UTC instants); IPs are VARCHAR in canonical form (`ipaddress`'s
compressed form, IPv4-mapped IPv6 folded to IPv4); money is DECIMAL(18,4) in the switch's billing currency, the
unit VOS3000 stores in e_cdr.fee and e_customer.money; durations are whole seconds unless the name says `_ms`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    doc: str


@dataclass(frozen=True)
class Table:
    name: str
    doc: str
    columns: tuple[Column, ...]

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


C = Column

# Columns every parsed-line table carries, written by the ingest engine itself (not by a format's groups).
_LINE_PROVENANCE = (
    C("id", "BIGINT", "row id, unique within the table, increasing in ingest order"),
    C("ts", "TIMESTAMPTZ", "event time from the line"),
    C("source", "VARCHAR", "path of the file the line came from"),
    C("line_no", "BIGINT", "1-based line number in that file"),
    C("byte_offset", "BIGINT", "byte offset of the line's first byte in that file (uncompressed)"),
    C("format", "VARCHAR", "format name that parsed the line"),
    C("pattern", "VARCHAR", "pattern name within the format"),
)

# Appended last (schema version 7): a column added later goes at the end, where the segments written before it
# get it too (`fraudwatch.store.evolve`).
_REPAIRED = C("repaired", "BOOLEAN",
              "the line held bytes that are not text (invalid UTF-8, NUL), each stored as U+FFFD: the row is "
              "kept (an attacker chooses those bytes), and this says its text fields are not verbatim")

SIP_EVENTS = Table(
    "sip_events",
    "One row per SIP-level event from any switch log (VOS3000 sipproxy/mbx, Asterisk, FreeSWITCH).",
    (
        *_LINE_PROVENANCE,
        C("service", "VARCHAR", "what wrote the line: vos3000, asterisk, freeswitch"),
        C("host", "VARCHAR", "syslog host name, when the line has one"),
        C("level", "VARCHAR", "log level as written (INFO, WARN, NOTICE, ...)"),
        C("event", "VARCHAR",
          "canonical event: request, response, reg_online, reg_offline, auth_failure, auth_challenge, "
          "auth_suspend, invalid_user, acl_reject, call_start, call_end, service (the switch's own start/stop: "
          "`detail` says which)"),
        C("direction", "VARCHAR", "in: received from the peer; out: sent by the switch to the peer"),
        C("method", "VARCHAR", "SIP method (REGISTER, INVITE, OPTIONS, ...; for responses the CSeq method)"),
        C("status", "SMALLINT", "SIP status code of a response"),
        C("reason", "VARCHAR", "SIP reason phrase of a response"),
        C("src_ip", "VARCHAR", "the remote peer's IP, from the transport (never from a SIP header)"),
        C("src_port", "INTEGER", "the remote peer's port"),
        C("dst_ip", "VARCHAR", "the switch's local IP, when logged"),
        C("dst_port", "INTEGER", "the switch's local port, when logged"),
        C("transport", "VARCHAR", "UDP, TCP, TLS, WS, WSS when logged"),
        C("username", "VARCHAR", "SIP user / auth name / e164 the peer presented (attacker-controlled text)"),
        C("account", "VARCHAR", "billing account (VOS3000 customer account) when logged"),
        C("user_agent", "VARCHAR", "User-Agent header (attacker-controlled text)"),
        C("caller", "VARCHAR", "calling number"),
        C("callee", "VARCHAR", "called number"),
        C("call_id", "VARCHAR", "SIP Call-ID or the switch's session id"),
        C("gateway", "VARCHAR", "VOS3000 mapping gateway name"),
        C("expires", "INTEGER", "registration expiry in seconds"),
        C("duration", "INTEGER", "seconds: talk time of an ended call, or a suspension's length"),
        C("end_reason", "INTEGER", "VOS3000 raw endreason code of an ended call"),
        C("end_direction", "SMALLINT", "who ended the call: 0 caller, 1 callee, 2 server"),
        C("detail", "VARCHAR", "free text the line gives as the reason (e.g. 'password error')"),
        _REPAIRED,
    ),
)

NETFILTER_EVENTS = Table(
    "netfilter_events",
    "One row per kernel netfilter LOG line (iptables/nftables `LOG` target) from kern.log, messages or journal.",
    (
        *_LINE_PROVENANCE,
        C("host", "VARCHAR", "syslog host name"),
        C("prefix", "VARCHAR", "the rule's --log-prefix, trimmed (e.g. SIP-DROP, [UFW BLOCK])"),
        C("action", "VARCHAR", "DROP, REJECT, ACCEPT or LOG, as guessed from the prefix (LOG when it says nothing)"),
        C("in_iface", "VARCHAR", "IN= interface"),
        C("out_iface", "VARCHAR", "OUT= interface (empty for inbound traffic)"),
        C("src_ip", "VARCHAR", "SRC= address"),
        C("dst_ip", "VARCHAR", "DST= address"),
        C("proto", "VARCHAR", "PROTO= (TCP, UDP, ICMP, ICMPv6, or a number)"),
        C("src_port", "INTEGER", "SPT="),
        C("dst_port", "INTEGER", "DPT="),
        C("length", "INTEGER", "LEN= of the IP packet"),
        C("ttl", "SMALLINT", "TTL= (IPv4) or HOPLIMIT= (IPv6)"),
        C("tcp_flags", "VARCHAR", "TCP flags present (SYN, ACK, ...), space-separated"),
        _REPAIRED,
    ),
)

CDRS = Table(
    "cdrs",
    "Call detail records, one per call attempt, from VOS3000 e_cdr exports (CSV) or its MySQL tables.",
    (
        C("flowno", "BIGINT", "VOS3000's unique CDR id (e_cdr.flowno)"),
        C("start_time", "TIMESTAMPTZ", "call start (e_cdr.starttime, epoch ms UTC)"),
        C("stop_time", "TIMESTAMPTZ", "call end (e_cdr.stoptime)"),
        C("hold_seconds", "INTEGER", "talk time in seconds (e_cdr.holdtime); 0 for unanswered calls"),
        C("fee_seconds", "INTEGER", "billed seconds (e_cdr.feetime)"),
        C("fee", "DECIMAL(18,4)", "amount charged to the account, billing currency (e_cdr.fee)"),
        C("customer_account", "VARCHAR", "billed account (e_cdr.customeraccount)"),
        C("customer_name", "VARCHAR", "account name (e_cdr.customername)"),
        C("caller_e164", "VARCHAR", "caller number used for billing (e_cdr.callere164)"),
        C("callee_e164", "VARCHAR", "callee number used for billing (e_cdr.calleee164)"),
        C("caller_access_e164", "VARCHAR", "caller number as received (e_cdr.calleraccesse164)"),
        C("callee_access_e164", "VARCHAR", "callee number as received (e_cdr.calleeaccesse164)"),
        C("caller_to_gateway_e164", "VARCHAR", "caller number sent out (e_cdr.callertogatewaye164)"),
        C("callee_to_gateway_e164", "VARCHAR", "callee number sent out (e_cdr.calleetogatewaye164)"),
        C("caller_ip", "VARCHAR", "caller signalling IP (e_cdr.callerip)"),
        C("callee_ip", "VARCHAR", "callee signalling IP (e_cdr.calleeip)"),
        C("caller_gateway", "VARCHAR", "mapping gateway, the customer side (e_cdr.callergatewayid)"),
        C("callee_gateway", "VARCHAR", "routing gateway, the vendor side (e_cdr.calleegatewayid)"),
        C("fee_prefix", "VARCHAR", "billing/area prefix (e_cdr.callerareacode)"),
        C("call_level", "SMALLINT", "1 on-net, 2 local, 4 national, 5 international (e_cdr.calllevel)"),
        C("end_direction", "SMALLINT", "0 caller, 1 callee, 2 server (e_cdr.enddirection)"),
        C("end_reason", "INTEGER", "raw termination code (e_cdr.endreason); meanings are switch-specific"),
        C("agent_account", "VARCHAR", "reseller account (e_cdr.agentaccount)"),
        C("agent_fee", "DECIMAL(18,4)", "reseller cost (e_cdr.agentfee)"),
        C("caller_call_id", "VARCHAR", "caller-side SIP Call-ID (e_cdr.callercallid)"),
        C("callee_call_id", "VARCHAR", "callee-side SIP Call-ID (e_cdr.calleecallid)"),
        C("caller_pdd_ms", "INTEGER", "post-dial delay, ms (e_cdr.callerpdd)"),
        C("callee_pdd_ms", "INTEGER", "connect delay, ms (e_cdr.calleepdd)"),
        C("source", "VARCHAR", "file (or MySQL table) the row came from"),
        C("line_no", "BIGINT", "1-based line number in that file (header is line 1)"),
    ),
)

CUSTOMERS = Table(
    "customers",
    "VOS3000 accounts with balance and credit limit (e_customer / GetAllCustomers); one row per account, "
    "replaced on every load.",
    (
        C("account", "VARCHAR", "account number (e_customer.account)"),
        C("name", "VARCHAR", "account name"),
        C("money", "DECIMAL(18,4)", "balance, billing currency (e_customer.money)"),
        C("limit_money", "DECIMAL(18,4)",
          "credit (overdraft) limit, billing currency (e_customer.limitmoney); spend may reach money + limit"),
        C("lock_type", "SMALLINT", "0 unlocked, 1 locked, when known"),
        C("updated_at", "TIMESTAMPTZ", "when fraudwatch loaded this row"),
        C("source", "VARCHAR", "file the row came from"),
    ),
)

REJECTS = Table(
    "rejects",
    "Every input line fraudwatch could not use, kept with where it was and why. Nothing is dropped silently.",
    (
        C("id", "BIGINT", "row id"),
        C("ingested_at", "TIMESTAMPTZ", "when it was rejected"),
        C("source", "VARCHAR", "file path"),
        C("line_no", "BIGINT", "1-based line number"),
        C("byte_offset", "BIGINT", "byte offset of the line in the (uncompressed) file"),
        C("format", "VARCHAR", "format the file was read with"),
        C("reason", "VARCHAR", "why: no pattern matched, line too long, bad <field>, wrong number of fields ..."),
        C("raw", "VARCHAR", "the line as text (invalid bytes as \\xNN), cut to [ingest] max_raw_bytes"),
        C("raw_bytes", "BIGINT", "the line's full length in bytes"),
        C("ts", "TIMESTAMPTZ", "when, as near as the file tells: the time of the last line before it that had one "
          "(in the same read), else when it was rejected; the reject-rate rules count rejects on it (schema 7)"),
    ),
)

POSITIONS = Table(
    "positions",
    "How far each input has been read. Committed in the same transaction as the rows it produced.",
    (
        C("fingerprint", "VARCHAR", "sha256 of the file's first fp_bytes bytes (uncompressed): its identity"),
        C("fp_bytes", "INTEGER", "how many leading bytes the fingerprint covers"),
        C("path", "VARCHAR", "last path the file was read under"),
        C("dev", "BIGINT", "device number when last read"),
        C("inode", "BIGINT", "inode when last read"),
        C("format", "VARCHAR", "format it was read with"),
        C("byte_offset", "BIGINT", "bytes consumed (uncompressed): the next read starts here"),
        C("line_no", "BIGINT", "lines consumed"),
        C("updated_at", "TIMESTAMPTZ", "when it last advanced"),
    ),
)

ALERTS = Table(
    "alerts",
    "What the rule engine found: one row per (rule, key) episode, updated while the attack goes on.",
    (
        C("id", "BIGINT", "alert id (`fraudwatch alerts show ID`)"),
        C("rule", "VARCHAR", "rule id"),
        C("severity", "VARCHAR", "warning or critical (only rises during an episode)"),
        C("key_type", "VARCHAR", "ip, account, prefix, number, key or global (switch-wide)"),
        C("key", "VARCHAR", "the IP, account, prefix ... the alert is about ('*' for global)"),
        C("first_seen", "TIMESTAMPTZ", "event time of the first event behind the alert"),
        C("last_seen", "TIMESTAMPTZ", "event time of the latest event behind the alert"),
        C("detected_at", "TIMESTAMPTZ", "event time at which the rule's level was first crossed"),
        C("count", "BIGINT", "matching events behind the alert"),
        C("value", "DOUBLE", "peak measured value (count, distinct, spend, ratio, z-score: see the rule)"),
        C("action", "VARCHAR", "proposed action: alert, ban_ip or lock_account (alert for trusted keys)"),
        C("trusted", "BOOLEAN", "the key is a trusted network or account: never banned or locked"),
        C("report_only", "BOOLEAN", "the rule is on trial: its action is not carried out"),
        C("description", "VARCHAR", "the rule's description"),
        C("evidence", "VARCHAR", "JSON: event ids, (source, line) pointers, rule-specific facts"),
        C("updates", "INTEGER", "how many times the alert was updated"),
        C("origin", "VARCHAR", "live (the watcher) or replay (`fraudwatch detect`)"),
        C("updated_at", "TIMESTAMPTZ", "wall-clock time of the last write"),
    ),
)

INCIDENTS = Table(
    "incidents",
    "Alerts of one attack, joined (fraudwatch.detect.incidents): one row per incident, updated while it goes on "
    "(`fraudwatch incidents list|show`).",
    (
        C("id", "VARCHAR", "incident id, derived from its founding alert: the same when the same data is replayed"),
        C("origin", "VARCHAR", "live (the watcher) or replay (`fraudwatch detect`, `ingest --detect`)"),
        C("kind", "VARCHAR", "attack (one source), fraud (one account), campaign (many keys of one rule family) or "
                             "switch (switch-wide)"),
        C("title", "VARCHAR", "one line for a person: what, who, which rules"),
        C("severity", "VARCHAR", "the highest severity of its alerts"),
        C("action", "VARCHAR", "the strongest action its alerts propose"),
        C("state", "VARCHAR", "open, or ended (quiet for its spell, or merged into an older incident)"),
        C("first_seen", "TIMESTAMPTZ", "event time of the first event behind any of its alerts"),
        C("last_seen", "TIMESTAMPTZ", "event time of the latest event behind any of its alerts"),
        C("opened_at", "TIMESTAMPTZ", "event time its first alert was detected"),
        C("ended_at", "TIMESTAMPTZ", "event time it ended (NULL while open)"),
        C("members", "INTEGER", "alerts in it"),
        C("count", "BIGINT", "events behind its alerts"),
        C("trusted", "BOOLEAN", "some alert is about a trusted network or account"),
        C("report_only", "BOOLEAN", "every alert's rule is on trial: nothing is carried out"),
        C("merged_into", "VARCHAR", "the older incident it was found to be part of (then ended)"),
        C("ips", "VARCHAR", "JSON list: the addresses it is about or tied to"),
        C("accounts", "VARCHAR", "JSON list: the accounts (SIP users, billing accounts) it is about or tied to"),
        C("rules", "VARCHAR", "JSON list: the rules of its alerts"),
        C("keys", "VARCHAR", "JSON list: 'key_type:key' of its alerts, in the order they joined"),
        C("updated_at", "TIMESTAMPTZ", "wall-clock time of the last write"),
    ),
)

INCIDENT_ALERTS = Table(
    "incident_alerts",
    "Which alerts make up which incident (an alert is in one incident of its origin).",
    (
        C("incident_id", "VARCHAR", "incident id"),
        C("origin", "VARCHAR", "live or replay, as the incident"),
        C("alert_id", "BIGINT", "alert id (`fraudwatch alerts show ID`)"),
    ),
)

NOTIFY_OUTBOX = Table(
    "notify_outbox",
    "Every notification, recorded before it is sent (`fraudwatch alerts outbox`); the dispatcher sends pending "
    "rows, retries a failing channel with backoff, and marks each row sent right after its channel accepted it.",
    (
        C("id", "BIGINT", "notification id, increasing"),
        C("created_at", "TIMESTAMPTZ", "when it was queued (wall clock)"),
        C("channel", "VARCHAR", "channel name from [[alerts.channels]]"),
        C("kind", "VARCHAR", "alert (first notice), update (severity rose or realert), digest, quiet (held "
                             "through quiet hours), test; per incident: incident-opened, incident-escalated, "
                             "incident-ended (its summary), incident-digest (a route's digest of incidents), "
                             "incident-quiet (incidents held through quiet hours)"),
        C("rule", "VARCHAR", "rule id ('*' for a digest of several rules); an incident's message: the incident id; "
                             "a digest of incidents: the route name ('*' for quiet hours)"),
        C("severity", "VARCHAR", "highest severity in the message"),
        C("alert_ids", "VARCHAR", "JSON list of the alert ids in the message (first 1,000)"),
        C("keys", "INTEGER", "how many (rule, key) alerts the message covers (an incident's message: its keys; a "
                             "digest of incidents: the incidents)"),
        C("title", "VARCHAR", "message title"),
        C("body", "VARCHAR", "message body, already rendered and escaped for the channel's markup"),
        C("body_format", "VARCHAR", "text, html or markdown (apprise body_format)"),
        C("status", "VARCHAR", "pending, sent or failed (gave up after [alerts] give_up_after)"),
        C("attempts", "INTEGER", "send attempts so far"),
        C("next_attempt_at", "TIMESTAMPTZ", "earliest time of the next attempt (backoff)"),
        C("last_error", "VARCHAR", "why the last attempt failed"),
        C("sent_at", "TIMESTAMPTZ", "when the channel accepted it"),
    ),
)

NOTIFY_STATE = Table(
    "notify_state",
    "Realert memory: per (rule, key), when it was last notified and at which severity; per open incident (rule "
    "'@incident'), what its last message said (fraudwatch.notify.store.Notice), deleted when it ends.",
    (
        C("rule", "VARCHAR", "rule id; '@incident' for an incident's row"),
        C("key", "VARCHAR", "the alert's key; an incident's row: the incident id"),
        C("severity", "VARCHAR", "severity last notified; an incident's row: 'SEVERITY ACTION' (critical ban_ip)"),
        C("notified_at", "TIMESTAMPTZ", "wall-clock time of the last notification"),
        C("alert_id", "BIGINT", "alert last notified; an incident's row: messages told about it, its summary not "
                                "counted (at most 2: the opening one and one escalation)"),
        C("suppressed", "BIGINT", "alerts and updates held back since then (realert interval); an incident's row: "
                                  "escalations since its last message not told on their own"),
    ),
)

NOTIFY_DIGEST = Table(
    "notify_digest",
    "Alerts waiting in an open digest (a route's `digest` window, or quiet hours); flushed into the outbox as one "
    "message per group when due.",
    (
        C("grp", "VARCHAR", "digest group: the rule id, or '*' for warnings held through quiet hours; incidents: "
                            "the route name, '*' (quiet hours), or the incident id (incident-hold)"),
        C("kind", "VARCHAR", "digest or quiet; incidents: incident-digest, incident-quiet, or incident-hold (an "
                             "escalation waiting until 2 minutes after the incident's last message, then sent as "
                             "one message with the incident as it is by then)"),
        C("channels", "VARCHAR", "JSON list of the channel names the digest goes to"),
        C("due_at", "TIMESTAMPTZ", "when the digest is sent"),
        C("alert_id", "BIGINT", "alert id; an incident's row: its founding alert's id (one row per incident: a "
                                "later message about it replaces the row)"),
        C("rule", "VARCHAR", "rule id; an incident's row: the incident id"),
        C("severity", "VARCHAR", "alert severity"),
        C("count", "BIGINT", "alert count (orders the digest's table)"),
        C("row", "VARCHAR", "JSON: the alert's facts for the digest table (key, who, count, value, times, done); "
                            "an incident's: its facts (fraudwatch.notify.incident_messages.incident_facts)"),
        C("added_at", "TIMESTAMPTZ", "when it joined the digest"),
    ),
)

SILENCES = Table(
    "silences",
    "Silences from `fraudwatch alerts silence`: matching alerts are recorded but not notified until `until`.",
    (
        C("id", "BIGINT", "silence id (`fraudwatch alerts unsilence ID`)"),
        C("key", "VARCHAR", "alert key, the first part of a composite key (the IP of 'ip|user'), or a CIDR network"),
        C("rule", "VARCHAR", "only this rule id (NULL: every rule)"),
        C("created_at", "TIMESTAMPTZ", "when it was created"),
        C("until", "TIMESTAMPTZ", "when it ends"),
        C("reason", "VARCHAR", "why (free text)"),
        C("created_by", "VARCHAR", "login name of who created it"),
        C("ended_at", "TIMESTAMPTZ", "when `unsilence` ended it early (NULL: runs until `until`)"),
    ),
)

BANS = Table(
    "bans",
    "Firewall bans (fraudwatch.enforce), active and history: a row is active while `removed_at` is NULL and "
    "`expires_at` is in the future; the kernel's sets are reconciled to the active rows.",
    (
        C("id", "BIGINT", "ban id, increasing"),
        C("network", "VARCHAR", "what is banned, canonical: an address (192.0.2.7) or a network (2001:db8:1:2::/64)"),
        C("family", "SMALLINT", "4 or 6"),
        C("prefixlen", "SMALLINT", "network prefix length (32 or 128 for a single address)"),
        C("source", "VARCHAR", "rule (an alert with action ban_ip), early (a ban_ip rule's level reached on the log's "
          "newest lines, before its alert: see docs/enforcement.md) or cli (`fraudwatch bans add`)"),
        C("rule", "VARCHAR", "rule id of the alert behind the ban (NULL for cli)"),
        C("alert_id", "BIGINT", "alert behind the ban (NULL for cli; for early, set when the alert comes)"),
        C("severity", "VARCHAR", "alert severity when banned (NULL for cli)"),
        C("reason", "VARCHAR", "why, for people: the alert's description or the --reason text"),
        C("level", "INTEGER", "escalation level: 1 + earlier bans of the same network within the escalation window"),
        C("created_at", "TIMESTAMPTZ", "when it was banned"),
        C("expires_at", "TIMESTAMPTZ", "when the ban ends (extended when a longer ban of the same network comes)"),
        C("removed_at", "TIMESTAMPTZ", "when it stopped being active (NULL: active until expires_at)"),
        C("removed_reason", "VARCHAR", "expired, cli (bans remove), flush (bans flush), superseded (a network ban "
                                       "covering it)"),
        C("backend", "VARCHAR", "firewall backend that applied it (nftables, ipset, iptables, dry-run)"),
    ),
)

SEGMENTS = Table(
    "segments",
    "The manifest of the event tables' Parquet segments (`<store>.segments/<table>/day=YYYY-MM-DD/<seq>.parquet`): "
    "a segment is listed here in the same transaction as the file positions it covers, and the event tables are "
    "views over the listed files and their `hot_` tables (see docs/architecture.md, *Storage*).",
    (
        C("seq", "BIGINT", "segment number, increasing; the file's name"),
        C("tbl", "VARCHAR", "event table: sip_events, netfilter_events, cdrs or rejects"),
        C("day", "DATE", "UTC day of the rows' time column (NULL: rows without a time)"),
        C("file", "VARCHAR", "path relative to the segments folder"),
        C("rows", "BIGINT", "rows in the file"),
        C("bytes", "BIGINT", "file size"),
        C("max_id", "BIGINT", "highest row id in the file (NULL for cdrs, which have none)"),
        C("min_time", "TIMESTAMPTZ", "earliest value of the time column"),
        C("max_time", "TIMESTAMPTZ", "latest value of the time column"),
        C("created_at", "TIMESTAMPTZ", "when it was written"),
    ),
)

SEGMENT_TRASH = Table(
    "segment_trash",
    "Segments a compaction replaced, deleted a grace period later (readers that listed them keep working).",
    (
        C("file", "VARCHAR", "path relative to the segments folder"),
        C("removed_at", "TIMESTAMPTZ", "when it left the manifest"),
    ),
)

NOTIFY_TABLES = (NOTIFY_OUTBOX, NOTIFY_STATE, NOTIFY_DIGEST, SILENCES)

TABLES: dict[str, Table] = {t.name: t for t in (SIP_EVENTS, NETFILTER_EVENTS, CDRS, CUSTOMERS, REJECTS, POSITIONS,
                                                ALERTS, *NOTIFY_TABLES, BANS, SEGMENTS, SEGMENT_TRASH, INCIDENTS,
                                                INCIDENT_ALERTS)}

# Tables formats may write into (their canonical fields are the table's columns).
EVENT_TABLES = ("sip_events", "netfilter_events")
# Arrow types of the column types that rows built outside DuckDB carry (bans, typed captures)
ARROW_TYPES = {"BIGINT": pa.int64(), "INTEGER": pa.int32(), "SMALLINT": pa.int16(), "VARCHAR": pa.string(),
               "TIMESTAMPTZ": pa.timestamp("us", tz="UTC"), "DECIMAL(18,4)": pa.decimal128(18, 4),
               "DOUBLE": pa.float64(), "BOOLEAN": pa.bool_(), "DATE": pa.date32()}


def arrow_schema(table: str) -> pa.Schema:
    """The Arrow schema of a table's rows, as its Parquet segments store them."""
    return pa.schema([(c.name, ARROW_TYPES[c.type]) for c in TABLES[table].columns])


def create_table_sql(table: Table) -> str:
    cols = ",\n  ".join(f'"{c.name}" {c.type}' for c in table.columns)
    return f"CREATE TABLE IF NOT EXISTS {table.name} (\n  {cols}\n)"


# Migrations: version -> statements that take the store from version-1 to version. Version 1 creates the
# tables (CREATE ... IF NOT EXISTS, from the definitions above). A later version that adds a column adds it to
# the Table above *and* appends `ALTER TABLE t ADD COLUMN IF NOT EXISTS ...` here, so a fresh store and a migrated
# one end up the same. Released versions are never edited.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    # No unique indexes: DuckDB's ART indexes reject a key deleted and re-inserted in one transaction, and
    # the writer keeps positions and customers unique itself.
    1: tuple(create_table_sql(t) for t in (SIP_EVENTS, NETFILTER_EVENTS, CDRS, CUSTOMERS, REJECTS, POSITIONS)),
    2: (create_table_sql(ALERTS),),
    4: (create_table_sql(BANS),),  # firewall bans (fraudwatch.enforce)
    5: tuple(create_table_sql(t) for t in NOTIFY_TABLES),  # alert notifications (fraudwatch.notify)
    # Event tables as Parquet segments (fraudwatch.store.segments): the tables become the hot tables of small
    # batches (an older store's rows among them, flushed into segments at the first open), and the event tables'
    # names become views, made at every open. A later column added to an event table is added to its hot table.
    6: (*(f"ALTER TABLE {t} RENAME TO hot_{t}" for t in ("sip_events", "netfilter_events", "cdrs", "rejects")),
        create_table_sql(SEGMENTS), create_table_sql(SEGMENT_TRASH)),
    # Lines with bytes that are not text are stored, repaired, instead of rejected (fraudwatch.sources.lines);
    # the segments written before get the column at the first open (fraudwatch.store.evolve).
    # Rejects get a time, so that rules can count them (rules/input.yaml).
    7: (*(f"ALTER TABLE hot_{t} ADD COLUMN IF NOT EXISTS repaired BOOLEAN" for t in ("sip_events", "netfilter_events")),
        "ALTER TABLE hot_rejects ADD COLUMN IF NOT EXISTS ts TIMESTAMPTZ"),
    # Incidents: the alerts of one attack, joined (fraudwatch.detect.incidents); older stores start with none
    # (`fraudwatch detect` makes them for what they hold).
    8: (create_table_sql(INCIDENTS), create_table_sql(INCIDENT_ALERTS)),
}

SCHEMA_VERSION = max(MIGRATIONS)
