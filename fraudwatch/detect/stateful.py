"""Rule types whose memory is not a sliding window: new_term, seasonal and credit_limit.

Their state grows with keys and terms, not with the events of a window, so one detector serves replays and the
watcher alike (`stream` is accepted and changes nothing)."""

from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any, ClassVar

import polars as pl

from fraudwatch.detect.base import (
    Context,
    Match,
    check_columns,
    column_rows,
    evidence_of,
    key_expr,
    key_text,
    severity_of,
)
from fraudwatch.detect.filters import EAGER_ROWS, Selection, compile_conjuncts, select
from fraudwatch.detect.spec import Common, Duration


class _Filtered:
    def __init__(self, common: Common, ctx: Context, columns: set[str], fields: list[str]) -> None:
        check_columns(columns, common.key, fields)
        self.common = common
        self.conjuncts = compile_conjuncts(common.where, ctx.lists_dir, columns)
        self.keys = list(common.key)

    def select(self, events: pl.DataFrame, selection: Selection | None = None) -> pl.DataFrame:
        sel = select(events, self.conjuncts, selection)
        if not self.keys or not any(sel.get_column(k).null_count() for k in self.keys):
            return sel
        return sel.filter(pl.all_horizontal(pl.col(k).is_not_null() for k in self.keys))


def _any(selection: Selection, conjuncts: list[Any]) -> bool:
    """Whether any event of the selection's batch meets `conjuncts` (from the batch's memoised masks)."""
    mask = selection.mask(conjuncts)
    return bool(selection.frame.height if mask is None else mask.any())


FORGET = Duration(90 * 86400)  # new_term: a term not learned again for this long is new again


@dataclass(frozen=True, eq=False)
class NewTerm:
    """First time a key is seen with a term (an account from a new IP or country, calling a new country).

    Terms are learned from the events matching `learn_where` (default: the rule's own `where`). A key's terms
    are learned silently for `learn` after its first learning event; after that an event matching `where` with
    a term the key has not learned is scored, once per (key, term): the value is the number of the key's new
    terms within `window` up to it. With a `learn_where` narrower than `where`, the scored-only events (say,
    wrong passwords) never teach a term, so an attacker's address is not learned as the account's. A term
    not learned again for `forget` is forgotten (new again), and a key whose terms are all forgotten starts
    learning again (so a long-running watcher's memory stays bounded; this holds to within one batch). A
    match's events are the first sightings of the new terms; episodes split on `cooldown`, as the alert book
    does across batches."""

    common: Common
    terms: tuple[str, ...]
    learn: Duration
    learn_where: dict[str, Any] | None = None
    forget: Duration = FORGET
    type_name: ClassVar[str] = "new_term"

    def detector(self, ctx: Context, columns: set[str], stream: bool = False) -> _NewTermDetector:
        if not self.common.key:
            raise ValueError("new_term needs a 'key'")
        return _NewTermDetector(self, ctx, columns)


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


class _NewTermDetector(_Filtered):
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

    def _pairs(self, frame: pl.DataFrame) -> pl.DataFrame:
        terms, key = list(self.rule.terms), self.common.key
        if any(frame.get_column(t).null_count() for t in terms):
            frame = frame.filter(pl.all_horizontal(pl.col(t).is_not_null() for t in terms))
        if len(key) == 1 and frame.schema[key[0]] == pl.String and not frame.get_column(key[0]).null_count():
            return frame.hstack([frame.get_column(key[0]).alias("_key")])  # the key text is the value
        return frame.with_columns(key_expr(key).alias("_key"))

    def _known(self, table: dict[str, dict[tuple[Any, ...], dt.datetime]], key: str, term: tuple[Any, ...],
               ts: dt.datetime) -> bool:
        last = table.get(key, {}).get(term)
        return last is not None and ts - last <= dt.timedelta(seconds=self.rule.forget)

    def process(self, events: pl.DataFrame, selection: Selection | None = None) -> list[Match]:
        c, terms = self.common, list(self.rule.terms)
        if selection is None or selection.frame is not events:
            selection = Selection(events)
        if not _any(selection, self.conjuncts) and (self.learn_conjuncts is None
                                                    or not _any(selection, self.learn_conjuncts)):
            return []  # nothing to score and nothing to learn: no frame work
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
        # a key is born at its first learning event (again, once everything it knew is forgotten)
        for key, first in born_rows:
            if key not in self.born or not self.known.get(key):
                self.born[key] = first
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
                ev = evidence_of(sel[[s.row for s in e.behind if s.row is not None]].sort("ts"))
                ev["new_terms"] = [list(s.term) for s in e.behind][:20]
                ev["known_terms"] = e.known_before
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
        for key in [k for k in self.born if k not in self.known and k not in self.judged]:
            del self.born[key]
        for key in list(self.recent):
            recent = self.recent[key]
            while recent and recent[0].ts <= stale:
                recent.popleft()
            if not recent:
                del self.recent[key]


@dataclass(frozen=True, eq=False)
class Seasonal:
    """A per-bucket metric (event count, or distinct `field`) against its own seasonal profile: the same
    hour-of-week in past weeks, falling back to the same hour-of-day, then to the preceding buckets, when the
    history is short. The value is a robust z-score |x - median| / (1.4826 MAD, at least sqrt(median)), signed
    by `direction` (up, down or both). A bucket is scored when event time passes its end."""

    common: Common
    bucket: Duration
    history: Duration
    field: str | None = None
    direction: str = "both"
    min_history: int = 2
    min_value: float = 5.0  # a bucket whose baseline median is below this is not scored (too quiet to tell)
    type_name: ClassVar[str] = "seasonal"

    def check(self) -> None:
        if self.direction not in ("up", "down", "both"):
            raise ValueError("'direction' must be up, down or both")

    def detector(self, ctx: Context, columns: set[str], stream: bool = False) -> _SeasonalDetector:
        return _SeasonalDetector(self, ctx, columns)


class _SeasonalDetector(_Filtered):
    def __init__(self, rule: Seasonal, ctx: Context, columns: set[str]) -> None:
        super().__init__(rule.common, ctx, columns, [rule.field] if rule.field else [])
        self.rule = rule
        self.size = dt.timedelta(seconds=rule.bucket)
        self.open: dict[str, dict[dt.datetime, set[Any] | list[int]]] = defaultdict(dict)  # key -> bucket -> tally
        self.closed: dict[str, deque[tuple[dt.datetime, float]]] = defaultdict(deque)
        self.clock: dt.datetime | None = None
        self.start: dt.datetime | None = None  # the profile's first bucket: the first event the rule saw

    def _bucket(self, ts: dt.datetime) -> dt.datetime:
        epoch = dt.datetime(1970, 1, 1, tzinfo=ts.tzinfo)
        n = (ts - epoch) // self.size
        return epoch + n * self.size

    def _empty(self) -> set[Any] | list[int]:
        return set() if self.rule.field else [0]

    def process(self, events: pl.DataFrame, selection: Selection | None = None) -> list[Match]:
        if events.height:
            oldest, newest = events.get_column("ts").min(), events.get_column("ts").max()
            if isinstance(newest, dt.datetime):
                self.clock = newest if self.clock is None else max(self.clock, newest)
            if self.start is None and isinstance(oldest, dt.datetime):
                self.start = self._bucket(oldest)
        sel = self.select(events, selection)
        fld = self.rule.field
        cols = ["ts", *self.keys] + ([fld] if fld else [])
        agg = pl.col(fld).drop_nulls().unique().alias("_v") if fld else pl.len().alias("_v")
        size = f"{round(self.rule.bucket * 1_000_000)}us"  # epoch-aligned, as _bucket
        grouped = sel.select(cols).with_columns(pl.col("ts").dt.truncate(size).alias("_b")) \
            .group_by([*self.keys, "_b"]).agg(agg) if sel.height else None
        if grouped is not None:
            for row in grouped.iter_rows(named=True):
                tally = self.open[key_text(row, self.common.key)].setdefault(row["_b"], self._empty())
                if isinstance(tally, set):
                    tally.update(row["_v"])
                else:
                    tally[0] += int(row["_v"])
        return self._close()

    def _close(self) -> list[Match]:
        """Score every bucket that ended before the current one, in order, each against the history before it
        (trimmed to `history` back from that bucket, so when buckets are closed does not matter)."""
        if self.clock is None:
            return []
        out = []
        current = self._bucket(self.clock)
        history = dt.timedelta(seconds=self.rule.history)
        for key in sorted(set(self.open) | set(self.closed)):
            series = self.closed[key]
            slots = self.open[key]
            # buckets without events are zeros, not gaps: that is what a drop looks like. A key first seen
            # after the profile began had zeros before (within the history kept).
            if series:
                b = series[-1][0] + self.size
            else:
                b = min(slots, default=current)
                if self.start is not None:
                    b = min(b, max(self.start, self._bucket(current - history)))
            while b < current:
                slots.setdefault(b, self._empty())
                b += self.size
            for b in sorted(x for x in slots if x < current):
                raw = slots.pop(b)
                value = float(len(raw)) if isinstance(raw, set) else float(raw[0])
                while series and series[0][0] < b - history:
                    series.popleft()
                match = self._score(key, b, value)
                series.append((b, value))
                if match:
                    out.append(match)
            while series and series[0][0] < current - history:
                series.popleft()
            if not slots:
                del self.open[key]
                if not any(v for _, v in series):  # all zeros: the same zeros come back if the key does
                    del self.closed[key]
        return out

    def _score(self, key: str, bucket: dt.datetime, value: float) -> Match | None:
        past = self.closed[key]
        week = dt.timedelta(days=7)
        day = dt.timedelta(days=1)
        same_week = [v for b, v in past if (bucket - b) % week == dt.timedelta(0)]
        same_day = [v for b, v in past if (bucket - b) % day == dt.timedelta(0)]
        recent = [v for _, v in list(past)[-12:]]
        candidates = ((same_week, "hour_of_week"), (same_day, "hour_of_day"), (recent, "recent"))
        chosen = next(((b, n) for b, n in candidates if len(b) >= self.rule.min_history), None)
        if chosen is None:
            return None
        basis, name = chosen
        med = statistics.median(basis)
        if med < self.rule.min_value:
            return None
        mad = statistics.median(abs(v - med) for v in basis)
        scale = max(1.4826 * mad, med ** 0.5, 1.0)
        z = (value - med) / scale
        direction = self.rule.direction
        signed = abs(z) if direction == "both" else (z if direction == "up" else -z)
        severity = severity_of(self.common, signed)
        if severity is None:
            return None
        c = self.common
        return Match(c.id, c.key_type, key, severity, bucket, bucket + self.size, bucket + self.size,
                     int(value), signed, {"bucket_value": value, "baseline_median": med, "baseline": name,
                                          "baseline_points": len(basis), "z": round(z, 2)})


NO_CREDIT = 100.0  # the value of any spend by an account with nothing available (finite, above any level)


@dataclass(frozen=True, eq=False)
class CreditLimit:
    """Spend per account (sum of CDR `fee`) against what it may spend: balance plus credit limit from
    `customers`, as of the start of the data. The value is spend / available (1.0 = limit reached); a warning
    also fires when the burn rate over `window` would reach the limit within `horizon`."""

    common: Common
    horizon: Duration
    type_name: ClassVar[str] = "credit_limit"

    def detector(self, ctx: Context, columns: set[str], stream: bool = False) -> _CreditDetector:
        return _CreditDetector(self, ctx, columns)


class _CreditDetector(_Filtered):
    def __init__(self, rule: CreditLimit, ctx: Context, columns: set[str]) -> None:
        super().__init__(rule.common, ctx, columns, ["fee", "customer_account"])
        self.rule = rule
        self.available = ctx.credit
        self.spent: dict[str, float] = defaultdict(float)
        self.since: dict[str, dt.datetime] = {}  # account -> its first CDR: the spend behind an alert starts there
        self.recent: dict[str, deque[tuple[dt.datetime, float]]] = defaultdict(deque)

    def process(self, events: pl.DataFrame, selection: Selection | None = None) -> list[Match]:
        """One match per account with CDRs at or over a level in this batch: its events are those CDRs."""
        c = self.common
        sel = self.select(events, selection).filter(pl.col("customer_account").is_in(list(self.available)))
        out = []
        window = dt.timedelta(seconds=c.window)
        for (account_value,), rows in sel.group_by(["customer_account"], maintain_order=True):
            account = str(account_value)
            available = self.available[account]
            hot: list[int] = []
            peak = 0.0
            for i, (ts, fee) in enumerate(rows.select("ts", pl.col("fee").cast(pl.Float64).fill_null(0)).iter_rows()):
                self.since.setdefault(account, ts)
                self.spent[account] += fee
                recent = self.recent[account]
                recent.append((ts, fee))
                while recent and recent[0][0] <= ts - window:
                    recent.popleft()
                rate = sum(f for _, f in recent) / c.window  # per second
                projected = self.spent[account] + rate * self.rule.horizon
                used = self.spent[account] / available if available > 0 else NO_CREDIT * (self.spent[account] > 0)
                value = used if used >= 1 or projected < available else max(used, c.warning or 0.0)
                if severity_of(c, value):
                    hot.append(i)
                    peak = max(peak, value)
            severity = severity_of(c, peak)
            if severity is None:
                continue
            hits = rows[hot]
            ev = evidence_of(hits)
            ev.update({"spent": round(self.spent[account], 4), "available": available,
                       "burn_per_hour": round(sum(f for _, f in self.recent[account]) / c.window * 3600, 4)})
            out.append(Match(c.id, c.key_type, account, severity, self.since[account],
                             hits.get_column("ts").min(), hits.get_column("ts").max(),  # type: ignore[arg-type]
                             hits.height, peak, ev))
        return out
