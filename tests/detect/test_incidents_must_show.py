"""Issue 23's first must-show, on real stores: the committed sample and a second seed are ingested with
detection (`ingest --detect`), and their incidents are put beside the simulator's labels.csv — every labelled
attack inside exactly one incident (and no incident holding two attacks), and at most 1.5 incidents per
labelled attack plus 2 a day."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from fraudwatch.detect.incident_labels import allowed_incidents, load_labels, match
from fraudwatch.sim import simulate
from fraudwatch.store.incidents import list_incidents
from tests.test_ingest_sample import copy_sample


@pytest.fixture(scope="module", params=["committed-sample", "seed-7"])
def folder(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    from fraudwatch.cli import main

    tmp = tmp_path_factory.mktemp(request.param)
    if request.param == "seed-7":
        simulate(tmp / "sim", days=2, accounts=80, seed=7)
        where, days = tmp / "sim", 2
    else:
        where, days = copy_sample(tmp), 3
    assert main(["--config", str(where / "fraudwatch.toml"), "ingest", "--detect", "--quiet", "--json"]) == 0
    return where, days


def _incidents(where: Path) -> list[dict[str, object]]:
    con = duckdb.connect(str(where / "fraudwatch.duckdb"), read_only=True)
    try:
        return list_incidents(con)
    finally:
        con.close()


def test_every_labelled_attack_is_inside_exactly_one_incident(folder: tuple[Path, int]) -> None:
    where, days = folder
    labels = load_labels(where / "labels.csv")
    incidents = _incidents(where)
    held = match(labels, incidents)
    assert len(held) >= 11
    for h in held:
        assert len(h.incidents) == 1, f"{h.label.id} {h.label.kind} is in {len(h.incidents)}: {h.incidents}"
    holders = [h.incidents[0] for h in held]
    # Beyond the wording: an incident should hold one attack. Known exception (the committed sample): a
    # scanner probing 26 minutes before a botnet's flood, seen by the same rule family within the campaign's
    # hour, founds the botnet's campaign; at most one such join is tolerated, never more.
    assert len(holders) - len(set(holders)) <= 1, "incidents hold more than one labelled attack"
    assert len(incidents) <= allowed_incidents(labels, days), [i["title"] for i in incidents]
