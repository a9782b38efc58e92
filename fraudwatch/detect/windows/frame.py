"""The frame detector of the sliding-window rule types (threshold, distinct, sum, spike, list_match):
`WindowDetector`, which the types in `fraudwatch.detect.types` subclass with what their window's value is.

Each event is scored on the window ending at its own time, (ts - window, ts], per key — event time, so a replay
scores exactly as the live run did, and there is no midnight reset. Between batches a detector keeps only the
events still inside its longest window.

An event whose value reaches the rule's lowest level is *hot*. The events behind a match are the events in the
window of a hot event, each counted once (a flag carried with the kept events), so the counts of matches add up
to the same total however the stream was cut into batches. A key's hot events form one episode until the gap
between the episode's last hot event and the window of the next one exceeds the rule's `cooldown` — the same
test the alert book applies across batches, so one batch or many give the same alerts.
"""

from __future__ import annotations

import bisect
import datetime as dt

import polars as pl

from fraudwatch.detect.base import (
    EVIDENCE_COLUMNS,
    TRUST_COLUMN,
    TRUST_FACT,
    TRUST_KEPT,
    Context,
    Match,
    check_columns,
    evidence_aggs,
    key_expr,
    lowest_level,
    wants_trust,
)
from fraudwatch.detect.filters import (
    EAGER_ROWS,
    Conjunct,
    Selection,
    compile_conjuncts,
    constant,
    distinct_hashes,
    hashed,
)
from fraudwatch.detect.spec import Common
from fraudwatch.detect.windows.arith import (
    CODED,
    COUNTED,
    NEW,
    OWNER,
    SEG,
    TAKEN,
    UNIT_SCALE,
    VALUE,
    delta,
    micros,
    uncoded,
)
from fraudwatch.detect.windows.evidence import EpisodeMatches
from fraudwatch.detect.windows.small import score_small

SMALL = 8192  # frames (kept and new events) up to this many rows are scored in plain Python (counts, distincts)


class WindowDetector:
    """Scores events on rolling per-key aggregates; subclasses say what the aggregate is."""

    history: float  # seconds of events to keep between batches
    small: str | None = None  # "count" or "distinct": the value the small path computes (None: no small path)
    field: str

    def __init__(self, common: Common, ctx: Context, columns: set[str], conjuncts: list[Conjunct] | None = None,
                 history: float | None = None) -> None:
        """`conjuncts`: the events' conditions when not the rule's `where` alone; `history`: seconds of events to
        keep when longer than the window (a spike's baseline)."""
        check_columns(columns, common.key)
        self.common = common
        self.conjuncts = compile_conjuncts(common.where, ctx.lists_dir, columns) if conjuncts is None else conjuncts
        self.keys = list(common.key) or ["_global"]
        self.by = self.keys  # the columns the frame path groups on: the keys, or their hashes (`_coded`)
        self.history = common.window if history is None else history
        self.buffer: pl.DataFrame | None = None
        self.episodes = EpisodeMatches(common)  # makes the matches, and keeps what open episodes have sent
        # expressions built once, not per batch
        self._global = pl.lit("*").alias("_global")
        self._kept: dict[tuple[str, ...], list[str]] = {}
        self.trust = wants_trust(common)  # its matches say which trusted addresses were behind them

    def conditions(self) -> list[list[Conjunct]]:
        return [self.conjuncts]

    def needed(self) -> list[str]:
        """Columns this detector reads besides ts and the key."""
        return []

    def score(self, frame: pl.DataFrame) -> pl.DataFrame:
        """`frame` (sorted by ts) with a `_value` column: the metric at each event."""
        raise NotImplementedError

    def could_be_hot(self, most: int) -> bool:
        """Whether an event can reach the lowest level when its key has at most `most` events in the window
        (new ones and those kept); True when the rule type has no such bound (sums)."""
        return True

    def _columns(self, columns: list[str]) -> list[str]:
        kept = self._kept.get(tuple(columns))
        if kept is None:
            kept = self._kept[tuple(columns)] = [
                c for c in dict.fromkeys(["ts", *self.keys, *self.needed(), *EVIDENCE_COLUMNS,
                                          *([TRUST_COLUMN] if self.trust else [])]) if c in columns]
        return kept

    def process(self, events: pl.DataFrame, selection: Selection | None = None) -> list[Match]:
        if selection is None or selection.frame is not events:
            selection = Selection(events)
        # Only new events can be hot: a batch with none selected changes nothing (the kept window is trimmed
        # against its own newest event), so it costs no frame work at all
        mask = selection.mask(self.conjuncts)
        if not (events.height if mask is None else mask.any()):
            return []
        sel = selection(self.conjuncts, self._columns(events.columns))
        if self.keys == ["_global"]:
            sel = sel.with_columns(self._global)
        elif any(sel.get_column(k).null_count() for k in self.keys):
            sel = sel.filter(pl.all_horizontal(pl.col(k).is_not_null() for k in self.keys))
        if not sel.height:
            return []
        sel = sel.hstack([constant(NEW, True, sel.height), constant(COUNTED, False, sel.height)])
        if self.buffer is not None and self.buffer.height:
            if self.buffer.schema == sel.schema:
                sel = pl.concat([self.buffer, sel], rechunk=True)
            else:
                sel = pl.concat([self.buffer, sel], how="diagonal_relaxed", rechunk=True)
        if sel.get_column("ts").null_count() or not sel.get_column("ts").is_sorted():
            sel = sel.sort("ts", maintain_order=True)
        if self.small is not None and sel.height <= SMALL and self._plain_keys(sel):
            field = self.field if self.small == "distinct" else None
            counted, matches = score_small(sel, self.common, self.keys, field, self._small_facts(sel.columns),
                                           self.episodes)
            self._keep_window(counted)
            return matches
        sel = self._coded(sel)
        if self._cold(sel):  # no new event can reach a level: no scoring, only the window to keep
            self._keep_window(uncoded(sel))
            return []
        scored, matches = self._matches(self.score(sel))
        self._keep_window(uncoded(scored.drop(VALUE)))
        return matches

    def _coded(self, frame: pl.DataFrame) -> pl.DataFrame:
        """`frame` with the 64-bit hash of each text key (and of a distinct count's field) beside it, and `by`
        naming the hashes: grouping, sorting and joining on integers cost the flood's counts and distinct counts
        much less than on text (figures: benchmarks/RESULTS.md, "Text keys grouped and joined on 64-bit hashes").
        A hash is used only when it tells the batch's values apart (checked on the distinct values), so the result
        is exact: otherwise the text itself is used."""
        self.by = self.keys
        if self.keys == ["_global"]:
            return frame
        texts = [k for k in dict.fromkeys([*self.keys, *([self.field] if self.small == "distinct" else [])])
                 if frame.schema[k] == pl.String]
        hashes = []
        for k in texts:
            if distinct_hashes(frame.get_column(k).drop_nulls().unique()) is not None:
                hashes.append(hashed(k).alias(CODED + k))
        if not hashes:
            return frame
        frame = frame.with_columns(hashes)
        self.by = [CODED + k if CODED + k in frame.columns else k for k in self.keys]
        return frame

    def _plain_keys(self, frame: pl.DataFrame) -> bool:
        """Whether the small path applies: the key text is the values joined (text keys, or none), and times
        are in a unit it compares as integers."""
        ts = frame.schema["ts"]
        return isinstance(ts, pl.Datetime) and ts.time_unit in UNIT_SCALE \
            and (self.keys == ["_global"] or all(frame.schema[k] == pl.String for k in self.keys))

    def small_facts(self) -> dict[str, tuple[str, int, bool]]:
        """`fact_aggs` for the small path: evidence name -> (field, how many distinct values, nulls included)."""
        return {}

    def _small_facts(self, columns: list[str]) -> dict[str, tuple[str, int, bool]]:
        """`small_facts`, and the trusted addresses behind a match (as `_matches` adds them)."""
        facts = self.small_facts()
        if self.trust and TRUST_COLUMN in columns:
            facts = {**facts, TRUST_FACT: (TRUST_COLUMN, TRUST_KEPT, False)}
        return facts

    def _keep_window(self, frame: pl.DataFrame) -> None:
        """Keep the events of `frame` (sorted by ts) inside the longest window of its newest, as old events."""
        ts = frame.get_column("ts")
        newest: dt.datetime = ts.max()  # type: ignore[assignment]
        cutoff = newest - dt.timedelta(seconds=self.history)
        if ts.null_count() or frame.height > EAGER_ROWS:  # big (or not a sorted run): filter
            self.buffer = frame.filter(pl.col("ts") > cutoff).with_columns(pl.lit(False).alias(NEW))
            return
        unit = frame.schema["ts"]
        if not (isinstance(unit, pl.Datetime) and unit.time_unit in UNIT_SCALE):
            self.buffer = frame.filter(pl.col("ts") > cutoff).with_columns(pl.lit(False).alias(NEW))
            return
        physical: list[int] = ts.cast(pl.Int64).to_list()
        limit = physical[-1] - micros(dt.timedelta(seconds=self.history)) * UNIT_SCALE[unit.time_unit]
        kept = frame.slice(bisect.bisect_right(physical, limit))  # the events after the cutoff
        kept.replace_column(kept.get_column_index(NEW), constant(NEW, False, kept.height))
        self.buffer = kept

    def _cold(self, frame: pl.DataFrame) -> bool:
        """True when no new event of `frame` (kept and new events, sorted) can be hot: every key of the new
        events has fewer events in all of `frame` than a level needs (`could_be_hot`). A cheap bound, not a
        score: when it cannot tell, the detector scores as usual."""
        if not self.could_be_hot(frame.height):
            return True
        if self.keys == ["_global"]:  # one key: the bound above is all there is
            return False
        # events per key in all of `frame`; when even the busiest key cannot reach a level, no new event can
        # (the common case for keys that rarely repeat, such as account and called number), else the keys of
        # the new events are looked up among them
        counts = frame.group_by(self.by).len()
        most = counts.get_column("len").max()
        if most is None or not self.could_be_hot(int(most)):  # type: ignore[arg-type]
            return True
        fresh = frame.filter(NEW).select(self.by).unique()
        most = counts.join(fresh, on=self.by, how="semi").get_column("len").max()
        return most is not None and not self.could_be_hot(int(most))  # type: ignore[arg-type]

    def _matches(self, scored: pl.DataFrame) -> tuple[pl.DataFrame, list[Match]]:
        """`scored` with the events now behind a match flagged, and one match per episode of a key in this
        batch — computed with joins, not a loop per key (a botnet brings thousands of keys into one batch)."""
        c, keys = self.common, self.by
        # the key's text, carried beside its hash
        texts = [pl.col(k).first() for k in self.keys] if keys != self.keys else []
        is_hot = pl.col(NEW) & (pl.col(VALUE) >= lowest_level(c))
        if not scored.select(is_hot.any()).item():
            return scored, []
        # each event is counted for the next hot event of its key, when that is less than a window later
        owner = pl.when(is_hot).then(pl.col("ts")).backward_fill().over(keys)
        scored = scored.with_columns(owner.alias(OWNER)).with_columns(
            (~pl.col(COUNTED) & (pl.col(OWNER) - pl.col("ts") < delta(c.window))).fill_null(False).alias(TAKEN))
        taken = scored.filter(TAKEN)
        per_hot = taken.group_by([*keys, OWNER]).agg(pl.col("ts").min().alias("_start"), pl.len().alias("_n"))
        hot = (scored.filter(is_hot).group_by([*keys, "ts"]).agg(pl.col(VALUE).max(), *texts)
               .join(per_hot, left_on=[*keys, "ts"], right_on=[*keys, OWNER], how="left")
               .with_columns(pl.coalesce("_start", "ts").alias("_start"), pl.col("_n").fill_null(0))
               .sort([*keys, "ts"]))
        # episodes: a key's hot instants split where the gap exceeds the cooldown, numbered over the whole frame
        # (sorted by key, then time: one sort, cheaper on a flood's keys than windows over the keys; figures:
        # benchmarks/RESULTS.md, "Window episodes numbered in one sort")
        same_key = pl.all_horizontal(pl.col(k).eq_missing(pl.col(k).shift(1)) for k in keys)
        previous = pl.when(same_key).then(pl.col("ts").shift(1))
        opens = previous.is_null() | (pl.col("_start") - previous > delta(c.cooldown))
        hot = hot.with_columns(opens.cast(pl.UInt32).cum_sum().alias(SEG))
        episodes = hot.group_by([*keys, SEG]).agg(
            pl.col("_start").min().alias("_first"), pl.col("ts").min().alias("_crossing"),
            pl.col("ts").max().alias("_last"), pl.col("_n").sum().alias("_count"),
            pl.col(VALUE).max().alias("_peak"), *texts)
        behind = taken.join(hot.select([*keys, "ts", SEG]), left_on=[*keys, OWNER], right_on=[*keys, "ts"])
        facts = self.fact_aggs()
        if self.trust and TRUST_COLUMN in behind.columns:
            facts.append(pl.col(TRUST_COLUMN).drop_nulls().unique(maintain_order=True).head(TRUST_KEPT)
                         .alias(TRUST_FACT))
        # evidence: an episode's first events, by time then id (the join left those of one instant in any order)
        ties = [c for c in ("id", "flowno") if c in behind.columns]
        details = behind.sort(["ts", *ties]).group_by([*keys, SEG]).agg(*evidence_aggs(behind.columns), *facts)
        # in order of crossing, then of key: the alert book opens alerts (and numbers them) in this order, which
        # must not depend on how a group_by happened to order its groups
        episodes = episodes.join(details, on=[*keys, SEG], how="left") \
            .with_columns(key_expr(c.key).alias("_key")).sort("_crossing", "_key") \
            .drop(list(dict.fromkeys([*keys, *self.keys])))
        out = self.episodes.from_frame(episodes, [f.meta.output_name() for f in facts])
        newest: dt.datetime = scored.get_column("ts").max()  # type: ignore[assignment]
        self.episodes.forget(newest)
        counted = scored.with_columns(pl.col(COUNTED) | pl.col(TAKEN)).drop(OWNER, TAKEN)
        return counted, out

    def fact_aggs(self) -> list[pl.Expr]:
        """Rule-specific facts for the alert (e.g. the distinct values seen), as aggregations over the events
        behind it; each named after the evidence key it fills."""
        return []
