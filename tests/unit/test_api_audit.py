"""GET /v1/audit and /v1/audit.csv over HTTP, with the in-memory audit log: paged newest first,
within the token's subtree and per tree, admin entries for admins only, bad parameters named."""

import codecs
import csv
import io

import pytest
from fastapi.testclient import TestClient

from services.api.app import create_app
from services.api.repository import InMemoryTotalsReader
from services.api.settings import ApiSettings
from shared.domain.audit import Action, AuditEntry
from shared.domain.auth import Scope, mint
from shared.domain.hierarchy import load_vietnam
from tests.conftest import TEST_SECRET

TREE = load_vietnam(["38"])
BA_THUOC = ("2025:14923", "2025:38", "VN")  # a 2025 commune of province 38
CANH_NANG = ("legacy:14923", "legacy:386", "legacy:38", "VN")  # the same code in the old tree
PROVINCE_ONLY = ("2025:38", "VN")


def entry(at, scope, action=Action.SUBMIT, period="2025-09", **more):
    fields = {"actor": "clerk1", "unit": scope[0].split(":")[-1], "subject": "14923/r1", "origin": "10.0.0.9"}
    return AuditEntry(at=at, action=action, scope=scope, period=period, **(fields | more))


ENTRIES = [
    entry(1_790_000_001, BA_THUOC, detail="revision 1", after={"body": {"members_attended": 280}}),
    entry(
        1_790_000_002,
        BA_THUOC,
        Action.REVISE,
        detail="revision 2",
        before={"body": {"members_attended": 280}},
        after={"body": {"members_attended": 290, "note": "Bá Thước"}},
    ),
    entry(1_790_000_003, CANH_NANG, period="2020-12", detail="old tree"),
    entry(1_790_000_004, PROVINCE_ONLY, Action.ACCOUNT_CREATE, period=None, unit="38", subject="clerk1"),
    entry(1_790_000_005, PROVINCE_ONLY, Action.LOGIN_FAILED, period=None, unit="38", detail="wrong password"),
]


@pytest.fixture
def client():
    settings = ApiSettings(
        kafka_bootstrap_servers="unused:9092", mongodb_uri="mongodb://unused", auth_secret=TEST_SECRET
    )
    with TestClient(create_app(settings, reader=InMemoryTotalsReader({}), tree=TREE)) as c:
        audit = c.app.state.components.audit
        for e in ENTRIES:
            c.portal.call(audit.append, e)
        yield c


def auth(unit, scopes=(Scope.READ,)):
    return {"Authorization": f"Bearer {mint(TEST_SECRET, unit, scopes, 3600)}"}


def details(body):
    return [e["detail"] or e["action"] for e in body["items"]]


def test_a_province_reader_lists_report_entries_of_both_trees_newest_first(client):
    body = client.get("/v1/audit", headers=auth("38")).json()
    assert details(body) == ["old tree", "revision 2", "revision 1"]
    revised = body["items"][1]
    assert revised["before"] == {"body": {"members_attended": 280}}
    assert revised["after"]["body"]["note"] == "Bá Thước"
    assert (revised["actor"], revised["origin"], revised["at"]) == ("clerk1", "10.0.0.9", "2026-09-21T21:13:22+07:00")


def test_an_old_districts_reader_lists_only_the_old_trees_entries(client):
    assert details(client.get("/v1/audit", headers=auth("386")).json()) == ["old tree"]
    assert details(client.get("/v1/audit?unit=386", headers=auth("38")).json()) == ["old tree"]


def test_admin_entries_need_the_admin_scope(client):
    admin = auth("38", (Scope.ADMIN,))
    assert details(client.get("/v1/audit", headers=admin).json()) == ["wrong password", "account.create"]
    both = auth("38", (Scope.READ, Scope.ADMIN))
    assert len(client.get("/v1/audit", headers=both).json()["items"]) == 5
    refused = client.get("/v1/audit?action=login.failed", headers=auth("38"))
    assert refused.status_code == 403 and "admin" in refused.json()["detail"]


def test_filters_by_unit_period_and_action(client):
    head = auth("38")
    assert details(client.get("/v1/audit?unit=14923&period=2025-09", headers=head).json()) == [
        "revision 2",
        "revision 1",
    ]
    assert details(client.get("/v1/audit?action=report.revise", headers=head).json()) == ["revision 2"]
    # a code reused across trees: both units without a tree, one with it
    assert len(client.get("/v1/audit?unit=14923", headers=head).json()["items"]) == 3
    assert details(client.get("/v1/audit?unit=14923&tree=legacy", headers=head).json()) == ["old tree"]


def test_pages_follow_the_cursor(client):
    head, seen, after = auth("38"), [], None
    while True:
        body = client.get("/v1/audit", params={"limit": 1} | ({"after": after} if after else {}), headers=head).json()
        seen += details(body)
        if body["next"] is None:
            break
        after = body["next"]
    assert seen == ["old tree", "revision 2", "revision 1"]


def test_a_unit_outside_the_subtree_is_403(client):
    assert client.get("/v1/audit?unit=38", headers=auth("14923")).status_code == 403
    assert client.get("/v1/audit.csv?unit=38", headers=auth("14923")).status_code == 403
    assert client.get("/v1/audit", headers=auth("38", (Scope.SUBMIT,))).status_code == 403


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("period=2025-13", "period"),
        ("action=report.delete", "action"),
        ("after=zzz", "after"),
        ("limit=0", "limit"),
        ("tree=1999", "tree"),
        ("unit=14%2023", "unit"),
    ],
)
def test_a_bad_parameter_is_422_naming_it(client, query, name):
    response = client.get(f"/v1/audit?{query}", headers=auth("38"))
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", name]


def test_the_csv_has_a_bom_and_the_same_entries(client):
    response = client.get("/v1/audit.csv?unit=14923&tree=2025", headers=auth("38"))
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert response.content.startswith(codecs.BOM_UTF8)
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert [r["detail"] for r in rows] == ["revision 2", "revision 1"]
    assert rows[0]["before"] == '{"body": {"members_attended": 280}}'
    assert "Bá Thước" in rows[0]["after"]


def test_the_csv_streams_past_one_page(client):
    audit = client.app.state.components.audit
    many = [entry(1_800_000_000 + i, BA_THUOC, detail=f"n{i}") for i in range(1200)]
    client.portal.call(audit.append_many, many)
    rows = list(csv.DictReader(io.StringIO(client.get("/v1/audit.csv", headers=auth("14923")).text.lstrip("\ufeff"))))
    assert len(rows) == 1203 and rows[0]["detail"] == "n1199"  # and the old tree's 14923
