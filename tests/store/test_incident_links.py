"""`save_incidents` with the links already stored (the watcher's `linked`): an incident whose members only grew gets
its new links added; one that lost a member, or was merged into another, is rewritten; what is stored is the same as
a full rewrite would store, save after save."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from fraudwatch.detect.incident import Incident
from fraudwatch.store.db import Store
from fraudwatch.store.incidents import save_incidents

T = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def _incident(ids: list[int], state: str = "open", merged_into: str | None = None) -> Incident:
    inc = Incident("20261101-00000001", "campaign", "a campaign", "warning", "alert", "open", T, T, T,
                   alert_ids=list(ids), members=len(ids))
    inc.state = "ended" if state == "ended" else "open"
    inc.merged_into = merged_into
    return inc


def _links(store: Store) -> list[int]:
    return [a for (a,) in store.con.execute(
        "SELECT alert_id FROM incident_alerts WHERE incident_id = '20261101-00000001' ORDER BY alert_id").fetchall()]


def test_links_grow_by_what_is_new_and_are_rewritten_when_members_go(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.duckdb")
    linked: dict[str, set[int]] = {}
    save_incidents(store.con, [_incident([3, 1, 2])], "live", linked=linked)
    assert _links(store) == [1, 2, 3] and linked == {"20261101-00000001": {1, 2, 3}}
    save_incidents(store.con, [_incident([1, 2, 3, 5, 4])], "live", linked=linked)  # grew: 4 and 5 added
    assert _links(store) == [1, 2, 3, 4, 5]
    save_incidents(store.con, [_incident([1, 5])], "live", linked=linked)  # members went: rewritten
    assert _links(store) == [1, 5]
    save_incidents(store.con, [_incident([1, 5, 6], state="ended")], "live", linked=linked)
    assert _links(store) == [1, 5, 6] and linked == {}  # an ended incident changes no more: forgotten
    save_incidents(store.con, [_incident([1, 5, 6], merged_into="20261101-00000002")], "live", linked=linked)
    assert _links(store) == []  # a merged incident lists none (the one it went into does)
    store.close()
