"""Rows (fraudwatch.detect.rows), the sentry's lists: every condition of every shipped rule on log lines, and every
derived column, the same on rows as on the frames the watcher's rules read."""

from __future__ import annotations

import random

import polars as pl
import pytest

from fraudwatch.detect.base import Context
from fraudwatch.detect.enrich import Enricher
from fraudwatch.detect.fields import ENRICHED, ENRICHED_TYPES, columns_of
from fraudwatch.detect.filters import compile_conjuncts
from fraudwatch.detect.rows import Conditions, Rows
from fraudwatch.detect.ruleset import load_rules
from fraudwatch.detect.runners.early import LINE_SOURCES
from fraudwatch.detect.samples import POLARS_TYPES, SAMPLE_TRUSTED, expand, schema_of
from fraudwatch.rulesdir import shipped_rules_dir

RULES = list(load_rules().rules.values())
CTX = Context(shipped_rules_dir() / "lists")


def _events(source: str) -> pl.DataFrame:
    """Every sample event of every rule of `source`, in time order, with nulls and odd values mixed in."""
    frames = [expand(source, s.events)[0] for r in RULES if r.common.source == source for s in r.common.samples]
    frame = pl.concat(frames, how="vertical_relaxed").sort("ts", maintain_order=True)
    rng = random.Random(7)
    blanked = {c: [rng.random() < 0.1 for _ in range(frame.height)] for c in ("method", "status", "user_agent")
               if c in frame.columns}
    return frame.with_columns(pl.when(pl.Series(flags)).then(None).otherwise(pl.col(c)).alias(c)
                              for c, flags in blanked.items())


@pytest.mark.parametrize("source", LINE_SOURCES)
def test_every_condition_is_met_by_the_same_rows_as_in_a_frame(source: str) -> None:
    frame = Enricher(SAMPLE_TRUSTED)(source, _events(source))
    rows = Rows.from_frame(frame)
    conditions = Conditions({**schema_of(source), **{f: POLARS_TYPES[ENRICHED_TYPES[f]] for f in ENRICHED[source]}})
    checked = 0
    for rule in RULES:
        if rule.common.source != source:
            continue
        for c in compile_conjuncts(rule.common.where, CTX.lists_dir, columns_of(source)):
            expected = frame.select(c.expr.fill_null(False)).to_series().to_list()
            assert conditions.mask(c, rows) == expected, (rule.common.id, c.key)
            assert conditions.mask(c, rows) == expected  # remembered, the same
            checked += 1
    assert checked >= (10 if source == "sip_events" else 1)
    met = [v for known in conditions.known.values() for v in known.values()]
    assert True in met and False in met


@pytest.mark.parametrize("source", LINE_SOURCES)
def test_rows_are_enriched_as_frames_are(source: str) -> None:
    """Batch by batch, with the challenges carried over, as the sentry feeds its ticks."""
    events = _events(source)
    frames, rows = Enricher(SAMPLE_TRUSTED), Enricher(SAMPLE_TRUSTED)
    for at in range(0, events.height, 13):
        batch = events.slice(at, 13)
        expected = frames(source, batch)
        got = Rows.from_frame(batch)
        rows.rows(source, got, ENRICHED[source])
        for name in ENRICHED[source]:
            assert got.columns[name] == expected.get_column(name).to_list(), name
    if source == "sip_events":  # the samples hold both kinds
        whole = Rows.from_frame(Enricher(SAMPLE_TRUSTED)(source, events)).columns
        assert any(whole["trusted_ip"]) and any(whole["challenge_repeat"])
