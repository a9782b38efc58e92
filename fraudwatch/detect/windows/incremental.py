"""Sliding windows kept incrementally, for the watcher: the same scores, matches and evidence as the frame
detectors of `fraudwatch.detect.windows.frame` (see its docstring for the semantics), at a cost that follows the batch.

The frame detectors score a batch together with the events still inside their windows, with frame operations:
quick on a replay's big steps, but a watcher fed small batches during a flood would re-read the flood's last
minute on every batch. Here each key keeps the times (and values) of its events inside the window and its
events not yet behind a match, and a batch only adds its own events and drops those that left the window.
Keys whose events have all left the window are forgotten, and a detector holding more than `KEPT_EVENTS`
events (a flood into a long window) shortens its windows by halves until it holds no more than that, with a
warning, and counts how often it had to (`shortened`): the watcher's memory stays bounded at any input rate.
The live-versus-replay and batch-invariance tests hold both kinds to the same alerts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from fraudwatch.detect.base import (
    EVIDENCE_COLUMNS,
    EVIDENCE_IDS,
    EVIDENCE_KEPT,
    EVIDENCE_LINES,
    LINES_KEPT,
    TRUST_COLUMN,
    TRUST_FACT,
    TRUST_KEPT,
    Context,
    Match,
    check_columns,
    key_expr,
    lowest_level,
    severity_of,
    wants_trust,
)
from fraudwatch.detect.filters import Conjunct, Selection, compile_conjuncts
from fraudwatch.detect.spec import Common

log = logging.getLogger(__name__)

KEPT_EVENTS = 2_000_000  # events a detector keeps in its windows at most (its memory bound under a flood)
_COMPACT = 64  # a key's lists drop their expired head once it is this long and half of the list


def to_micros(seconds: float) -> int:
    return round(seconds * 1_000_000)


class KeyWindow:
    """One key's window. `times` holds its events' times from `head` on (the longest window: `history`), `win`
    is where the scored window starts among them, `tally` is the type's running aggregate (distinct values'
    counts, a sum), `values` the events' values (distinct, sum). `rows` are the evidence rows of the events
    not yet behind a match: `rows[i]` is the event at `times[mark + i]` (only those from `win` on count)."""

    __slots__ = ("head", "last", "mark", "rows", "tally", "times", "values", "win")

    def __init__(self) -> None:
        self.times: list[int] = []
        self.head = self.win = self.mark = 0
        self.values: list[Any] = []
        self.tally: Any = None
        self.rows: list[tuple[Any, ...]] = []
        self.last = 0

    def compact(self) -> None:
        """Drop the expired head of the lists, and the pending rows that left the window."""
        h = self.head
        if h > _COMPACT and 2 * h > len(self.times):
            del self.times[:h]
            if self.values:
                del self.values[:h]
            self.mark -= h
            self.win -= h
            self.head = h = 0
        if self.mark < self.win:
            del self.rows[:self.win - self.mark]
            self.mark = self.win

    def held(self) -> int:
        return len(self.times) - self.head + len(self.rows)


@dataclass
class _Episode:
    """A key's run of hot events within one batch (see the module docstring), in microseconds."""

    key: str
    first: int  # first event behind it
    crossing: int  # its first hot event
    last: int  # its last hot event
    peak: float
    count: int = 0
    rows: list[tuple[Any, ...]] = field(default_factory=list)  # the first EVIDENCE_IDS evidence rows behind it
    facts: dict[Any, None] = field(default_factory=dict)  # distinct fact values behind it, in order
    trusted: dict[Any, None] = field(default_factory=dict)  # distinct trusted addresses behind it, in order


def _fill(facts: dict[Any, None], taken: list[tuple[Any, ...]], most: int, nulls: bool, at: int = -1) -> None:
    """Add the distinct fact values (the rows' field `at`, by default the last) of `taken` to `facts`, up to
    `most`."""
    for row in taken:
        v = row[at]
        if nulls or v is not None:
            facts.setdefault(v)
            if len(facts) >= most:
                return


class IncrementalDetector:
    """Scores events on per-key windows kept incrementally; subclasses say what a window's value is (`_add`,
    `_trim`, `_measure`; a spike its own `_value`). The base class counts events."""

    history: float  # seconds of events to keep (the window, or a spike's baseline)
    field: str | None  # the events' field the value is made of (distinct, sum), None for counts
    fact: tuple[str, int, bool] | None  # evidence fact: (field, distinct values kept, nulls included)

    def __init__(self, common: Common, ctx: Context, columns: set[str], conjuncts: list[Conjunct] | None = None,
                 field: str | None = None, fact: tuple[str, int, bool] | None = None) -> None:
        check_columns(columns, common.key, [f for f in (field, fact[0] if fact else None) if f])
        self.common = common
        self.conjuncts = compile_conjuncts(common.where, ctx.lists_dir, columns) if conjuncts is None else conjuncts
        self.field, self.fact = field, fact
        self.trust = wants_trust(common)  # its matches say which trusted addresses were behind them
        self.keys = list(common.key)
        self.history = common.window
        self.window, self.cooldown = to_micros(common.window), to_micros(common.cooldown)
        self.level = lowest_level(common)
        self.state: dict[str, KeyWindow] = {}
        # key -> (last hot event, event ids and lines sent) of its open episode: see _assemble
        self.sent: dict[str, tuple[int, int, int]] = {}
        self.swept: int | None = None  # event time of the last sweep (see _sweep)
        self.check_at = KEPT_EVENTS // 4  # events added since the last sweep that call for the next
        self.added = 0
        self.shortened = 0  # sweeps that had to shorten the windows to stay within KEPT_EVENTS

    def conditions(self) -> list[list[Conjunct]]:
        return [self.conjuncts]

    def needed(self) -> list[str]:
        """Columns this detector reads besides ts and the key."""
        return [self.field] if self.field else []

    # --- the window's value: counts here, overridden by the other types ---------------------------------------

    valued = False  # whether `_add` keeps the events' values

    def _add(self, st: KeyWindow, v: Any) -> None:
        """Keep an event's value (its time is in `st.times` already)."""

    def _trim(self, st: KeyWindow, cut: int) -> None:
        """Move the head past the times at or before `cut` (the newest time is after it)."""
        times, h = st.times, st.head
        while times[h] <= cut:
            h += 1
        st.head = h

    def _value(self, st: KeyWindow, t: int) -> float:
        """The value of the window ending at `t` (an instant of this key); sets where the window starts."""
        self._trim(st, t - self.window)
        st.win = st.head
        return self._measure(st)

    def _measure(self, st: KeyWindow) -> float:
        """The value of the window from `st.head` on."""
        return len(st.times) - st.head

    # --- one batch -------------------------------------------------------------------------------------------

    def _columns(self, columns: list[str]) -> list[str]:
        wanted = ["ts", *self.keys, *self.needed(), *EVIDENCE_COLUMNS, *([self.fact[0]] if self.fact else []),
                  *([TRUST_COLUMN] if self.trust else [])]
        return [c for c in dict.fromkeys(wanted) if c in columns]

    def process(self, events: pl.DataFrame, selection: Selection | None = None) -> list[Match]:
        if selection is None or selection.frame is not events:
            selection = Selection(events)
        sel = self.selected(events, selection, self._columns(events.columns))
        if sel is None:
            return []
        episodes = self._run(sel)
        return self._assemble(episodes, sel.schema["ts"], set(sel.columns)) if episodes else []

    def selected(self, events: pl.DataFrame, selection: Selection, columns: list[str]) -> pl.DataFrame | None:
        """The rule's events of the batch (`columns` of them) with a time and a key, in time order; None if none."""
        mask = selection.mask(self.conjuncts)
        if not (events.height if mask is None else mask.any()):  # nothing selected: nothing changes
            return None
        sel = selection(self.conjuncts, columns)
        needed = ["ts", *self.keys]
        if any(sel.get_column(k).null_count() for k in needed):
            sel = sel.filter(pl.all_horizontal(pl.col(k).is_not_null() for k in needed))
        if not sel.height:
            return None
        return sel if sel.get_column("ts").is_sorted() else sel.sort("ts", maintain_order=True)

    def _key_texts(self, sel: pl.DataFrame) -> list[str]:
        if not self.keys:
            return ["*"] * sel.height
        if len(self.keys) == 1 and sel.schema[self.keys[0]] == pl.String:
            return sel.get_column(self.keys[0]).to_list()
        return sel.select(key_expr(self.common.key)).to_series().to_list()

    def _run(self, sel: pl.DataFrame) -> list[_Episode]:
        """Add the batch's events to their keys' windows, key by key in time order, scoring each key once per
        instant (after all its events at that instant); a hot key takes its pending events still inside the
        window (older ones can never be taken: a later hot event's window starts later still)."""
        n = sel.height
        times: list[int] = sel.get_column("ts").dt.epoch("us").to_list()
        values: list[Any] = sel.get_column(self.field).to_list() if self.field else []
        # evidence columns, the fact (last), and before it the trusted address when asked for
        trust = self.trust and TRUST_COLUMN in sel.columns
        wanted = [*EVIDENCE_COLUMNS, *([TRUST_COLUMN] if trust else []), *([self.fact[0]] if self.fact else [])]
        trust_at = len(EVIDENCE_COLUMNS) if trust else None
        rows = list(zip(*(sel.get_column(c).to_list() if c in sel.columns else [None] * n for c in wanted),
                        strict=True))
        by_key: dict[str, list[int]] = {}
        for j, k in enumerate(self._key_texts(sel)):
            got = by_key.get(k)
            if got is None:
                by_key[k] = [j]
            else:
                got.append(j)
        state, level, cooldown, valued = self.state, self.level, self.cooldown, self.valued
        add, value_of, fact = self._add, self._value, self.fact
        episodes: list[_Episode] = []
        for k, idx in by_key.items():
            st = state.get(k)
            if st is None:
                st = state[k] = KeyWindow()
            tl, rw = st.times, st.rows
            ep: _Episode | None = None
            last = len(idx) - 1
            for p, j in enumerate(idx):
                t = times[j]
                tl.append(t)
                rw.append(rows[j])
                if valued:
                    add(st, values[j])
                if p < last and times[idx[p + 1]] == t:
                    continue  # scored once all events of this instant are in
                value = value_of(st, t)
                if value < level:
                    continue
                first = max(st.mark, st.win)
                taken = rw[first - st.mark:]
                st.rows = rw = []
                st.mark = len(tl)
                start = tl[first] if taken else t
                if ep is None or start - ep.last > cooldown:
                    ep = _Episode(k, start, t, t, value)
                    episodes.append(ep)
                ep.last, ep.peak, ep.count = t, max(ep.peak, value), ep.count + len(taken)
                if len(ep.rows) < EVIDENCE_IDS:
                    ep.rows.extend(taken[:EVIDENCE_IDS - len(ep.rows)])
                if fact is not None and len(ep.facts) < fact[1]:
                    _fill(ep.facts, taken, fact[1], fact[2])
                if trust_at is not None and len(ep.trusted) < TRUST_KEPT:
                    _fill(ep.trusted, taken, TRUST_KEPT, False, trust_at)
            st.last = tl[-1]
            st.compact()
        self._after(times[-1], n)
        return episodes

    def _after(self, newest: int, added: int) -> None:
        """Bookkeeping after a batch: sweep now and then."""
        self.added += added
        if self.swept is None:
            self.swept = newest
        elif self.added >= self.check_at or newest - self.swept >= to_micros(self.history) // 2:
            self._sweep(newest)

    def _sweep(self, newest: int) -> None:
        """Forget keys whose events have all left the window and episodes that cannot continue, drop what expired
        from the other keys, and when more than KEPT_EVENTS remain, shorten the windows (halving) until no more
        than that remains."""
        horizon = newest - self.window - self.cooldown  # an episode whose last hot event is older has ended
        self.sent = {k: v for k, v in self.sent.items() if v[0] >= horizon}
        span = to_micros(self.history)
        state = self.state
        while True:
            cut = newest - span
            for k in [k for k, st in state.items() if st.last <= cut]:
                del state[k]
            held = 0
            for st in state.values():
                self._trim(st, cut)
                st.win = max(st.win, st.head)
                st.compact()
                held += st.held()
            if held <= KEPT_EVENTS or span <= 1_000_000:
                break
            span //= 2
            self.shortened += 1
            log.warning("rule %s: more than %d events in its windows; keeping the last %.0f s of them",
                        self.common.id, KEPT_EVENTS, span / 1e6)
        self.swept, self.added, self.check_at = newest, 0, max(KEPT_EVENTS // 4, held)

    # --- matches ---------------------------------------------------------------------------------------------

    def _assemble(self, episodes: list[_Episode], dtype: pl.DataType, columns: set[str]) -> list[Match]:
        """The matches of a batch's episodes, by crossing. An episode continuing the key's alert (within
        `cooldown` of its last hot event, the alert book's test) carries no event pointers once the alert holds
        all it keeps, so a flood of many keys over many batches does not convert and merge lists no one keeps."""
        c = self.common
        out = []
        episodes = sorted(episodes, key=lambda e: (e.crossing, e.key))
        # microseconds to the events' own datetimes (time zone included), in one conversion
        tz = getattr(dtype, "time_zone", None)
        stamps = pl.Series([t for e in episodes for t in (e.first, e.crossing, e.last)], dtype=pl.Int64) \
            .cast(pl.Datetime("us", tz)).to_list()
        ids = [(name, at) for name, at in (("ids", 0), ("flownos", 1)) if EVIDENCE_COLUMNS[at] in columns]
        lines = {"source", "line_no"} <= columns
        for i, ep in enumerate(episodes):
            last, sent_ids, sent_lines = self.sent.get(ep.key, (None, 0, 0))
            if last is None or ep.first - last > self.cooldown:
                sent_ids = sent_lines = 0
            self.sent[ep.key] = (ep.last if last is None else max(last, ep.last),
                                 sent_ids + min(ep.count, EVIDENCE_IDS), sent_lines + min(ep.count, EVIDENCE_LINES))
            evidence: dict[str, Any] = {}
            if sent_ids < EVIDENCE_KEPT:
                for name, at in ids:
                    evidence[name] = [r[at] for r in ep.rows]
            if sent_lines < LINES_KEPT and lines:
                evidence["lines"] = [[r[2], r[3], r[4]] for r in ep.rows[:EVIDENCE_LINES]]
            if self.fact is not None:
                evidence[self.fact[0]] = list(ep.facts)
            if ep.trusted:
                evidence[TRUST_FACT] = list(ep.trusted)
            severity = severity_of(c, ep.peak)
            assert severity is not None
            out.append(Match(rule=c.id, key_type=c.key_type, key=ep.key, severity=severity,
                             first_seen=stamps[3 * i], detected_at=stamps[3 * i + 1], last_seen=stamps[3 * i + 2],
                             count=ep.count, value=float(ep.peak),
                             evidence=evidence))
        return out
