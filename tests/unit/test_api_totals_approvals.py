"""Approval state where the figures are read, with fakes: a unit's totals and each row of a
drill-down carry the unit's approvals of the period, and a page's CSV export has a column
"Đã duyệt" naming who approved each row and when."""

import csv
import io
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from services.api.app import create_app
from services.api.repository import InMemoryTotalsReader
from services.api.settings import ApiSettings
from shared.adapters.approvals import InMemoryApprovalStore
from shared.adapters.revocations import InMemoryRevocations
from shared.domain.approvals import Approval
from shared.domain.auth import Scope, mint
from shared.domain.hierarchy import load_vietnam
from tests.conftest import TEST_SECRET
from tests.unit.test_web_trees import login

TREE = load_vietnam(["38"])
AT = 1_607_000_000.0  # 2020-12-03 12:53:20 UTC
APPROVED = Approval("14923", "study_session", "2020-12", "386", "alice", AT, path=("38", "386", "14923"))
OTHER_PERIOD = Approval("14926", "study_session", "2020-11", "386", "bob", AT, path=("38", "386", "14926"))
DISTRICT = Approval("386", "indicator.cadres", "2020-12", "38", "token:t38", AT, path=("38", "386"))


@pytest.fixture
def client() -> Iterator[TestClient]:
    settings = ApiSettings(
        kafka_bootstrap_servers="unused:9092",
        mongodb_uri="mongodb://unused",
        auth_secret=SecretStr(TEST_SECRET),
        ingest_url="http://127.0.0.1:9",
    )
    store = InMemoryApprovalStore()
    store.approvals = {a.id: a for a in (APPROVED, OTHER_PERIOD, DISTRICT)}
    app = create_app(
        settings, reader=InMemoryTotalsReader({}), tree=TREE, revocations=InMemoryRevocations(), approval_store=store
    )
    with TestClient(app, follow_redirects=False) as c:
        yield c


def read(client: TestClient, path: str) -> Any:
    token = mint(TEST_SECRET, "38", (Scope.READ,), 3600)
    answer = client.get(path, params={"period": "2020-12"}, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_a_units_totals_carry_its_own_approvals_of_the_period_only(client: TestClient) -> None:
    totals = read(client, "/v1/units/386/totals")
    assert totals["approvals"] == {
        "indicator.cadres": {"by": "token:t38", "level": "38", "at": "2020-12-03T12:53:20+00:00"}
    }
    assert {"unit", "period", "metrics", "rates", "completeness"} <= set(totals)
    assert read(client, "/v1/units/14923/totals")["approvals"]["study_session"]["by"] == "alice"
    assert read(client, "/v1/units/14926/totals")["approvals"] == {}  # approved in another period


def test_each_row_of_a_drill_down_carries_its_units_approvals(client: TestClient) -> None:
    rows = {row["unit"]["code"]: row for row in read(client, "/v1/units/386/children/totals")["children"]}
    assert rows["14923"]["approvals"] == {
        "study_session": {"by": "alice", "level": "386", "at": "2020-12-03T12:53:20+00:00"}
    }
    assert rows["14926"]["approvals"] == {}
    assert all(set(row) >= {"metrics", "completeness", "approvals"} for row in rows.values())
    top = read(client, "/v1/units/38/children/totals")["children"]
    assert [row["approvals"] for row in top if row["unit"]["code"] == "386"] == [
        {"indicator.cadres": {"by": "token:t38", "level": "38", "at": "2020-12-03T12:53:20+00:00"}}
    ]


def test_the_csv_export_says_who_approved_each_row_and_when(client: TestClient) -> None:
    login(client, "38")
    answer = client.get("/web/units/386/export.csv", params={"period": "2020-12", "series": "study_session"})
    assert answer.status_code == 200
    rows = list(csv.reader(io.StringIO(answer.content.decode("utf-8-sig"))))
    assert rows[0][-1] == "Đã duyệt"
    approved = {row[0]: row[-1] for row in rows[1:]}
    assert approved["14923"] == "alice, 2020-12-03 12:53 UTC"
    assert approved["386"] == ""  # approved for another series
    assert approved["14926"] == ""  # approved in another period


async def test_the_read_paths_listings_are_kept_a_few_seconds_and_cleared_by_a_change_here() -> None:
    from services.api.approval_views import ApprovalListings

    class Counting(InMemoryApprovalStore):
        reads = 0

        async def listing(self, unit: str, period: str) -> list[Approval]:
            self.reads += 1
            return await super().listing(unit, period)

    store = Counting()
    store.approvals = {APPROVED.id: APPROVED}
    now = [100.0]
    listings = ApprovalListings(store, ttl_s=5.0, clock=lambda: now[0])
    assert await listings.listing("386", "2020-12") == [APPROVED]
    store.approvals = {}  # unapproved through another replica
    now[0] += 4.9
    assert await listings.listing("386", "2020-12") == [APPROVED] and store.reads == 1
    now[0] += 0.2  # past the bound: read again
    assert await listings.listing("386", "2020-12") == [] and store.reads == 2
    store.approvals = {APPROVED.id: APPROVED}
    listings.clear()  # approved through this process: shown at once
    assert await listings.listing("386", "2020-12") == [APPROVED] and store.reads == 3
