"""The frame detectors' plain-Python path (`WindowDetector.process`): counts and distinct counts on frames (kept
and new events) of at most `frame.SMALL` rows, without the fixed cost of some twenty frame operations."""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl

from fraudwatch.detect.base import EVIDENCE_IDS, EVIDENCE_LINES, Match, lowest_level
from fraudwatch.detect.spec import Common
from fraudwatch.detect.windows.arith import COUNTED, NEW, UNIT_SCALE, delta, gathered, micros
from fraudwatch.detect.windows.evidence import EpisodeMatches


def score_small(frame: pl.DataFrame, common: Common, key_columns: list[str], field: str | None,
                facts: dict[str, tuple[str, int, bool]], episodes_out: EpisodeMatches
                ) -> tuple[pl.DataFrame, list[Match]]:
    """`WindowDetector.score` and `_matches` in plain Python, for frames (kept and new events) of at most SMALL
    rows: the same values, flags, episodes and evidence, without the fixed cost of some twenty frame operations.
    Only for counts and distinct counts of `field` (None: counts); `facts` are the detector's `small_facts`, and
    `episodes_out` makes the matches. Times are compared as integers of the column's unit, and only the keys of
    new events are looked at."""
    c = common
    scale = UNIT_SCALE[frame.schema["ts"].time_unit]  # type: ignore[attr-defined]
    window, cooldown = micros(delta(c.window)) * scale, micros(delta(c.cooldown)) * scale
    level = lowest_level(c)
    n = frame.height
    ts_column = frame.get_column("ts")
    ts: list[int] = ts_column.cast(pl.Int64).to_list()
    new: list[bool] = frame.get_column(NEW).to_list()
    if key_columns == ["_global"]:
        keys = ["*"] * n
    else:
        parts = [frame.get_column(k).to_list() for k in key_columns]
        keys = parts[0] if len(parts) == 1 else ["|".join(p) for p in zip(*parts, strict=True)]
    fresh = {keys[i] for i in range(n) if new[i]}
    rows_of: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        if k in fresh:
            rows_of.setdefault(k, []).append(i)
    values: list[Any] | None = None
    if field is not None:
        wanted = [i for rows in rows_of.values() for i in rows]
        got = frame.get_column(field)[wanted].to_list() if wanted else []
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
    counted: list[bool] = frame.get_column(COUNTED).to_list()
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
        lists[name] = gathered(frame.get_column(column), [e["_rows"][:head] for e in episodes])
    facts = facts
    for name, (fact, head, nulls) in facts.items():
        per_episode = gathered(frame.get_column(fact), [e["_rows"] for e in episodes])
        lists[name] = [list(dict.fromkeys(v for v in got if nulls or v is not None))[:head]
                       for got in per_episode]
    times = gathered(ts_column, [[e["_first"], e["_crossing"], e["_last"]] for e in episodes])
    for j, name in enumerate(("_first", "_crossing", "_last")):
        lists[name] = [t[j] for t in times]
    for name in ("_key", "_count", "_peak"):
        lists[name] = [e[name] for e in episodes]
    matches = episodes_out.from_lists(lists, list(facts))
    newest: dt.datetime = ts_column.max()  # type: ignore[assignment]
    episodes_out.forget(newest)
    for i in taken:
        counted[i] = True
    frame = frame.clone()
    frame.replace_column(frame.get_column_index(COUNTED), pl.Series(COUNTED, counted, dtype=pl.Boolean))
    return frame, matches
