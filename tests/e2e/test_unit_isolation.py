"""Units cannot reach into their siblings through ingest, against the running services: report
ids are each unit's own (a sibling's report of the same id is another report, and no answer
speaks of it), and batches for a sibling's agency being registered at that very moment are
refused item by item, however the registration and the batches interleave."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest

from .test_dead_letters_and_agencies import good

pytestmark = pytest.mark.e2e


def test_a_report_id_is_the_units_own(system):
    mine = system.token("14923", "submit")
    theirs = system.token("14926", "submit")
    with system.client(system.ingest.url, mine) as http:
        assert http.post("/v1/reports", json=good("shared-id", "14923", attended=5)).status_code == 202
    with system.client(system.ingest.url, theirs) as http:
        r = http.post("/v1/reports", json=good("shared-id", "14926", attended=7))
        assert (r.status_code, r.json()) == (202, {"report_id": "shared-id", "revision": 1, "status": "accepted"})
        # its own duplicate and its own conflict speak of its own report only
        assert http.post("/v1/reports", json=good("shared-id", "14926", attended=7)).json()["status"] == "duplicate"
        conflict = http.post("/v1/reports", json=good("shared-id", "14926", attended=8))
        assert conflict.status_code == 409
        assert "14923" not in conflict.text and "shared-id" in conflict.text
        batch = http.post("/v1/reports/batch", json=[good("shared-id", "14926", attended=7)]).json()
        assert batch["results"][0]["status"] == "duplicate"
    system.wait_for_metric("386", "2021-11", "study_session.members_attended", 12)
    assert system.totals("14923", "2021-11")["metrics"]["study_session.members_attended"] == 5
    assert system.totals("14926", "2021-11")["metrics"]["study_session.members_attended"] == 7


def test_batches_for_a_siblings_agency_registered_meanwhile_are_refused_whole(system):
    """Ten batches of 100 from commune 14923 for an agency of commune 14926, sent at once while
    the API registers that agency: some items are checked before it exists, some after."""
    agency = "14926-dnx"
    results: dict[str, Any] = {"batches": []}
    start = threading.Barrier(11)

    def register() -> None:
        with system.client(system.api.url) as api:
            start.wait()
            results["register"] = api.post(
                "/v1/admin/agencies",
                json={"code": agency, "name": "Doanh nghiệp X", "parent": "14926"},
                params={"tree": "legacy"},  # commune 14926 of the tree before July 2025
            ).status_code

    def submit(first: int) -> None:
        items = [good(f"race-{i}", agency, attended=1) for i in range(first, first + 100)]
        with system.client(system.ingest.url, system.token("14923", "submit")) as http:
            start.wait()
            results["batches"].append(http.post("/v1/reports/batch", json=items).json())

    threads = [threading.Thread(target=register)] + [
        threading.Thread(target=submit, args=(first,)) for first in range(0, 1000, 100)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert results["register"] == 201
    statuses = Counter(r["status"] for batch in results["batches"] for r in batch["results"])
    assert statuses == {"forbidden": 1000}
    # and once it is registered, the agency's own token may submit for it, its neighbour still not
    with system.client(system.ingest.url, system.token(agency, "submit")) as http:
        assert http.post("/v1/reports", json=good("own", agency, attended=3)).status_code == 202
    with system.client(system.ingest.url, system.token("14923", "submit")) as http:
        assert http.post("/v1/reports", json=good("late", agency, attended=3)).status_code == 403
    system.wait_for_metric(agency, "2021-11", "study_session.members_attended", 3)
