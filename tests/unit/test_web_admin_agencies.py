"""/web/admin/agencies over HTTP with fakes: only an admin opens it, it lists the admin's
agencies, registers, renames, closes and reopens one under the admin's unit (a 403 page for any
other), names the field of a bad entry, and writes each change to the audit log."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from shared.adapters.audit import InMemoryAuditLog
from shared.domain.audit import Action, AuditQuery
from shared.domain.auth import Scope
from shared.domain.hierarchy import LEGACY, TREE_2025
from tests.unit.test_agency_changes import ChangingRegistry
from tests.unit.test_web_trees import client, guarded, login  # noqa: F401 - the fixture and the login form

ADMIN = (Scope.ADMIN, Scope.READ)


@pytest.fixture
def admin_client(client: TestClient) -> TestClient:  # noqa: F811
    components = client.app.state.components
    components.agencies.registry = ChangingRegistry(components.tree.version_named(LEGACY))
    components.audit = InMemoryAuditLog()
    return client


def post(http: TestClient, url: str, **data: str):
    return http.post(url, data=data, headers=guarded(http))


def listed(http: TestClient) -> dict[str, str]:
    html = http.get("/web/admin/agencies").text
    return dict(re.findall(r'<tr data-agency="([^"]+)">.*?<td class="state">([^<]+)</td>', html, re.S))


AGENCY_ACTIONS = frozenset({Action.AGENCY_REGISTER, Action.AGENCY_RENAME, Action.AGENCY_CLOSE})


async def actions(http: TestClient, scope: str = "VN") -> list[Action]:
    page = await http.app.state.components.audit.page(AuditQuery(scope=scope, actions=AGENCY_ACTIONS))
    return [e.action for e in page.items]


def test_only_an_admin_opens_the_page(admin_client):
    login(admin_client, "38", Scope.READ, Scope.SUBMIT)
    page = admin_client.get("/web/admin/agencies")
    assert page.status_code == 403 and "quyền quản trị" in page.text


async def test_an_admin_registers_renames_closes_and_reopens_an_agency(admin_client):
    login(admin_client, "38", *ADMIN)
    answer = post(admin_client, "/web/admin/agencies", parent="38", code="38-bvdk", name="Bệnh viện Đa khoa")
    assert answer.status_code == 303 and answer.headers["location"] == "/web/admin/agencies?saved=38-bvdk"
    assert listed(admin_client) == {"38-bvdk": "Đang hoạt động"}
    tree = admin_client.app.state.components.tree
    assert "38-bvdk" in tree.version_named(TREE_2025) and "38-bvdk" in tree.version_named(LEGACY)

    assert post(admin_client, "/web/admin/agencies/38-bvdk", do="rename", name="Bệnh viện tỉnh").status_code == 303
    assert post(admin_client, "/web/admin/agencies/38-bvdk", do="close", closed_from="2025-10-01").status_code == 303
    assert listed(admin_client) == {"38-bvdk": "Đóng từ 2025-10-01"}
    assert "Bệnh viện tỉnh" in admin_client.get("/web/admin/agencies").text
    assert post(admin_client, "/web/admin/agencies/38-bvdk", do="reopen").status_code == 303
    assert listed(admin_client) == {"38-bvdk": "Đang hoạt động"}
    assert await actions(admin_client, "2025:38") == [
        Action.AGENCY_CLOSE,
        Action.AGENCY_CLOSE,
        Action.AGENCY_RENAME,
        Action.AGENCY_REGISTER,
    ]
    entries = (await admin_client.app.state.components.audit.page(AuditQuery("VN", actions=AGENCY_ACTIONS))).items
    assert (entries[1].before, entries[1].after) == ({"closed_from": None}, {"closed_from": "2025-10-01"})
    assert entries[2].after == {"name": "Bệnh viện tỉnh"} and entries[2].actor.startswith("token:")


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"parent": "38", "code": "38 bv", "name": "Bệnh viện"}, "code"),
        ({"parent": "38", "code": "38-bv", "name": "<b>"}, "name"),
        ({"parent": "", "code": "38-bv", "name": "Bệnh viện"}, "parent"),
        ({"parent": "99999", "code": "99999-bv", "name": "Bệnh viện"}, "parent"),
    ],
)
def test_a_bad_registration_names_its_field_and_changes_nothing(admin_client, data, field):
    login(admin_client, "38", *ADMIN)
    answer = post(admin_client, "/web/admin/agencies", **data)
    assert answer.status_code == 422
    assert f'id="err-f-{field}"' in answer.text and f"({field})" in answer.text
    assert listed(admin_client) == {}


def test_a_bad_closing_date_names_its_field(admin_client):
    login(admin_client, "38", *ADMIN)
    post(admin_client, "/web/admin/agencies", parent="38", code="38-bv", name="Bệnh viện")
    answer = post(admin_client, "/web/admin/agencies/38-bv", do="close", closed_from="2025-02-30")
    assert answer.status_code == 422 and "(closed_from)" in answer.text
    assert listed(admin_client) == {"38-bv": "Đang hoạt động"}


def test_a_district_admin_acts_only_under_its_district(admin_client):
    login(admin_client, "38", *ADMIN)
    post(admin_client, "/web/admin/agencies", parent="38", code="38-bv", name="Bệnh viện")
    login(admin_client, "386", *ADMIN)
    assert listed(admin_client) == {}  # the province's agency is not the district's
    assert post(admin_client, "/web/admin/agencies/38-bv", do="close", closed_from="2025-01-01").status_code == 403
    assert post(admin_client, "/web/admin/agencies", parent="388", code="388-bv", name="X").status_code == 403
    assert post(admin_client, "/web/admin/agencies", parent="386", code="386-bv", name="Trường").status_code == 303
    assert post(admin_client, "/web/admin/agencies/386", do="close", closed_from="2025-01-01").status_code == 404
    assert listed(admin_client) == {"386-bv": "Đang hoạt động"}


def test_a_change_without_the_sessions_csrf_token_is_refused(admin_client):
    login(admin_client, "38", *ADMIN)
    answer = admin_client.post(
        "/web/admin/agencies",
        data={"parent": "38", "code": "38-bv", "name": "B"},
        headers={"Origin": "http://testserver"},
    )
    assert answer.status_code == 403 and listed(admin_client) == {}
