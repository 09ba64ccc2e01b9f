"""The exchange routes over HTTP with the in-memory adapters: ingest's import of a DHIS2 data value
set (JSON and CSV; a re-import a duplicate, a changed value a revision; the import summary) and the
API's export of totals as one."""

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.api.app import create_app as create_api
from services.api.repository import InMemoryTotalsReader
from services.api.settings import ApiSettings
from services.ingest.app import create_app as create_ingest
from services.ingest.publisher import InMemoryPublisher
from services.ingest.settings import IngestSettings
from services.ingest.submissions import InMemorySubmissionLog
from shared.domain.auth import Scope, mint
from shared.domain.exchange import CSV_COLUMNS, MAPPING_SETTING
from shared.domain.hierarchy import load_vietnam
from shared.domain.totals_docs import stored_from_views
from tests.conftest import TEST_SECRET

TREE = load_vietnam(["38"])
COMMON = {"kafka_bootstrap_servers": "unused:9092", "mongodb_uri": "mongodb://unused", "auth_secret": TEST_SECRET}
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SET = json.loads((EXAMPLES / "dhis2-datavalueset.json").read_text())
PATH = "/v1/exchange/dataValueSets"


def auth(unit, *scopes):
    return {"Authorization": f"Bearer {mint(TEST_SECRET, unit, scopes, 3600)}"}


@pytest.fixture(autouse=True)
def example_mapping(monkeypatch):
    monkeypatch.setenv(MAPPING_SETTING, str(EXAMPLES / "dhis2-mapping.json"))


@pytest.fixture
def ingest():
    publisher = InMemoryPublisher()
    settings = IngestSettings(**COMMON, max_batch=5)
    app = create_ingest(settings, publisher=publisher, submissions=InMemorySubmissionLog(), tree=TREE)
    with TestClient(app) as client:
        yield client, publisher


def published(publisher):
    return [json.loads(v)["report"] for part in publisher.partitions for _, v in part]


def counts(answer):
    return answer["importCount"]


def test_an_import_makes_one_report_per_unit_and_a_second_import_changes_nothing(ingest):
    client, publisher = ingest
    first = client.post(PATH, json=SET, headers=auth("386", Scope.SUBMIT))
    assert first.status_code == 200
    assert first.json() == {
        "responseType": "ImportSummary",
        "status": "SUCCESS",
        "description": "2 reports from the data values; 0 conflicts",
        "importCount": {"imported": 8, "updated": 0, "ignored": 0, "deleted": 0},
        "conflicts": [],
    }
    reports = published(publisher)
    assert sorted((r["unit"], r["report_id"], r["revision"], r["body"]["members_attended"]) for r in reports) == [
        ("14923", "dhis2:study_session:2020-12", 1, 280),
        ("14926", "dhis2:study_session:2020-12", 1, 152),
    ]
    again = client.post(PATH, json=SET, headers=auth("386", Scope.SUBMIT)).json()
    assert counts(again) == {"imported": 0, "updated": 0, "ignored": 8, "deleted": 0}
    assert again["status"] == "SUCCESS"
    assert len(published(publisher)) == 2


def test_a_changed_value_sends_the_next_revision_of_that_report_only(ingest):
    client, publisher = ingest
    client.post(PATH, json=SET, headers=auth("386", Scope.SUBMIT))
    changed = json.loads(json.dumps(SET))
    changed["dataValues"][2]["value"] = "290"  # 14923's members attended
    answer = client.post(PATH, json=changed, headers=auth("386", Scope.SUBMIT)).json()
    assert counts(answer) == {"imported": 0, "updated": 4, "ignored": 4, "deleted": 0}
    last = published(publisher)[-1]
    assert (last["unit"], last["revision"], last["body"]["members_attended"]) == ("14923", 2, 290)
    back = client.post(PATH, json=SET, headers=auth("386", Scope.SUBMIT)).json()  # 280 again: revision 3
    assert counts(back)["updated"] == 4 and published(publisher)[-1]["revision"] == 3


def test_csv_is_taken_like_json(ingest):
    client, _ = ingest
    rows = ["dataelement,period,orgunit,categoryoptioncombo,attributeoptioncombo,value,storedby,lastupdated,comment"]
    rows += [
        f"{v['dataElement']},202012,{v['orgUnit']},{v.get('categoryOptionCombo', '')},,{v['value']},,,"
        for v in SET["dataValues"]
    ]
    r = client.post(PATH, content="\n".join(rows), headers={**auth("386", Scope.SUBMIT), "Content-Type": "text/csv"})
    assert r.status_code == 200 and counts(r.json())["imported"] == 8
    again = client.post(PATH, json=SET, headers=auth("386", Scope.SUBMIT)).json()
    assert counts(again)["ignored"] == 8  # the same reports, whichever the format


def test_conflicts_name_the_value_and_the_reason_and_the_rest_is_taken(ingest):
    client, publisher = ingest
    values = [
        *SET["dataValues"][:4],
        {"dataElement": "BcHnBridgeP", "period": "202012", "orgUnit": "14929", "value": "1"},  # fields missing
        {"dataElement": "Nope", "period": "202012", "orgUnit": "14923", "value": "1"},
        {"dataElement": "BcThSubmitt", "period": "202012", "orgUnit": "14923", "value": "9"},
        {"dataElement": "BcThRequire", "period": "202012", "orgUnit": "14923", "value": "5"},  # 9 > 5
        {"dataElement": "BcThSubmitt", "period": "202012", "orgUnit": "14995", "value": "1"},  # Quan Sơn's
        {"dataElement": "BcThRequire", "period": "202012", "orgUnit": "14995", "value": "1"},
        *(
            {**v, "orgUnit": "14932", "value": "100001" if i == 0 else v["value"]}
            for i, v in enumerate(SET["dataValues"][:4])
        ),
    ]
    answer = client.post(
        PATH, json={"period": "202012", "dataValues": values}, headers=auth("386", Scope.SUBMIT)
    ).json()
    assert answer["status"] == "WARNING"
    assert counts(answer) == {"imported": 4, "updated": 0, "ignored": 10, "deleted": 0}
    conflicts = {c["object"]: c for c in answer["conflicts"]}
    assert conflicts["Nope"]["value"] == "dataValues[5]: dataElement Nope is not in the mapping"
    assert "no value for delegates (dataElement BcHnDelegat)" in conflicts["14929"]["value"]
    assert conflicts["14923"] == {
        "object": "14923",
        "value": "reflection of 14923 in 2020-12 (invalid): body: Value error, members_submitted (9) must not "
        "exceed members_required (5)",
        "indexes": [6, 7],
    }
    assert conflicts["BcHnBridgeP"]["value"] == (
        "study_session of 14932 in 2020-12 (invalid): body.bridge_points: Input should be less than or equal to 100000"
    )
    assert conflicts["14995"]["value"] == (
        "reflection of 14995 in 2020-12 (forbidden): unit: unit 14995 is outside this token's unit 386"
    )
    assert [r["unit"] for r in published(publisher)] == ["14923"]


@pytest.mark.parametrize(
    ("headers", "body", "status", "detail"),
    [
        ({"Content-Type": "application/json"}, b"{", 400, "the body is not valid JSON"),
        ({"Content-Type": "application/xml"}, b"<dataValueSet/>", 415, "send application/json or text/csv"),
        ({"Content-Type": "application/json"}, b'{"values": []}', 422, "a data value set is a JSON object with a"),
        ({"Content-Type": "text/csv"}, b"a,b\n", 422, "line 1 must be the header row"),
        ({"Content-Type": "text/csv"}, b"\xff\xfe", 400, "not UTF-8"),
    ],
)
def test_a_body_that_is_not_a_data_value_set_is_refused_saying_why(ingest, headers, body, status, detail):
    client, _ = ingest
    r = client.post(PATH, content=body, headers={**auth("386", Scope.SUBMIT), **headers})
    assert r.status_code == status and detail in r.text


def test_the_submit_scope_the_batch_size_and_a_broken_mapping_are_checked(ingest, monkeypatch, tmp_path):
    client, publisher = ingest
    assert client.post(PATH, json=SET, headers=auth("386", Scope.READ)).status_code == 403
    many = [
        {"dataElement": "BcCtGiuongB", "period": f"2020{m:02d}", "orgUnit": "386", "value": "1"} for m in range(1, 7)
    ]
    r = client.post(PATH, json={"dataValues": many}, headers=auth("386", Scope.SUBMIT))
    assert (r.status_code, r.json()["detail"]) == (
        413,
        "a data value set makes at most 5 reports here; this one makes 6",
    )
    broken = tmp_path / "mapping.json"
    broken.write_text('{"dataElements": [{"dataElement": "X", "series": "study_session", "field": "nope"}]}')
    monkeypatch.setenv(MAPPING_SETTING, str(broken))
    r = client.post(PATH, json=SET, headers=auth("386", Scope.SUBMIT))
    assert r.status_code == 503 and f"{broken}.dataElements[0].field 'nope'" in r.json()["detail"]
    assert published(publisher) == []


def test_kafka_unavailable_is_a_503_with_the_summary(ingest):
    client, publisher = ingest
    publisher.available = False
    r = client.post(PATH, json=SET, headers=auth("386", Scope.SUBMIT))
    assert r.status_code == 503
    assert r.json()["status"] == "ERROR" and counts(r.json())["ignored"] == 8
    assert all("(unavailable)" in c["value"] for c in r.json()["conflicts"])


VIEWS = [
    {"unit": u, "series": "study_session", "period": "2020-12", "parents": p, "sums": s, "reports": n, "own": o}
    for u, p, s, n, o in [
        (
            "386",
            ["386", "38"],
            {"members_attended": 432, "members_total": 460, "bridge_points": 2, "delegates": 12},
            2,
            0,
        ),
        (
            "14923",
            ["14923", "386", "38"],
            {"members_attended": 280, "members_total": 300, "bridge_points": 1, "delegates": 12},
            1,
            1,
        ),
        ("14926", ["14926", "386", "38"], {"members_attended": 152, "members_total": 160, "bridge_points": 1}, 1, 1),
    ]
]


@pytest.fixture
def api():
    reader = InMemoryTotalsReader(stored_from_views(VIEWS))
    with TestClient(create_api(ApiSettings(**COMMON), reader=reader, tree=TREE)) as client:
        yield client


def test_export_gives_the_units_totals_and_with_children_each_childs(api):
    r = api.get(PATH, params={"unit": "386", "period": "2020-12"}, headers=auth("386", Scope.READ))
    assert r.status_code == 200
    body = r.json()
    assert body["dataSet"] == "BcNghiQuyet"
    assert {
        (v["orgUnit"], v["dataElement"], v.get("categoryOptionCombo"), v["period"], v["value"])
        for v in body["dataValues"]
    } == {
        ("BaThuoc0386", "BcHnBridgeP", None, "202012", "2"),
        ("BaThuoc0386", "BcHnDelegat", None, "202012", "12"),
        ("BaThuoc0386", "BcHnMembers", "BcCocAttend", "202012", "432"),
        ("BaThuoc0386", "BcHnMembers", "BcCocTotal1", "202012", "460"),
    }
    children = api.get(
        PATH, params={"unit": "386", "period": "2020-12", "children": "true"}, headers=auth("386", Scope.READ)
    )
    values = {
        (v["orgUnit"], v["dataElement"], v.get("categoryOptionCombo")): v["value"]
        for v in children.json()["dataValues"]
    }
    assert len(values) == 12
    assert values[("CanhNang923", "BcHnMembers", "BcCocAttend")] == "280"
    assert values[("DienThuo926", "BcHnDelegat", None)] == "0"  # reported, with no delegates


def test_the_csv_export_holds_the_same_values(api):
    params = {"unit": "386", "period": "2020-12", "children": "true", "series": "study_session"}
    js = api.get(PATH, params=params, headers=auth("386", Scope.READ)).json()["dataValues"]
    r = api.get(f"{PATH}.csv", params=params, headers=auth("386", Scope.READ))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    lines = r.text.splitlines()
    assert lines[0] == ",".join(CSV_COLUMNS)
    assert CSV_COLUMNS[:6] == (
        "dataelement",
        "period",
        "orgunit",
        "categoryoptioncombo",
        "attributeoptioncombo",
        "value",
    )
    rows = {tuple(line.split(",")[:6]) for line in lines[1:]}
    assert rows == {
        (v["dataElement"], v["period"], v["orgUnit"], v.get("categoryOptionCombo", ""), "", v["value"]) for v in js
    }


@pytest.mark.parametrize(
    ("params", "token", "status", "detail"),
    [
        ({"unit": "386", "period": "2020-2025"}, ("386", Scope.READ), 422, "congress term: DHIS2 has no period type"),
        (
            {"unit": "386", "period": "2020-12", "series": "nope"},
            ("386", Scope.READ),
            422,
            "not in the exchange mapping",
        ),
        ({"unit": "386", "period": "2020-12"}, ("14923", Scope.READ), 403, "outside this token's unit 14923"),
        ({"unit": "386", "period": "2020-12"}, ("386", Scope.SUBMIT), 403, "read"),
        ({"unit": "38-khongco", "period": "2020-12"}, ("38", Scope.READ), 404, "unit 38-khongco is not in"),
    ],
)
def test_export_checks_the_period_the_series_the_scope_and_the_unit(api, params, token, status, detail):
    r = api.get(PATH, params=params, headers=auth(*token))
    assert r.status_code == status and detail in r.text
