"""Sliding-window rule types: threshold, distinct, sum, spike and list_match.

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
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import polars as pl

from fraudwatch.detect.base import (
    EVIDENCE_COLUMNS,
    EVIDENCE_IDS,
    EVIDENCE_KEPT,
    EVIDENCE_LINES,
    LINES_KEPT,
    Context,
    Match,
    check_columns,
    evidence_aggs,
    key_expr,
    lowest_level,
    severity_of,
)
from fraudwatch.detect.filters import EAGER_ROWS, Selection, compile_conjuncts, constant, distinct_hashes, hashed
from fraudwatch.detect.incremental import (
    DistinctIncremental,
    IncrementalDetector,
    SpikeIncremental,
    SumIncremental,
)
from fraudwatch.detect.spec import Common, Duration, ParamError

_NEW = "_new"
_VALUE = "_value"
_COUNTED = "_counted"  # the event is already behind a match
_OWNER = "_owner"  # time of the hot event an event is counted for
_TAKEN = "_taken"
_SEG = "_seg"
SMALL = 8192  # frames (kept and new events) up to this many rows are scored in plain Python (counts, distincts)
CODED = "_k_"  # prefix of a text column's 64-bit hash, which the frame path groups, sorts and joins on instead


def _us(seconds: float) -> str:
    return f"{round(seconds * 1_000_000)}us"


def _delta(seconds: float) -> dt.timedelta:
    return dt.timedelta(microseconds=round(seconds * 1_000_000))


class WindowDetector:
    """Scores events on rolling per-key aggregates; subclasses say what the aggregate is."""

    history: float  # seconds of events to keep between batches
    small: str | None = None  # "count" or "distinct": the value the small path computes (None: no small path)
    field: str

    def __init__(self, common: Common, ctx: Context, columns: set[str]) -> None:
        check_columns(columns, common.key)
        self.common = common
        self.conjuncts = compile_conjuncts(common.where, ctx.lists_dir, columns)
        self.keys = list(common.key) or ["_global"]
        self.by = self.keys  # the columns the frame path groups on: the keys, or their hashes (`_coded`)
        self.history = common.window
        self.buffer: pl.DataFrame | None = None
        # key -> (last hot event, event ids and lines sent) of its open episode: see _build
        self.sent: dict[str, tuple[dt.datetime, int, int]] = {}
        # expressions built once, not per batch
        self._global = pl.lit("*").alias("_global")
        self._kept: dict[tuple[str, ...], list[str]] = {}

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
                c for c in dict.fromkeys(["ts", *self.keys, *self.needed(), *EVIDENCE_COLUMNS]) if c in columns]
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
        sel = sel.hstack([constant(_NEW, True, sel.height), constant(_COUNTED, False, sel.height)])
        if self.buffer is not None and self.buffer.height:
            if self.buffer.schema == sel.schema:
                sel = pl.concat([self.buffer, sel], rechunk=True)
            else:
                sel = pl.concat([self.buffer, sel], how="diagonal_relaxed", rechunk=True)
        if sel.get_column("ts").null_count() or not sel.get_column("ts").is_sorted():
            sel = sel.sort("ts", maintain_order=True)
        if self.small is not None and sel.height <= SMALL and self._plain_keys(sel):
            counted, matches = self._matches_small(sel)
            self._keep_window(counted)
            return matches
        sel = self._coded(sel)
        if self._cold(sel):  # no new event can reach a level: no scoring, only the window to keep
            self._keep_window(_uncoded(sel))
            return []
        scored, matches = self._matches(self.score(sel))
        self._keep_window(_uncoded(scored.drop(_VALUE)))
        return matches

    def _coded(self, frame: pl.DataFrame) -> pl.DataFrame:
        """`frame` with the 64-bit hash of each text key (and of a distinct count's field) beside it, and `by`
        naming the hashes: grouping, sorting and joining on integers took the flood's counts and distinct counts
        half the time they took on text. A hash is used only when it tells the batch's values apart (checked
        on the distinct values), so the result is exact: otherwise the text itself is used."""
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
        return isinstance(ts, pl.Datetime) and ts.time_unit in _UNIT_SCALE \
            and (self.keys == ["_global"] or all(frame.schema[k] == pl.String for k in self.keys))

    def _matches_small(self, frame: pl.DataFrame) -> tuple[pl.DataFrame, list[Match]]:
        """`score` and `_matches` in plain Python, for frames (kept and new events) of at most SMALL rows: the
        same values, flags, episodes and evidence, without the fixed cost of some twenty frame operations.
        Only for counts and distinct counts (`small`); times are compared as integers of the column's unit,
        and only the keys of new events are looked at."""
        c = self.common
        scale = _UNIT_SCALE[frame.schema["ts"].time_unit]  # type: ignore[attr-defined]
        window, cooldown = _micros(_delta(c.window)) * scale, _micros(_delta(c.cooldown)) * scale
        level = lowest_level(c)
        n = frame.height
        ts_column = frame.get_column("ts")
        ts: list[int] = ts_column.cast(pl.Int64).to_list()
        new: list[bool] = frame.get_column(_NEW).to_list()
        if self.keys == ["_global"]:
            keys = ["*"] * n
        else:
            parts = [frame.get_column(k).to_list() for k in self.keys]
            keys = parts[0] if len(parts) == 1 else ["|".join(p) for p in zip(*parts, strict=True)]
        fresh = {keys[i] for i in range(n) if new[i]}
        rows_of: dict[str, list[int]] = {}
        for i, k in enumerate(keys):
            if k in fresh:
                rows_of.setdefault(k, []).append(i)
        values: list[Any] | None = None
        if self.small == "distinct":
            wanted = [i for rows in rows_of.values() for i in rows]
            got = frame.get_column(self.field)[wanted].to_list() if wanted else []
            values = [None] * n
            for i, v in zip(wanted, got, strict=True):
                values[i] = v
        # the value at each new event: events (or distinct non-null values) of its key in (ts - window, ts]
        value: dict[int, float] = {}  # hot new events only
        for rows in rows_of.values():
            left = right = 0
            tally: dict[Any, int] = {}
            for i in rows:
                t = ts[i]
                while right < len(rows) and ts[rows[right]] <= t:  # all events at this instant too
                    if values is not None and (v := values[rows[right]]) is not None:
                        tally[v] = tally.get(v, 0) + 1
                    right += 1
                while ts[rows[left]] <= t - window:
                    if values is not None and (v := values[rows[left]]) is not None:
                        tally[v] -= 1
                        if not tally[v]:
                            del tally[v]
                    left += 1
                if new[i]:
                    x = float(len(tally) if values is not None else right - left)
                    if x >= level:
                        value[i] = x
        if not value:
            return frame, []
        counted: list[bool] = frame.get_column(_COUNTED).to_list()
        # each event is counted for the next hot event of its key, when that is less than a window later
        taken: list[int] = []
        owner: dict[int, int] = {}  # taken row -> its hot event's time
        episodes: list[dict[str, Any]] = []
        seg_of: dict[tuple[str, int], dict[str, Any]] = {}
        for key in {keys[i] for i in value}:
            rows = rows_of[key]
            nxt: int | None = None
            per_hot: dict[int, list[int]] = {}  # hot time -> [first taken row, taken rows]
            for i in reversed(rows):
                if i in value:
                    nxt = ts[i]
                if nxt is not None and not counted[i] and nxt - ts[i] < window:
                    taken.append(i)
                    owner[i] = nxt
                    tally_of = per_hot.get(nxt)
                    if tally_of is None:
                        per_hot[nxt] = [i, 1]
                    else:
                        tally_of[0] = i  # going backwards in ts order: this one is earlier
                        tally_of[1] += 1
            peaks: dict[int, tuple[float, int]] = {}  # hot time -> (peak, a row at that time)
            for i in rows:
                if i in value:
                    peaks[ts[i]] = (max(peaks[ts[i]][0], value[i]), peaks[ts[i]][1]) if ts[i] in peaks \
                        else (value[i], i)
            episode: dict[str, Any] | None = None
            previous: int | None = None
            for t in sorted(peaks):
                peak, at = peaks[t]
                start, count = per_hot.get(t, (at, 0))
                if episode is None or previous is None or ts[start] - previous > cooldown:
                    episode = {"_key": key, "_first": start, "_crossing": at, "_last": at, "_count": 0,
                               "_peak": peak, "_rows": []}
                    episodes.append(episode)
                if ts[start] < ts[episode["_first"]]:
                    episode["_first"] = start
                episode["_last"] = at
                episode["_count"] += count
                episode["_peak"] = max(episode["_peak"], peak)
                seg_of[(key, t)] = episode
                previous = t
        taken.sort()  # frame order is ts order
        for i in taken:
            seg_of[(keys[i], owner[i])]["_rows"].append(i)
        episodes.sort(key=lambda e: (ts[e["_crossing"]], e["_key"]))  # as the frame path orders them
        lists: dict[str, list[Any]] = {}
        columns = frame.columns
        wanted_columns = [(name, column, EVIDENCE_IDS) for name, column in
                          (("_ev_ids", "id"), ("_ev_flownos", "flowno")) if column in columns]
        if {"source", "line_no"} <= set(columns):
            wanted_columns += [("_ev_sources", "source", EVIDENCE_LINES), ("_ev_line_nos", "line_no", EVIDENCE_LINES)]
            if "byte_offset" in columns:
                wanted_columns.append(("_ev_offsets", "byte_offset", EVIDENCE_LINES))
        for name, column, head in wanted_columns:
            lists[name] = _gathered(frame.get_column(column), [e["_rows"][:head] for e in episodes])
        facts = self.small_facts()
        for name, (fact, head, nulls) in facts.items():
            per_episode = _gathered(frame.get_column(fact), [e["_rows"] for e in episodes])
            lists[name] = [list(dict.fromkeys(v for v in got if nulls or v is not None))[:head]
                           for got in per_episode]
        times = _gathered(ts_column, [[e["_first"], e["_crossing"], e["_last"]] for e in episodes])
        for j, name in enumerate(("_first", "_crossing", "_last")):
            lists[name] = [t[j] for t in times]
        for name in ("_key", "_count", "_peak"):
            lists[name] = [e[name] for e in episodes]
        matches = self._build_lists(lists, list(facts))
        newest: dt.datetime = ts_column.max()  # type: ignore[assignment]
        horizon = newest - _delta(c.window + c.cooldown)  # an episode ending before this cannot continue
        self.sent = {k: v for k, v in self.sent.items() if v[0] >= horizon}
        for i in taken:
            counted[i] = True
        frame = frame.clone()
        frame.replace_column(frame.get_column_index(_COUNTED), pl.Series(_COUNTED, counted, dtype=pl.Boolean))
        return frame, matches

    def small_facts(self) -> dict[str, tuple[str, int, bool]]:
        """`fact_aggs` for the small path: evidence name -> (field, how many distinct values, nulls included)."""
        return {}

    def _keep_window(self, frame: pl.DataFrame) -> None:
        """Keep the events of `frame` (sorted by ts) inside the longest window of its newest, as old events."""
        ts = frame.get_column("ts")
        newest: dt.datetime = ts.max()  # type: ignore[assignment]
        cutoff = newest - dt.timedelta(seconds=self.history)
        if ts.null_count() or frame.height > EAGER_ROWS:  # big (or not a sorted run): filter
            self.buffer = frame.filter(pl.col("ts") > cutoff).with_columns(pl.lit(False).alias(_NEW))
            return
        unit = frame.schema["ts"]
        if not (isinstance(unit, pl.Datetime) and unit.time_unit in _UNIT_SCALE):
            self.buffer = frame.filter(pl.col("ts") > cutoff).with_columns(pl.lit(False).alias(_NEW))
            return
        physical: list[int] = ts.cast(pl.Int64).to_list()
        limit = physical[-1] - _micros(dt.timedelta(seconds=self.history)) * _UNIT_SCALE[unit.time_unit]
        kept = frame.slice(bisect.bisect_right(physical, limit))  # the events after the cutoff
        kept.replace_column(kept.get_column_index(_NEW), constant(_NEW, False, kept.height))
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
        fresh = frame.filter(_NEW).select(self.by).unique()
        most = counts.join(fresh, on=self.by, how="semi").get_column("len").max()
        return most is not None and not self.could_be_hot(int(most))  # type: ignore[arg-type]

    def _matches(self, scored: pl.DataFrame) -> tuple[pl.DataFrame, list[Match]]:
        """`scored` with the events now behind a match flagged, and one match per episode of a key in this
        batch — computed with joins, not a loop per key (a botnet brings thousands of keys into one batch)."""
        c, keys = self.common, self.by
        # the key's text, carried beside its hash
        texts = [pl.col(k).first() for k in self.keys] if keys != self.keys else []
        is_hot = pl.col(_NEW) & (pl.col(_VALUE) >= lowest_level(c))
        if not scored.select(is_hot.any()).item():
            return scored, []
        # each event is counted for the next hot event of its key, when that is less than a window later
        owner = pl.when(is_hot).then(pl.col("ts")).backward_fill().over(keys)
        scored = scored.with_columns(owner.alias(_OWNER)).with_columns(
            (~pl.col(_COUNTED) & (pl.col(_OWNER) - pl.col("ts") < _delta(c.window))).fill_null(False).alias(_TAKEN))
        taken = scored.filter(_TAKEN)
        per_hot = taken.group_by([*keys, _OWNER]).agg(pl.col("ts").min().alias("_start"), pl.len().alias("_n"))
        hot = (scored.filter(is_hot).group_by([*keys, "ts"]).agg(pl.col(_VALUE).max(), *texts)
               .join(per_hot, left_on=[*keys, "ts"], right_on=[*keys, _OWNER], how="left")
               .with_columns(pl.coalesce("_start", "ts").alias("_start"), pl.col("_n").fill_null(0))
               .sort([*keys, "ts"]))
        # episodes: a key's hot instants split where the gap exceeds the cooldown, numbered over the whole frame
        # (sorted by key, then time: one sort, where windows over the keys took twice as long on a flood's keys)
        same_key = pl.all_horizontal(pl.col(k).eq_missing(pl.col(k).shift(1)) for k in keys)
        previous = pl.when(same_key).then(pl.col("ts").shift(1))
        opens = previous.is_null() | (pl.col("_start") - previous > _delta(c.cooldown))
        hot = hot.with_columns(opens.cast(pl.UInt32).cum_sum().alias(_SEG))
        episodes = hot.group_by([*keys, _SEG]).agg(
            pl.col("_start").min().alias("_first"), pl.col("ts").min().alias("_crossing"),
            pl.col("ts").max().alias("_last"), pl.col("_n").sum().alias("_count"),
            pl.col(_VALUE).max().alias("_peak"), *texts)
        behind = taken.join(hot.select([*keys, "ts", _SEG]), left_on=[*keys, _OWNER], right_on=[*keys, "ts"])
        facts = self.fact_aggs()
        # evidence: an episode's first events, by time then id (the join left those of one instant in any order)
        ties = [c for c in ("id", "flowno") if c in behind.columns]
        details = behind.sort(["ts", *ties]).group_by([*keys, _SEG]).agg(*evidence_aggs(behind.columns), *facts)
        # in order of crossing, then of key: the alert book opens alerts (and numbers them) in this order, which
        # must not depend on how a group_by happened to order its groups
        episodes = episodes.join(details, on=[*keys, _SEG], how="left") \
            .with_columns(key_expr(c.key).alias("_key")).sort("_crossing", "_key") \
            .drop(list(dict.fromkeys([*keys, *self.keys])))
        out = self._build(episodes, [f.meta.output_name() for f in facts])
        newest: dt.datetime = scored.get_column("ts").max()  # type: ignore[assignment]
        horizon = newest - _delta(c.window + c.cooldown)  # an episode ending before this cannot continue
        self.sent = {k: v for k, v in self.sent.items() if v[0] >= horizon}
        counted = scored.with_columns(pl.col(_COUNTED) | pl.col(_TAKEN)).drop(_OWNER, _TAKEN)
        return counted, out

    def _build(self, episodes: pl.DataFrame, fact_names: list[str]) -> list[Match]:
        """The matches of the episodes (sorted by crossing). An episode continuing the key's alert (within
        `cooldown` of its last hot event, the alert book's test) carries no event pointers once the alert holds
        all it keeps, so a flood of many keys over many batches does not convert and merge lists no one keeps."""
        names = set(episodes.columns)
        return self._assemble(lambda n: episodes.get_column(n).to_list(),
                              lambda n, rows: episodes.get_column(n).gather(rows).to_list(), names, fact_names)

    def _build_lists(self, lists: dict[str, list[Any]], fact_names: list[str]) -> list[Match]:
        """`_build` from the episodes as lists by column (the small path)."""
        return self._assemble(lambda n: lists[n], lambda n, rows: [lists[n][i] for i in rows], set(lists),
                              fact_names)

    def _assemble(self, column: Callable[[str], list[Any]], gather: Callable[[str, list[int]], list[Any]],
                  names: set[str], fact_names: list[str]) -> list[Match]:
        c = self.common
        cooldown = _delta(c.cooldown)
        keys, firsts, crossings, lasts, counts, peaks = (
            column(n) for n in ("_key", "_first", "_crossing", "_last", "_count", "_peak"))
        facts = {name: column(name) for name in fact_names}
        want_ids: list[int] = []
        want_lines: list[int] = []
        for i, key in enumerate(keys):
            last, sent_ids, sent_lines = self.sent.get(key, (None, 0, 0))
            if last is None or firsts[i] - last > cooldown:
                sent_ids = sent_lines = 0
            if sent_ids < EVIDENCE_KEPT:
                want_ids.append(i)
            if sent_lines < LINES_KEPT:
                want_lines.append(i)
            n = int(counts[i])
            self.sent[key] = (lasts[i] if last is None else max(last, lasts[i]),
                              sent_ids + min(n, EVIDENCE_IDS), sent_lines + min(n, EVIDENCE_LINES))
        evidence: list[dict[str, Any]] = [{} for _ in keys]
        for col, name in (("_ev_ids", "ids"), ("_ev_flownos", "flownos")):
            if col in names and want_ids:
                for i, values in zip(want_ids, gather(col, want_ids), strict=True):
                    evidence[i][name] = values
        if "_ev_sources" in names and want_lines:
            sources, line_nos = (gather(n, want_lines) for n in ("_ev_sources", "_ev_line_nos"))
            offsets = gather("_ev_offsets", want_lines) if "_ev_offsets" in names \
                else [[None] * len(x) for x in sources]
            for i, src, nos, offs in zip(want_lines, sources, line_nos, offsets, strict=True):
                evidence[i]["lines"] = [[a, b, o] for a, b, o in zip(src, nos, offs, strict=True)]
        out = []
        rule, key_type = c.id, c.key_type
        for i, key in enumerate(keys):
            peak = float(peaks[i])
            severity = severity_of(c, peak)
            assert severity is not None
            ev = evidence[i]
            for name in fact_names:
                ev[name] = facts[name][i]
            out.append(Match(rule, key_type, key, severity, firsts[i], crossings[i], lasts[i], int(counts[i]), peak,
                             ev))
        return out

    def fact_aggs(self) -> list[pl.Expr]:
        """Rule-specific facts for the alert (e.g. the distinct values seen), as aggregations over the events
        behind it; each named after the evidence key it fills."""
        return []


_UNIT_SCALE = {"us": 1, "ns": 1000}  # time units the small path compares as integers (per microsecond)


def _micros(delta: dt.timedelta) -> int:
    return delta // dt.timedelta(microseconds=1)


def _uncoded(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` without the hashes `_coded` added (the kept window holds the events as they came)."""
    return frame.drop([c for c in frame.columns if c.startswith(CODED)])


def _gathered(column: pl.Series, groups: list[list[int]]) -> list[list[Any]]:
    """The values of `column` at each group of rows, fetched in one gather."""
    flat = [i for g in groups for i in g]
    values = column[flat].to_list() if flat else []  # indexing by a list: no query
    out, at = [], 0
    for g in groups:
        out.append(values[at:at + len(g)])
        at += len(g)
    return out


def _rolling(frame: pl.DataFrame, keys: list[str], period: float, agg: pl.Expr) -> pl.DataFrame:
    """`agg` over (ts - period, ts] per key, joined back onto every event (events at one instant share it)."""
    rolled = (frame.rolling(index_column="ts", period=_us(period), group_by=keys).agg(agg.alias(_VALUE))
              .unique(subset=[*keys, "ts"], keep="last"))
    return frame.join(rolled, on=[*keys, "ts"], how="left", maintain_order="left")


def _asof(frame: pl.DataFrame, keys: list[str], at: pl.Expr, running: pl.DataFrame) -> pl.Series:
    """Per row of `frame`, the last `_run` of `running` (sorted by `_t`) at or before `at` for the row's key —
    the last of equal times, i.e. the running total after all of them; 0 before the first."""
    left = frame.select(*keys, at.alias("_t"))
    got = left.join_asof(running, on="_t", by=keys, strategy="backward", check_sortedness=False)
    return got.get_column("_run").fill_null(0)


def _scored_rows(frame: pl.DataFrame) -> pl.DataFrame:
    """The events of `frame` whose value is wanted: the new ones, the only ones that can be hot. The kept events
    still count in their windows, but are not scored again: in a long window they are most of the frame. A frame
    of new events only (a first batch, a window shorter than the gap between batches) is not copied."""
    new = frame.get_column(_NEW)
    return frame if new.all() else frame.filter(new)


def _with_value(frame: pl.DataFrame, values: pl.Series) -> pl.DataFrame:
    """`frame` with `_value`: `values` at the rows `_scored_rows` gave, in order, and null at the others."""
    if values.len() == frame.height:
        return frame.with_columns(values.alias(_VALUE))
    column = pl.repeat(None, frame.height, dtype=values.dtype, eager=True)
    column.scatter(frame.get_column(_NEW).arg_true(), values)
    return frame.with_columns(column.alias(_VALUE))


def _covering(frame: pl.DataFrame, keys: list[str], spans: pl.DataFrame) -> pl.DataFrame:
    """`frame` (sorted by ts) with `_value`: per key, how many of the half-open spans [_a, _b) of `spans` hold
    the event's ts (for the new events: `_with_value`). A sweep — +1 at each start, -1 at each end, a running
    sum per key read at each event time with an as-of join — so it costs a few sorts whatever the window holds."""
    steps = pl.concat([spans.select(*keys, pl.col("_a").alias("_t"), pl.lit(1, pl.Int64).alias("_d")),
                       spans.select(*keys, pl.col("_b").alias("_t"), pl.lit(-1, pl.Int64).alias("_d"))])
    running = steps.sort("_t").select(*keys, "_t", pl.col("_d").cum_sum().over(keys).alias("_run"))
    return _with_value(frame, _asof(_scored_rows(frame), keys, pl.col("ts"), running))


def _by_group(frame: pl.DataFrame, cols: list[str]) -> tuple[pl.DataFrame, pl.Expr]:
    """`frame` (sorted by ts) re-sorted by `cols` then ts, with `_i` its original row, and an expression true on
    the first row of each group: a sort, cheaper than `over` when the groups are many and small."""
    ordered = frame.with_row_index("_i").sort([*cols, "_i"])
    same = functools.reduce(lambda a, b: a & b, [pl.col(c).eq_missing(pl.col(c).shift(1)) for c in cols])
    return ordered, ~same.fill_null(False)


def _running_count(frame: pl.DataFrame, keys: list[str]) -> pl.Series:
    """1, 2, 3 ... per key in ts order (`frame` sorted by ts)."""
    if len(keys) == 1:  # one column: a window expression is cheaper than a sort
        return frame.select(pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over(keys).alias("_run")).to_series()
    ordered, first = _by_group(frame, keys)
    idx = pl.int_range(pl.len(), dtype=pl.Int64)
    start = pl.when(first).then(idx).forward_fill()
    return ordered.select("_i", (idx - start + 1).alias("_run")).sort("_i").get_column("_run")


def _previous_time(frame: pl.DataFrame, cols: list[str]) -> pl.Series:
    """The ts of the previous event with the same `cols` values (null for the first), in `frame`'s order."""
    ordered, first = _by_group(frame, cols)
    return ordered.select("_i", pl.when(~first).then(pl.col("ts").shift(1)).alias("_prev")).sort("_i") \
        .get_column("_prev")


def _count_in_window(frame: pl.DataFrame, keys: list[str], period: float) -> pl.DataFrame:
    """Events per key in (ts - period, ts]: the key's running count at ts less its running count at ts - period
    (`frame` is sorted by ts; for the new events: `_with_value`)."""
    running = frame.select(*keys, pl.col("ts").alias("_t")).with_columns(_running_count(frame, keys).alias("_run"))
    scored = _scored_rows(frame)
    upto = _asof(scored, keys, pl.col("ts"), running)
    before = _asof(scored, keys, pl.col("ts") - _delta(period), running)
    return _with_value(frame, upto - before)


def _distinct_in_window(frame: pl.DataFrame, keys: list[str], period: float, field: str) -> pl.DataFrame:
    """Distinct non-null `field` values per key in (ts - period, ts]. An event is its value's first occurrence
    in the windows ending in [max(ts, previous occurrence + period), ts + period): count those spans."""
    w = _delta(period)
    valued = frame.filter(pl.col(field).is_not_null())
    prev = _previous_time(valued, [*keys, field])
    spans = valued.select(*keys, pl.max_horizontal(pl.col("ts"), prev + w).alias("_a"), (pl.col("ts") + w).alias("_b"))
    return _covering(frame, keys, spans)


@dataclass(frozen=True, eq=False)
class Threshold:
    """Count of matching events per key in a sliding window (REGISTER floods, 403 bursts, calls per minute)."""

    common: Common
    type_name: ClassVar[str] = "threshold"

    def detector(self, ctx: Context, columns: set[str], stream: bool = False) -> WindowDetector | IncrementalDetector:
        c = self.common
        if stream:
            return IncrementalDetector(c, ctx, columns)

        class _D(WindowDetector):
            def score(self, frame: pl.DataFrame) -> pl.DataFrame:
                return _count_in_window(frame, self.by, c.window)

            def could_be_hot(self, most: int) -> bool:  # the value is a count of events
                return most >= lowest_level(c)

        d = _D(c, ctx, columns)
        d.small = "count"
        return d


class _FieldDetector(WindowDetector):
    """A window detector whose value aggregates one field of the events (distinct count, sum)."""

    def __init__(self, common: Common, ctx: Context, columns: set[str], field: str,
                 scorer: Callable[[pl.DataFrame, list[str], float], pl.DataFrame],
                 facts: list[pl.Expr] | None = None, counted: bool = False) -> None:
        check_columns(columns, (), [field])
        super().__init__(common, ctx, columns)
        self.field, self.scorer, self.facts = field, scorer, facts or []
        self.counted = counted  # the value never exceeds the count of events (distinct values)
        self.small = "distinct" if counted else None

    def could_be_hot(self, most: int) -> bool:
        return not self.counted or most >= lowest_level(self.common)

    def needed(self) -> list[str]:
        return [self.field]

    def score(self, frame: pl.DataFrame) -> pl.DataFrame:
        return self.scorer(frame, self.by, self.common.window)

    def fact_aggs(self) -> list[pl.Expr]:
        return self.facts

    def small_facts(self) -> dict[str, tuple[str, int, bool]]:
        return {self.field: (self.field, 20, False)} if self.small == "distinct" else {}


@dataclass(frozen=True, eq=False)
class Distinct:
    """Distinct values of `field` per key in a window (usernames per IP, destinations per account)."""

    common: Common
    field: str
    type_name: ClassVar[str] = "distinct"

    def detector(self, ctx: Context, columns: set[str], stream: bool = False) -> WindowDetector | IncrementalDetector:
        fld = self.field
        if stream:
            return DistinctIncremental(self.common, ctx, columns, field=fld, fact=(fld, 20, False))
        return _FieldDetector(self.common, ctx, columns, fld,
                              lambda frame, keys, period: _distinct_in_window(
                                  frame, keys, period, CODED + fld if CODED + fld in frame.columns else fld),
                              [pl.col(fld).drop_nulls().unique(maintain_order=True).head(20).alias(fld)], counted=True)


@dataclass(frozen=True, eq=False)
class Sum:
    """Sum of a numeric `field` per key in a window (spend per account, billed minutes)."""

    common: Common
    field: str
    type_name: ClassVar[str] = "sum"

    def check(self) -> None:
        from fraudwatch.detect.filters import field_kind

        kind = field_kind(self.field)
        if kind is not None and kind != "number":
            raise ParamError("field", f"'field' must be a numeric column, and '{self.field}' is {kind}")

    def detector(self, ctx: Context, columns: set[str], stream: bool = False) -> WindowDetector | IncrementalDetector:
        fld = self.field
        if stream:
            return SumIncremental(self.common, ctx, columns, field=fld)
        total = pl.col(fld).cast(pl.Float64).fill_null(0).sum()
        return _FieldDetector(self.common, ctx, columns, fld,
                              lambda frame, keys, period: _rolling(frame, keys, period, total))


@dataclass(frozen=True, eq=False)
class Spike:
    """Count in the window against the key's own recent rate: value = (count + 1) / (expected + 1), where
    expected is the count per window over the preceding `baseline`. `min_count` keeps quiet keys quiet."""

    common: Common
    baseline: Duration
    min_count: int = 10
    type_name: ClassVar[str] = "spike"

    def check(self) -> None:
        if self.baseline <= self.common.window:
            raise ValueError("'baseline' must be longer than 'window'")

    def detector(self, ctx: Context, columns: set[str], stream: bool = False) -> WindowDetector | IncrementalDetector:
        c, baseline, min_count = self.common, self.baseline, self.min_count
        if stream:
            return SpikeIncremental(c, ctx, columns, baseline, min_count)

        class _D(WindowDetector):
            def score(self, frame: pl.DataFrame) -> pl.DataFrame:
                now = _count_in_window(frame, self.by, c.window).rename({_VALUE: "_now"})
                both = _count_in_window(now, self.by, baseline).rename({_VALUE: "_long"})
                expected = (pl.col("_long") - pl.col("_now")) * (c.window / (baseline - c.window))
                ratio = (pl.col("_now") + 1) / (expected + 1)
                value = pl.when(pl.col("_now") >= min_count).then(ratio).otherwise(0.0)
                return both.with_columns(value.alias(_VALUE)).drop("_now", "_long")

            def could_be_hot(self, most: int) -> bool:
                # below min_count the value is 0; above, (now + 1) / (expected + 1) <= now + 1 (expected >= 0)
                level = lowest_level(c)
                return level <= 0 or (most >= min_count and most + 1 >= level)

        d = _D(c, ctx, columns)
        d.history = baseline
        return d


@dataclass(frozen=True, eq=False)
class ListMatch:
    """Events whose `field` matches a shipped or user list (scanner user-agents, high-risk prefixes), counted
    per key in the window; `match` is contains (case-insensitive substring), prefix (numbers) or exact."""

    common: Common
    field: str
    list: str
    match: str = "contains"
    type_name: ClassVar[str] = "list_match"

    def check(self) -> None:
        if self.match not in ("contains", "prefix", "exact"):
            raise ValueError("'match' must be contains, prefix or exact")

    def detector(self, ctx: Context, columns: set[str], stream: bool = False) -> WindowDetector | IncrementalDetector:
        from fraudwatch.detect.filters import load_list

        op = {"contains": {"list": self.list}, "prefix": {"prefix_list": self.list},
              "exact": {"in": list(load_list(ctx.lists_dir, self.list))}}[self.match]
        c, fld = self.common, self.field
        # the rule's own where, and the list
        conjuncts = sorted([*compile_conjuncts(c.where, ctx.lists_dir, columns),
                            *compile_conjuncts({fld: op}, ctx.lists_dir, columns)], key=lambda x: (x.costly, x.key))
        if stream:
            return IncrementalDetector(c, ctx, columns, conjuncts=conjuncts, fact=(fld, 10, True))

        class _D(WindowDetector):
            def needed(self) -> list[str]:
                return [fld]

            def score(self, frame: pl.DataFrame) -> pl.DataFrame:
                return _count_in_window(frame, self.by, c.window)

            def fact_aggs(self) -> list[pl.Expr]:
                return [pl.col(fld).unique(maintain_order=True).head(10).alias(fld)]

            def could_be_hot(self, most: int) -> bool:  # the value is a count of events
                return most >= lowest_level(c)

            def small_facts(self) -> dict[str, tuple[str, int, bool]]:
                return {fld: (fld, 10, True)}

        d = _D(c, ctx, columns)
        d.small = "count"
        d.conjuncts = conjuncts
        return d
