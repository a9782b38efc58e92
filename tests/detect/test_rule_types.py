"""One check suite run over every registered rule type (`fraudwatch.detect.types.TYPES`): a new type is covered
as soon as it is registered, through the shipped rules of that type and their annotated samples.

For each type, on each sample of each shipped rule of that type (the sample's events, enriched as the engine
does):

- any cut of the events into batches (never within an instant, as a replay's steps) gives the same alerts;
- the frame detector, the incremental detector and the row-wise detector (the early gate), where the type has
  them, agree: the same alerts, evidence included, for the first two; the row-wise gate decides each key at the
  instant the frame detector's first match for it crossed the level;
- the type declares its parameters and the columns it reads, and the frame detector given only the stored
  columns the rule reads (what a replay fetches) finds the same alerts, evidence included.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
from collections.abc import Iterator
from typing import Any

import polars as pl
import pytest

from fraudwatch.detect.base import Context, Detector, lowest_level
from fraudwatch.detect.decide import AlertBook, key_trusted
from fraudwatch.detect.enrich import Enricher
from fraudwatch.detect.fields import columns_of
from fraudwatch.detect.ruleset import load_rules, rule_columns
from fraudwatch.detect.runners.early import LINE_SOURCES, EarlyBans
from fraudwatch.detect.runners.replay import TIME_COLUMN
from fraudwatch.detect.samples import BASE, SAMPLE_TRUSTED, expand
from fraudwatch.detect.spec import COMMON_KEYS, EventSample
from fraudwatch.detect.types import TYPES, RuleType
from fraudwatch.rulesdir import shipped_rules_dir

SHIPPED: list[RuleType] = list(load_rules().rules.values())
FIELDS = ("rule", "key", "severity", "first_seen", "detected_at", "last_seen", "count", "value", "action",
          "trusted")
CUTS = ("whole", "every-3", "random-1", "random-2", "random-3")


def _samples(type_name: str) -> Iterator[tuple[RuleType, EventSample]]:
    rules = [r for r in SHIPPED if r.common.type == type_name]
    assert rules, f"rule type {type_name}: no shipped rule of this type, so nothing to check it with"
    for rule in rules:
        yield from ((rule, s) for s in rule.common.samples)


def _inputs(rule: RuleType, sample: EventSample) -> Iterator[tuple[str, pl.DataFrame, dict[str, float]]]:
    """The sample's events as written, and stretched in time to span one and a half of the rule's lookback (its
    window, a spike's baseline), so that windows carry across the batches' cuts."""
    frame, credit = expand(rule.common.source, sample.events)
    yield sample.name, frame, credit
    times = [c for c, t in frame.schema.items() if isinstance(t, pl.Datetime)]
    span = frame.select(pl.max_horizontal(pl.col(c).max() - pl.col(c).min() for c in times)).item()
    if span is None or not span.total_seconds():
        return
    factor = 1.5 * rule.lookback() / span.total_seconds()
    stretched = frame.with_columns((pl.lit(BASE) + (pl.col(c) - BASE) * factor).alias(c) for c in times)
    yield f"{sample.name} (stretched)", stretched, credit


def _cases(type_name: str) -> Iterator[tuple[RuleType, str, pl.DataFrame, dict[str, float]]]:
    """(rule, what the events are, the events, the accounts' credit) for every input the type is checked on."""
    for rule, sample in _samples(type_name):
        for name, frame, credit in _inputs(rule, sample):
            yield rule, name, frame, credit


def _context(credit: dict[str, float]) -> Context:
    return Context(shipped_rules_dir() / "lists", credit=dict(credit))


def _cut(frame: pl.DataFrame, time_column: str, how: str) -> list[pl.DataFrame]:
    """`frame` (sorted by `time_column`) in batches that never cut an instant."""
    times = frame.get_column(time_column)
    starts = [i for i in range(frame.height) if i == 0 or times[i] != times[i - 1]]  # each instant's first row
    if how == "whole" or len(starts) < 2:
        return [frame]
    if how == "every-3":
        cuts = starts[::3]
    else:
        rng = random.Random(f"{how}:{frame.height}")
        cuts = sorted({0, *rng.sample(starts, rng.randint(1, len(starts)))})
    bounds = [*cuts, frame.height]
    return [frame.slice(a, b - a) for a, b in itertools.pairwise(bounds) if b > a]


def _alerts(rule: RuleType, detector: Detector, batches: list[pl.DataFrame],
            evidence: bool = True) -> list[tuple[Any, ...]]:
    """The final state of every alert `detector` raises over `batches`, through enrichment and the alert book."""
    enrich = Enricher(SAMPLE_TRUSTED)
    book = AlertBook({rule.common.id: rule}, SAMPLE_TRUSTED)
    out: dict[int, Any] = {}
    for batch in batches:
        for a in book.apply(detector.process(enrich(rule.common.source, batch))):
            out[a.id] = a
    return sorted((*(getattr(a, f) for f in FIELDS), *([repr(a.evidence)] if evidence else []))
                  for a in out.values())


def _first_crossings(rule: RuleType, detector: Detector, batches: list[pl.DataFrame]) -> dict[str, Any]:
    """Key -> when the detector's first match for it crossed the rule's lowest level."""
    enrich = Enricher(SAMPLE_TRUSTED)
    first: dict[str, Any] = {}
    for batch in batches:
        for m in detector.process(enrich(rule.common.source, batch)):
            if m.key not in first or m.detected_at < first[m.key]:
                first[m.key] = m.detected_at
    return first


@pytest.fixture(params=sorted(TYPES))
def type_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_the_type_declares_its_parameters_and_columns(type_name: str) -> None:
    cls = TYPES[type_name]
    assert cls.type_name == type_name
    params = set(cls.parameters())
    assert params == {f.name for f in dataclasses.fields(cls)} - {"common"}
    assert not params & COMMON_KEYS, f"{type_name}: parameters named like common keys: {params & COMMON_KEYS}"
    for rule, _ in _samples(type_name):
        columns = columns_of(rule.common.source)
        assert rule.columns() <= columns, f"{rule.common.id}: reads columns its source lacks"
        assert set(rule.common.key) <= rule.columns() and set(rule.fields()) <= rule.columns()


def test_any_cut_into_batches_gives_the_same_alerts(type_name: str) -> None:
    checked = 0
    for rule, name, frame, credit in _cases(type_name):
        columns = columns_of(rule.common.source)
        kinds = [rule.frame_detector]
        if rule.incremental_detector(_context(credit), columns) is not None:
            kinds.append(rule.incremental_detector)
        for make in kinds:
            whole = _alerts(rule, make(_context(credit), columns), [frame], evidence=False)
            for how in CUTS[1:]:
                batches = _cut(frame, TIME_COLUMN[rule.common.source], how)
                got = _alerts(rule, make(_context(credit), columns), batches, evidence=False)
                assert got == whole, f"{rule.common.id} / {name}: {make.__name__} cut {how}"
                checked += 1
    assert checked


def test_frame_incremental_and_row_detectors_agree(type_name: str) -> None:
    compared = 0
    for rule, name, frame, credit in _cases(type_name):
        source = rule.common.source
        columns = columns_of(source)
        for how in CUTS:
            batches = _cut(frame, TIME_COLUMN[source], how)
            incremental = rule.incremental_detector(_context(credit), columns)
            if incremental is not None:
                assert _alerts(rule, incremental, batches) == _alerts(
                    rule, rule.frame_detector(_context(credit), columns), batches), \
                    f"{rule.common.id} / {name}: incremental against frame, cut {how}"
                compared += 1
            if rule.row_detector(_context(credit), columns) is None:
                assert not rule.monotone, f"{type_name}: monotone, but no row-wise detector"
                continue
            if source not in LINE_SOURCES:
                continue  # the early gates read log lines only
            # a gate for the rule as if it banned at its lowest level: its first decision for a key is when the
            # key's value first reached that level
            c = rule.common
            lowest = "warning" if c.warning is not None and lowest_level(c) == c.warning else "critical"
            common = dataclasses.replace(c, action="ban_ip", act_on=lowest, report_only=False)
            gated = dataclasses.replace(rule, common=common)
            gates = EarlyBans([gated], _context(credit), SAMPLE_TRUSTED)
            decided: dict[str, Any] = {}
            for batch in batches:
                for d in gates.process(source, batch):
                    decided.setdefault(d.key, d.at)
            crossed = {k: t for k, t in _first_crossings(rule, rule.frame_detector(_context(credit), columns),
                                                         batches).items()
                       if not key_trusted("ip", k, SAMPLE_TRUSTED, ())}  # a gate never bans a trusted address
            assert decided == crossed, f"{rule.common.id} / {name}: row-wise gate against frame, cut {how}"
            compared += 1
    if any(r.incremental_detector(_context({}), columns_of(r.common.source)) is not None
           for r, _ in _samples(type_name)):
        assert compared


def test_reading_only_the_declared_columns_gives_the_same_alerts(type_name: str) -> None:
    for rule, name, frame, credit in _cases(type_name):
        source = rule.common.source
        columns = columns_of(source)
        narrow = frame.select(rule_columns([rule], source))
        for how in ("whole", "every-3"):
            full = _alerts(rule, rule.frame_detector(_context(credit), columns), _cut(frame, TIME_COLUMN[source], how))
            got = _alerts(rule, rule.frame_detector(_context(credit), columns), _cut(narrow, TIME_COLUMN[source], how))
            assert got == full, f"{rule.common.id} / {name}: columns {narrow.columns}, cut {how}"
