"""What the rule types whose memory is not a sliding window share (new_term, seasonal, credit_limit): the rule's
events of a batch, with a key. Their state grows with keys and terms, not with the events of a window, so one
frame detector serves replays and the watcher alike (they have no incremental detector)."""

from __future__ import annotations

import polars as pl

from fraudwatch.detect.base import Context, check_columns
from fraudwatch.detect.filters import Conjunct, Selection, compile_conjuncts, select
from fraudwatch.detect.spec import Common


class Filtered:
    """A detector's conditions and key: `select` gives the batch's events meeting them, with a key."""

    def __init__(self, common: Common, ctx: Context, columns: set[str], fields: list[str]) -> None:
        check_columns(columns, common.key, fields)
        self.common = common
        self.conjuncts = compile_conjuncts(common.where, ctx.lists_dir, columns)
        self.keys = list(common.key)

    def conditions(self) -> list[list[Conjunct]]:
        return [self.conjuncts]

    def select(self, events: pl.DataFrame, selection: Selection | None = None) -> pl.DataFrame:
        sel = select(events, self.conjuncts, selection)
        if not self.keys or not any(sel.get_column(k).null_count() for k in self.keys):
            return sel
        return sel.filter(pl.all_horizontal(pl.col(k).is_not_null() for k in self.keys))


def any_selected(selection: Selection, conjuncts: list[Conjunct]) -> bool:
    """Whether any event of the selection's batch meets `conjuncts` (from the batch's memoised masks)."""
    mask = selection.mask(conjuncts)
    return bool(selection.frame.height if mask is None else mask.any())
