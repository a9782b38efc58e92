"""The new_term rule type: the first time a key is seen with a term (an account from a new IP or country, calling
a new country). Its state grows with keys and terms, so its frame detector serves replays and the watcher alike."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any, ClassVar

import polars as pl

from fraudwatch.detect.base import (
    Context,
    Match,
    column_rows,
    evidence_of,
    first_distinct,
    key_expr,
    severity_of,
    trust_evidence,
)
from fraudwatch.detect.filters import EAGER_ROWS, Conjunct, Selection, compile_conjuncts, select, where_fields
from fraudwatch.detect.spec import Duration
from fraudwatch.detect.types.base import RuleType
from fraudwatch.detect.types.filtered import Filtered, any_selected

FORGET = Duration(90 * 86400)  # new_term: a term not learned again for this long is new again


@dataclass
class _Sighting:
    """A new term's first sighting, kept while it is inside the window."""

    ts: dt.datetime
    term: tuple[Any, ...]
    row: int | None  # row in the current batch's selection (None once that batch is done)
    counted: bool = False


@dataclass
class _Episode:
    first_seen: dt.datetime
    detected_at: dt.datetime
    last_seen: dt.datetime
    peak: float
    behind: list[_Sighting]
    known_before: int


PRUNE_EVERY = dt.timedelta(hours=1)  # of event time, between sweeps of forgotten terms


class NewTermDetector(Filtered):
    def __init__(self, rule: NewTerm, ctx: Context, columns: set[str]) -> None:
        super().__init__(rule.common, ctx, columns, list(rule.terms))
        self.rule = rule
        self.learn_conjuncts = None if rule.learn_where is None else \
            compile_conjuncts(rule.learn_where, ctx.lists_dir, columns)
        self.born: dict[str, dt.datetime] = {}  # key -> its first learning event
        self.known: dict[str, dict[tuple[Any, ...], dt.datetime]] = {}  # key -> learned term -> last learned
        self.judged: dict[str, dict[tuple[Any, ...], dt.datetime]] = {}  # key -> term scored new, unlearned
        self.recent: dict[str, deque[_Sighting]] = defaultdict(deque)
        self.pruned: dt.datetime | None = None
        # learn_unknown: key -> its last learning event without a term (an address without a country)
        self.unknown: dict[str, dt.datetime] = {}

    def _pairs(self, frame: pl.DataFrame) -> pl.DataFrame:
        terms = list(self.rule.terms)
        if any(frame.get_column(t).null_count() for t in terms):
            frame = frame.filter(pl.all_horizontal(pl.col(t).is_not_null() for t in terms))
        return self._keyed(frame)

    def _keyed(self, frame: pl.DataFrame) -> pl.DataFrame:
        key = self.common.key
        if len(key) == 1 and frame.schema[key[0]] == pl.String and not frame.get_column(key[0]).null_count():
            return frame.hstack([frame.get_column(key[0]).alias("_key")])  # the key text is the value
        return frame.with_columns(key_expr(key).alias("_key"))

    def _known(self, table: dict[str, dict[tuple[Any, ...], dt.datetime]], key: str, term: tuple[Any, ...],
               ts: dt.datetime) -> bool:
        last = table.get(key, {}).get(term)
        return last is not None and ts - last <= dt.timedelta(seconds=self.rule.forget)

    def conditions(self) -> list[list[Conjunct]]:
        return [self.conjuncts] if self.learn_conjuncts is None else [self.conjuncts, self.learn_conjuncts]

    def _bear(self, firsts: list[tuple[str, dt.datetime]]) -> None:
        """A key is born at its first learning event (again, once everything it knew is forgotten)."""
        forget = dt.timedelta(seconds=self.rule.forget)
        for key, first in firsts:
            if key in self.born and self.known.get(key):
                continue
            unknown = self.unknown.get(key)
            if key not in self.born or unknown is None or first - unknown > forget:
                self.born[key] = first

    def _unknown_learning(self, events: pl.DataFrame, selection: Selection | None) -> list[tuple[str, dt.datetime]]:
        """learn_unknown: every key's first learning event in the batch, with or without a term (which `_bear`
        takes), after noting each key's last one without a term."""
        raw = self._keyed(self.select(events, selection) if self.learn_conjuncts is None
                          else select(events, self.learn_conjuncts, selection))
        if not raw.height:
            return []
        missing = pl.any_horizontal(pl.col(t).is_null() for t in self.rule.terms)
        firsts = list(raw.group_by("_key").agg(pl.col("ts").min()).iter_rows())
        self._bear(firsts)
        for key, last in raw.filter(missing).group_by("_key").agg(pl.col("ts").max()).iter_rows():
            if key not in self.unknown or last > self.unknown[key]:
                self.unknown[key] = last
        return firsts

    def learn_only(self, events: pl.DataFrame) -> None:
        """Learn the terms of a batch of past (enriched, time-ordered) events without scoring them: what a run over
        the store's history would have learned, for a watcher that starts on it (so its first day is not blind
        again). Keys are born at their first learning event, as `process` has them."""
        if self.rule.learn_unknown:
            self._unknown_learning(events, None)
        learning = self._pairs(self.select(events) if self.learn_conjuncts is None
                               else select(events, self.learn_conjuncts))  # as `process` picks them
        if not learning.height:
            return
        self._bear(list(learning.group_by("_key").agg(pl.col("ts").min()).iter_rows()))
        self._learn(learning)

    def process(self, events: pl.DataFrame, selection: Selection | None = None) -> list[Match]:
        c, terms = self.common, list(self.rule.terms)
        if selection is None or selection.frame is not events:
            selection = Selection(events)
        if not any_selected(selection, self.conjuncts) and (self.learn_conjuncts is None
                                                    or not any_selected(selection, self.learn_conjuncts)):
            return []  # nothing to score and nothing to learn: no frame work
        if self.rule.learn_unknown:
            self._unknown_learning(events, selection)
        sel = self._pairs(self.select(events, selection)).with_row_index("_row")
        learning = sel if self.learn_conjuncts is None else self._pairs(select(events, self.learn_conjuncts,
                                                                               selection))
        learn, forget = dt.timedelta(seconds=self.rule.learn), dt.timedelta(seconds=self.rule.forget)
        small = sel.height + learning.height <= EAGER_ROWS and not sel.get_column("ts").null_count() \
            and not learning.get_column("ts").null_count()
        taught_small: dict[tuple[Any, ...], dt.datetime] = {}  # (key, *term) -> first learning event
        if small:  # the same in plain Python: no queries' fixed cost
            for key, *rest in zip(*(learning.get_column(n).to_list() for n in ("_key", *terms, "ts")), strict=True):
                pair, ts = (key, *rest[:-1]), rest[-1]
                if pair not in taught_small or ts < taught_small[pair]:
                    taught_small[pair] = ts
            born_small: dict[str, dt.datetime] = {}
            for (key, *_), ts in taught_small.items():
                if key not in born_small or ts < born_small[key]:
                    born_small[key] = ts
            born_rows = list(born_small.items())
        else:
            born_rows = list(learning.group_by("_key").agg(pl.col("ts").min()).iter_rows())
        self._bear(born_rows)
        if not sel.height:
            self._learn(learning)
            return []
        # (key -> term -> first learning event in this batch), for how many terms a key knew before an episode
        taught_in_batch: dict[str, dict[tuple[Any, ...], dt.datetime]] = defaultdict(dict)
        if small:
            firsts_rows = self._firsts_small(sel, taught_small, learn)
            for pair, ts in taught_small.items():
                taught_in_batch[str(pair[0])][pair[1:]] = ts
        else:
            ready = pl.DataFrame({"_key": list(self.born), "_ready": [b + learn for b in self.born.values()]},
                                 schema={"_key": pl.Utf8, "_ready": sel.schema["ts"]})
            # each (key, term)'s first scored sighting once the key has learned; and its first learning event
            firsts = sel.join(ready, on="_key").filter(pl.col("ts") >= pl.col("_ready")) \
                .group_by(["_key", *terms]).agg(pl.col("ts").min().alias("_first"),
                                                pl.col("_row").sort_by("ts").first())
            taught = learning.group_by(["_key", *terms]).agg(pl.col("ts").min().alias("_taught"))
            firsts = firsts.join(taught, on=["_key", *terms], how="left", nulls_equal=True)
            firsts_rows = column_rows(firsts.sort("_first", "_row"))
            for row in column_rows(taught.join(firsts.select("_key").unique(), on="_key", how="semi")):
                taught_in_batch[str(row["_key"])][tuple(row[t] for t in terms)] = row["_taught"]
        window, cooldown = dt.timedelta(seconds=c.window), dt.timedelta(seconds=c.cooldown)
        episodes: dict[str, list[_Episode]] = defaultdict(list)
        for row in firsts_rows:
            key, ts = row["_key"], row["_first"]
            term = tuple(row[t] for t in terms)
            taught_at = row["_taught"]
            if taught_at is not None and taught_at < ts:
                continue  # learned before it was scored
            if self._known(self.known, key, term, ts) or self._known(self.judged, key, term, ts):
                continue
            self.judged.setdefault(key, {})[term] = ts
            recent = self.recent[key]
            recent.append(_Sighting(ts, term, row["_row"]))
            while recent[0].ts <= ts - window:
                recent.popleft()
            value = float(len(recent))
            if severity_of(c, value) is None:
                continue
            behind = [s for s in recent if not s.counted]
            for s in behind:
                s.counted = True
            start = behind[0].ts if behind else ts
            mine = episodes[key]
            if mine and start - mine[-1].last_seen <= cooldown:
                mine[-1].last_seen, mine[-1].peak = ts, max(mine[-1].peak, value)
                mine[-1].behind += behind
            else:
                mine.append(_Episode(start, ts, ts, value, behind, self._known_before(key, start, taught_in_batch)))
        self._learn(learning)
        out: list[Match] = []
        for key, items in episodes.items():
            for e in items:
                severity = severity_of(c, e.peak)
                assert severity is not None
                rows = sel[[s.row for s in e.behind if s.row is not None]].sort("ts")
                ev = evidence_of(rows)
                ev["new_terms"] = [list(s.term) for s in e.behind][:20]
                ev["known_terms"] = e.known_before
                if "src_country" in rows.columns and "src_country" not in terms:  # where new addresses are
                    countries = first_distinct(rows.get_column("src_country").to_list())
                    if countries:
                        ev["src_countries"] = countries
                ev.update(trust_evidence(rows, c))
                out.append(Match(c.id, c.key_type, key, severity, e.first_seen, e.detected_at, e.last_seen,
                                 len(e.behind), e.peak, ev))
        for recent in self.recent.values():
            for s in recent:
                s.row = None
        newest = sel.get_column("ts").max()
        if isinstance(newest, dt.datetime) and (self.pruned is None or newest - self.pruned >= PRUNE_EVERY):
            self._prune(newest - forget, newest - window)
            self.pruned = newest
        return out

    def _known_before(self, key: str, start: dt.datetime,
                      taught_in_batch: dict[str, dict[tuple[Any, ...], dt.datetime]]) -> int:
        """The terms `key` knew before `start`: those of earlier batches, and those this batch taught earlier
        (so the count does not depend on where the stream was cut into batches)."""
        known = self.known.get(key, {})
        return len(known) + sum(1 for term, ts in taught_in_batch.get(key, {}).items()
                                if ts < start and term not in known)

    def _firsts_small(self, sel: pl.DataFrame, taught: dict[tuple[Any, ...], dt.datetime],
                      learn: dt.timedelta) -> list[dict[str, Any]]:
        """Each (key, term)'s first scored sighting once its key has learned (`_first`, `_row`), with its first
        learning event in the batch (`_taught`), sorted by (`_first`, `_row`): the frame version's rows."""
        terms = list(self.rule.terms)
        firsts: dict[tuple[Any, ...], dict[str, Any]] = {}
        columns = (sel.get_column(n).to_list() for n in ("_key", *terms, "ts", "_row"))
        for key, *rest in zip(*columns, strict=True):
            values, ts, row = rest[:-2], rest[-2], rest[-1]
            born = self.born.get(key)
            if born is None or ts < born + learn:
                continue
            pair = (key, *values)
            got = firsts.get(pair)
            if got is None or ts < got["_first"]:  # the earliest; the first row of equal times
                firsts[pair] = {"_key": key, **dict(zip(terms, values, strict=True)), "_first": ts, "_row": row,
                                "_taught": taught.get(pair)}
        return sorted(firsts.values(), key=lambda r: (r["_first"], r["_row"]))

    def _learn(self, learning: pl.DataFrame) -> None:
        terms = list(self.rule.terms)
        if learning.height <= EAGER_ROWS and not learning.get_column("ts").null_count():
            latest: dict[tuple[Any, ...], dt.datetime] = {}
            for key, *rest in zip(*(learning.get_column(n).to_list() for n in ("_key", *terms, "ts")), strict=True):
                pair, ts = (key, *rest[:-1]), rest[-1]
                if pair not in latest or ts > latest[pair]:
                    latest[pair] = ts
            for pair, ts in latest.items():
                learned = tuple(pair[1:])
                mine = self.known.setdefault(pair[0], {})
                before = mine.get(learned)
                mine[learned] = ts if before is None else max(before, ts)
                self.judged.get(pair[0], {}).pop(learned, None)
            return
        for row in column_rows(learning.group_by(["_key", *terms]).agg(pl.col("ts").max())):
            term = tuple(row[t] for t in terms)
            mine = self.known.setdefault(row["_key"], {})
            last = mine.get(term)
            mine[term] = row["ts"] if last is None else max(last, row["ts"])
            self.judged.get(row["_key"], {}).pop(term, None)

    def _prune(self, forgotten: dt.datetime, stale: dt.datetime) -> None:
        """Drop terms not learned (or scored) since `forgotten`, keys left with none, and sightings out of the
        window — what `_known` would no longer count anyway."""
        for table in (self.known, self.judged):
            for key in list(table):
                table[key] = {t: last for t, last in table[key].items() if last >= forgotten}
                if not table[key]:
                    del table[key]
        self.unknown = {k: last for k, last in self.unknown.items() if last >= forgotten}
        for key in [k for k in self.born if k not in self.known and k not in self.judged and k not in self.unknown]:
            del self.born[key]
        for key in list(self.recent):
            recent = self.recent[key]
            while recent and recent[0].ts <= stale:
                recent.popleft()
            if not recent:
                del self.recent[key]


@dataclass(frozen=True, eq=False)
class NewTerm(RuleType):
    """First time a key is seen with a term (an account from a new IP or country, calling a new country).

    Terms are learned from the events matching `learn_where` (default: the rule's own `where`). A key's terms
    are learned silently for `learn` after its first learning event; after that an event matching `where` with
    a term the key has not learned is scored, once per (key, term): the value is the number of the key's new
    terms within `window` up to it. With a `learn_where` narrower than `where`, the scored-only events (say,
    wrong passwords) never teach a term, so an attacker's address is not learned as the account's. A term
    not learned again for `forget` is forgotten (new again), and a key whose terms are all forgotten starts
    learning again (so a long-running watcher's memory stays bounded; this holds to within one batch). A
    match's events are the first sightings of the new terms; episodes split on `cooldown`, as the alert book
    does across batches.

    Events whose term is missing (an address without a country) are neither learned nor scored; with
    `learn_unknown` they still start and keep up the key's learning, so a key seen only without a term (an
    account calling from private or documentation addresses) has learned that it has none, and its first term
    after `learn` is new (its first call from an address abroad)."""

    terms: tuple[str, ...]
    learn: Duration
    learn_where: dict[str, Any] | None = None
    forget: Duration = FORGET
    learn_unknown: bool = False
    type_name: ClassVar[str] = "new_term"

    def fields(self) -> tuple[str, ...]:
        return (*self.terms, *sorted(where_fields(self.learn_where)))

    def frame_detector(self, ctx: Context, columns: set[str]) -> NewTermDetector:
        if not self.common.key:
            raise ValueError("new_term needs a 'key'")
        return NewTermDetector(self, ctx, columns)
