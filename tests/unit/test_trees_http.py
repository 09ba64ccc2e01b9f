"""Ingest and the read API with the two trees: a report is checked against the tree valid at its
period's end, reads pick the tree of the period (or `tree=`), the country's totals (`VN`) sum the
provinces, and units can be searched by name without accents."""

import json

import pytest
from fastapi.testclient import TestClient

from services.api.app import create_app as create_api
from services.api.repository import InMemoryTotalsReader
from services.api.settings import ApiSettings
from services.ingest.app import create_app as create_ingest
from services.ingest.publisher import InMemoryPublisher
from services.ingest.settings import IngestSettings
from services.ingest.submissions import InMemorySubmissionLog
from shared.adapters.revocations import InMemoryRevocations
from shared.domain.auth import COUNTRY, Scope, mint
from shared.domain.hierarchy import load_vietnam
from shared.domain.totals_docs import stored_from_views
from tests.conftest import TEST_SECRET

TREE = load_vietnam(["38", "40"])  # Thanh Hóa and Nghệ An, in both trees


def auth(unit, scopes=(Scope.SUBMIT,)):
    return {"Authorization": f"Bearer {mint(TEST_SECRET, unit, scopes, 3600)}"}


def report(unit="14923", period="2025-Q4", rid="r-1", rev=1):
    held = {"2025-Q4": "2025-11-05", "2025-06": "2025-06-05", "2020-12": "2020-12-05"}[period]
    return {
        "report_id": rid,
        "revision": rev,
        "unit": unit,
        "kind": "study_session",
        "period": period,
        "submitted_at": "2025-12-20T09:00:00+07:00",
        "body": {
            "resolution": "NQ",
            "held_on": held,
            "format": "online",
            "bridge_points": 1,
            "delegates": 0,
            "members_attended": 90,
            "members_total": 100,
        },
    }


@pytest.fixture
def ingest():
    publisher = InMemoryPublisher()
    settings = IngestSettings(
        kafka_bootstrap_servers="unused:9092", mongodb_uri="mongodb://unused", auth_secret=TEST_SECRET, max_batch=50
    )
    app = create_ingest(
        settings,
        publisher=publisher,
        submissions=InMemorySubmissionLog(),
        tree=TREE,
        revocations=InMemoryRevocations(),
    )
    with TestClient(app) as client:
        yield client, publisher


def published(publisher):
    return [(k, json.loads(v)) for part in publisher.partitions for k, v in part]


def test_a_post_reform_commune_reports_under_its_new_province(ingest):
    client, publisher = ingest
    r = client.post("/v1/reports", json=report(), headers=auth("38"))
    assert r.status_code == 202, r.text
    [(key, envelope)] = published(publisher)
    assert key == b"38" and envelope["report"]["unit"] == "14923"


def test_a_district_reporting_after_the_reform_gets_422_on_unit_saying_why(ingest):
    client, publisher = ingest
    r = client.post("/v1/reports", json=report(unit="386"), headers=auth("38"))
    assert r.status_code == 422
    [error] = r.json()["detail"]
    assert error["loc"] == ["body", "unit"] and error["type"] == "unknown_unit"
    assert "not in tree 2025 (valid from 2025-07-01" in error["msg"]
    assert "district 'Huyện Bá Thước' of tree legacy" in error["msg"]
    assert published(publisher) == []
    # the same district before the reform is accepted
    assert client.post("/v1/reports", json=report(unit="386", period="2025-06"), headers=auth("38")).status_code == 202


def test_a_batch_item_for_a_closed_unit_is_refused_with_the_reason(ingest):
    client, _ = ingest
    body = client.post(
        "/v1/reports/batch", json=[report(unit="386", rid="a"), report(rid="b")], headers=auth(COUNTRY)
    ).json()
    assert [i["status"] for i in body["results"]] == ["unknown_unit", "accepted"]
    assert body["results"][0]["errors"][0]["loc"] == ["unit"]
    assert "tree 2025" in body["results"][0]["errors"][0]["msg"]


def test_a_revision_cannot_move_a_report_to_the_other_tree(ingest):
    client, _ = ingest
    assert client.post("/v1/reports", json=report(period="2025-06"), headers=auth("38")).status_code == 202
    r = client.post("/v1/reports", json=report(period="2025-Q4", rev=2), headers=auth("38"))
    assert r.status_code == 409 and "another administrative tree" in r.json()["detail"]


def test_a_district_token_does_not_reach_the_new_tree(ingest):
    client, _ = ingest
    r = client.post("/v1/reports", json=report(unit="14923", period="2025-Q4"), headers=auth("386"))
    assert r.status_code == 403
    assert client.post("/v1/reports", json=report(period="2025-06"), headers=auth("386")).status_code == 202


def view(unit, period, parents, attended, total, reported):
    return {
        "unit": unit,
        "series": "study_session",
        "period": period,
        "parents": parents,
        "sums": {"members_attended": attended, "members_total": total},
        "reports": reported,
        "units_reported": reported,
        "units_on_time": 0,
    }


DOCS = stored_from_views(
    [
        view("38", "2025-Q4", ["38"], 900, 1000, 3),
        view("14923", "2025-Q4", ["14923", "38"], 500, 600, 1),
        view("40", "2025-Q4", ["40"], 70, 100, 2),
        view("38", "2025-06", ["38"], 11, 20, 1),  # the old tree's Thanh Hóa, another unit
    ]
)


@pytest.fixture
def api():
    settings = ApiSettings(
        kafka_bootstrap_servers="unused:9092", mongodb_uri="mongodb://unused", auth_secret=TEST_SECRET
    )
    with TestClient(create_api(settings, reader=InMemoryTotalsReader(DOCS), tree=TREE)) as c:
        yield c


def read(unit):
    return auth(unit, (Scope.READ,))


def test_a_unit_is_shown_in_the_tree_asked_for(api):
    old = api.get("/v1/units/14923", params={"tree": "legacy"}, headers=read("38")).json()
    assert (old["name"], old["parent"]["code"]) == ("Thị trấn Cành Nàng", "386")
    new = api.get("/v1/units/14923", params={"tree": "2025"}, headers=read("38")).json()
    assert (new["name"], new["parent"]["code"]) == ("Xã Bá Thước", "38")
    # with neither tree nor period: the tree in force today
    assert api.get("/v1/units/14923", headers=read("38")).json() == new
    assert api.get("/v1/units/386", headers=read("38")).status_code == 404
    r = api.get("/v1/units/14923", params={"tree": "1976"}, headers=read("38"))
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "tree"]


def test_totals_of_a_period_come_from_its_tree(api):
    body = api.get("/v1/units/38/totals", params={"period": "2025-Q4"}, headers=read("38")).json()
    assert body["metrics"]["study_session.members_attended"] == 900
    assert body["completeness"]["study_session"]["units_expected"] == 166  # new Thanh Hóa's communes
    old = api.get("/v1/units/38/totals", params={"period": "2025-06"}, headers=read("38")).json()
    assert old["completeness"]["study_session"]["units_expected"] > 166  # the old province's communes
    kids = api.get("/v1/units/38/children/totals", params={"period": "2025-Q4"}, headers=read("38")).json()
    assert {c["unit"]["level"] for c in kids["children"]} == {"commune"}  # no districts in between
    gone = api.get("/v1/units/386/totals", params={"period": "2025-Q4"}, headers=read("38"))
    assert gone.status_code == 404 and "tree 2025" in gone.json()["detail"] and "legacy" in gone.json()["detail"]
    wrong = api.get("/v1/units/38/totals", params={"period": "2025-Q4", "tree": "legacy"}, headers=read("38"))
    assert wrong.status_code == 422 and "belongs to tree 2025" in wrong.json()["detail"][0]["msg"]


def test_the_country_total_is_the_sum_of_its_provinces(api):
    body = api.get("/v1/units/VN/totals", params={"period": "2025-Q4"}, headers=read(COUNTRY)).json()
    assert body["unit"] == {"code": "VN", "name": "Việt Nam", "level": "country"}
    assert body["metrics"]["study_session.members_attended"] == 900 + 70
    assert body["metrics"]["study_session.participation_rate"] == round((900 + 70) / (1000 + 100), 4)
    completeness = body["completeness"]["study_session"]
    assert completeness["units_reported"] == 5
    assert completeness["units_expected"] == sum(len(TREE.for_period("2025-Q4").children(p)) for p in ("38", "40"))
    rows = api.get("/v1/units/VN/children/totals", params={"period": "2025-Q4"}, headers=read(COUNTRY)).json()
    assert [r["unit"]["code"] for r in rows["children"]] == ["38", "40"]
    # a province's token does not see the country
    assert api.get("/v1/units/VN/totals", params={"period": "2025-Q4"}, headers=read("38")).status_code == 403


def test_units_are_found_by_name_without_accents_within_the_tokens_subtree(api):
    found = api.get("/v1/units", params={"q": "ba thuoc", "tree": "2025"}, headers=read(COUNTRY)).json()
    assert found["tree"] == "2025"
    assert [(u["code"], u["name"], u["parent"]["code"]) for u in found["units"]] == [("14923", "Xã Bá Thước", "38")]
    legacy = api.get("/v1/units", params={"q": "BA THUOC", "tree": "legacy"}, headers=read("38")).json()
    assert [u["code"] for u in legacy["units"]] == ["386"]
    today = api.get("/v1/units", params={"q": "BA THUOC"}, headers=read("38")).json()
    assert (today["tree"], [u["code"] for u in today["units"]]) == ("2025", ["14923"])
    # the neighbour's token finds nothing outside its subtree
    assert api.get("/v1/units", params={"q": "ba thuoc", "tree": "legacy"}, headers=read("14926")).json()["units"] == []
    children = api.get("/v1/units", params={"parent": "38", "tree": "2025", "limit": 1000}, headers=read("38")).json()[
        "units"
    ]
    assert len(children) == 166 and {u["parent"]["code"] for u in children} == {"38"}
    assert api.get("/v1/units", params={"parent": "40"}, headers=read("38")).status_code == 403
