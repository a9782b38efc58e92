"""What `ingest --detect` and its scoring process (`runners.alongside` and `runners.alongside_scoring`) share: the
setup the ingest sends, the result it gets back, and the sizes of the scoring's steps.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from fraudwatch.detect.runners.replay import STEP_ROWS
from fraudwatch.netaddr import IPNetwork

HELD_ROWS = 2_000_000  # rows held below no watermark (other files to come) before giving way to the replay: a
# bound on the scoring process's memory, and the replay after the ingest then takes over (figures:
# benchmarks/RESULTS.md, "Rows held for files to come")
# Rows a scoring step holds, about, by table. Every step scans again the rows the rules' windows keep: a flood
# keeps many, so small steps cost it more CPU. CDRs keep few, and smaller steps keep their scoring closer behind
# the ingest, with less left for after its last chunk, so CDRs with detection finish sooner in small steps
# (figures: benchmarks/RESULTS.md, "Alongside scoring steps by table"). The alerts do not depend on the steps;
# an alert's evidence can: each match adds its first events, up to EVIDENCE_KEPT.
STEPS = {"sip_events": STEP_ROWS, "netfilter_events": STEP_ROWS, "cdrs": 100_000, "rejects": STEP_ROWS}
QUEUED = 4  # chunks received and not yet scored, at most: then the ingest waits (memory stays bounded)


@dataclass(frozen=True)
class Scored:
    """What the scoring process found: its alerts as rows of the `alerts` table (`replay.alerts_table`), the
    events it scored by table, and the span of event time the ingest stored."""

    alerts: pa.Table
    events: dict[str, int]
    since: dt.datetime | None
    until: dt.datetime | None


@dataclass(frozen=True)
class Setup:
    """What the scoring process needs to build the replay's engine and alert book."""

    rule_dirs: list[Path]
    lists_dir: Path
    credit: dict[str, float]
    names: dict[str, str]
    trusted: list[IPNetwork]
    trusted_accounts: list[str]
    next_id: int
    held_rows: int = HELD_ROWS
    steps: dict[str, int] = dataclasses.field(default_factory=dict)  # rows a step holds, about, by table: STEPS
    lock_in_trusted: bool = False  # [trusted] lock_accounts_in_networks
