"""The columns rules can read, by source: the stored ones and those enrichment derives (`fraudwatch.detect.enrich`).

A leaf of the rule language: the `where:` compiler (`filters`), enrichment and the rule types all ask it, so none
of them imports another for these names.
"""

from __future__ import annotations

from fraudwatch.store.schema import TABLES

ENRICHED = {
    "sip_events": ("trusted_ip", "trusted_source", "src_country", "challenge_repeat"),
    "netfilter_events": ("trusted_ip", "trusted_source", "src_country"),
    "cdrs": ("ts", "trusted_ip", "trusted_source", "src_country", "answered", "callee_number", "callee_country",
             "callee_class"),
    "rejects": (),  # lines that could not be used: their file, reason and time (rules/input.yaml)
}
ENRICHED_TYPES = {"ts": "TIMESTAMPTZ", "trusted_ip": "BOOLEAN", "trusted_source": "VARCHAR", "src_country": "VARCHAR",
                  "challenge_repeat": "BOOLEAN",
                  "answered": "BOOLEAN", "callee_number": "VARCHAR", "callee_country": "VARCHAR",
                  "callee_class": "VARCHAR"}
# what enrichment reads (and evidence points back with base.EVIDENCE_COLUMNS)
ENRICH_INPUTS = {"sip_events": ("ts", "event", "status", "call_id", "src_ip"), "netfilter_events": ("ts", "src_ip"),
                 "cdrs": ("stop_time", "hold_seconds", "callee_e164", "caller_ip"), "rejects": ("ts",)}


def columns_of(source: str) -> set[str]:
    """Every column a rule of `source` may name: stored, enriched, and the event time."""
    return set(TABLES[source].names) | set(ENRICHED[source]) | {"ts"}
