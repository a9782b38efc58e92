"""A VOS3000 softswitch simulator: logs, CDRs and customer balances with labelled attacks.

``simulate(out_dir)`` writes a folder that looks like what fraudwatch reads from a real switch -- sipproxy.log,
mbx.log, kern.log, cdr/e_cdr_YYYYMMDD.csv, customers.csv -- plus labels.csv (the injected incidents, the ground
truth for detectors) and a ready fraudwatch.toml. The output depends only on the arguments: every random draw
comes from ``random.Random`` instances seeded from ``seed``, never from the clock.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from pathlib import Path

from fraudwatch.sim import billing, incidents, labels, normal, writers
from fraudwatch.sim.context import AddressPool, Ctx
from fraudwatch.sim.model import build_model
from fraudwatch.sim.presence import DAY_MS, build_presence
from fraudwatch.sim.sink import Sink

__all__ = ["DEFAULT_START", "KIND_NAMES", "SimResult", "simulate"]

DEFAULT_START = dt.date(2026, 11, 1)
KIND_NAMES = incidents.KIND_NAMES


@dataclass(frozen=True)
class SimResult:
    out_dir: Path
    files: dict[str, int]  # path relative to out_dir -> number of lines, for every file written
    incidents: int


def _rng(seed: int, stream: str) -> random.Random:
    """An independent, reproducible random stream per concern (a string seed is hashed with SHA-512, so it does
    not depend on PYTHONHASHSEED); adding draws to one concern does not shift the others."""
    return random.Random(f"fraudwatch.sim:{seed}:{stream}")  # noqa: S311  # nosec B311 # simulation, seeded for repeatable data: not cryptography


def simulate(out_dir: Path, days: int = 2, accounts: int = 50, seed: int = 1,
             start: dt.date | None = None) -> SimResult:
    """Simulate ``days`` UTC days from ``start`` (default 2026-11-01) for ``accounts`` billing accounts and write
    the folder ``out_dir`` (created if needed; files of a previous run there are overwritten, and stale
    cdr/e_cdr_*.csv removed)."""
    if days < 1:
        raise ValueError("days must be at least 1")
    day = start or DEFAULT_START
    start_ms = int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp() * 1000)
    model = build_model(_rng(seed, "model"), start_ms, days, accounts)
    sink = Sink(model.start_ms, model.end_ms)
    presence = build_presence(_rng(seed, "presence"), model)
    ctx = Ctx(sink=sink, model=model, presence=presence, pool=AddressPool(_rng(seed, "addresses")))
    slots = incidents.schedule(_rng(seed, "schedule"), model)
    # Switch-wide incidents change who is online, so they go in before the normal traffic is written.
    for n, slot in enumerate(slots):
        if slot.kind.switchwide:
            slot.kind.inject(ctx, _rng(seed, f"incident:{n}"), slot.t0)
    normal.registrations(sink, model, presence, _rng(seed, "registrations"))
    normal.customer_calls(sink, model, presence, _rng(seed, "customer-calls"))
    normal.carrier_calls(sink, model, _rng(seed, "carrier-calls"))
    normal.background(sink, model, _rng(seed, "background"))
    for n, slot in enumerate(slots):
        if not slot.kind.switchwide:
            slot.kind.inject(ctx, _rng(seed, f"incident:{n}"), slot.t0)
    balances = billing.balances(_rng(seed, "billing"), model, sink.cdrs, ctx.credit)
    found = labels.finalise(sink.incidents)
    boot_ms = start_ms - _rng(seed, "kernel").randint(3 * DAY_MS, 40 * DAY_MS)
    registered = [ep.username for ep in model.endpoints() if presence.online(ep.username, start_ms)]
    files = writers.write_all(Path(out_dir), sink, days, balances, found, boot_ms, registered)
    return SimResult(out_dir=Path(out_dir), files=files, incidents=len(found))
