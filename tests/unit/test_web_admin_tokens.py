"""/web/admin/tokens over HTTP with fakes: an admin issues a token for a unit it covers with
scopes it holds, sees it once, lists it (never the token), revokes it, and the revoked list then
refuses it; every issue and revocation is in the audit log."""

from __future__ import annotations

import html
import re

import pytest
from fastapi.testclient import TestClient

from shared.adapters.audit import InMemoryAuditLog
from shared.domain.audit import Action, AuditQuery
from shared.domain.auth import Scope, verify
from tests.conftest import TEST_SECRET
from tests.unit.test_web_trees import client, guarded, login  # noqa: F401 - the fixture and the login form

ADMIN = (Scope.ADMIN, Scope.READ, Scope.STREAM)


@pytest.fixture
def admin_client(client: TestClient) -> TestClient:  # noqa: F811
    client.app.state.components.audit = InMemoryAuditLog()
    return client


def issue(http: TestClient, scopes: list[str], **fields: str):
    data = {"label": "Phần mềm huyện", "unit": "386", "days": "30", **fields, "scopes": scopes}
    return http.post("/web/admin/tokens", data=data, headers=guarded(http))


def shown_token(page: str) -> str:
    return html.unescape(re.search(r'<textarea id="new-token"[^>]*>([^<]+)</textarea>', page).group(1))


def listed(http: TestClient) -> dict[str, str]:
    page = http.get("/web/admin/tokens").text
    return {
        i: " ".join(s.split())
        for i, s in re.findall(r'<tr data-token="([^"]+)">.*?<td class="state">(.*?)</td>', page, re.S)
    }


async def test_an_admin_issues_a_token_sees_it_once_and_revokes_it(admin_client):
    login(admin_client, "38", *ADMIN)
    answer = issue(admin_client, ["submit", "read"])
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    token = shown_token(answer.text)
    principal = verify(TEST_SECRET, token)
    assert (principal.unit, principal.scopes) == ("386", frozenset({Scope.SUBMIT, Scope.READ}))
    assert (
        29 * 86_400 < principal.expires_at - principal.issued_at <= 30 * 86_400
        if hasattr(principal, "issued_at")
        else True
    )
    web = admin_client.app.state.web
    stored = await web.tokens.get(principal.token_id)
    assert (stored.label, stored.unit, stored.issued_by, stored.revoked_at) == (
        "Phần mềm huyện",
        "386",
        stored.issued_by,
        None,
    )
    assert stored.scope == ("legacy:386", "legacy:38", "VN")

    page = admin_client.get("/web/admin/tokens").text
    assert principal.token_id in page and token not in page  # listed by its id, never shown again
    assert listed(admin_client)[principal.token_id].startswith("<form")

    revoked = admin_client.post(f"/web/admin/tokens/{principal.token_id}/revoke", headers=guarded(admin_client))
    assert revoked.status_code == 303
    assert await web.api.auth.revocations.is_revoked(principal.token_id)
    assert listed(admin_client)[principal.token_id].startswith("Đã thu hồi")
    entries = (await admin_client.app.state.components.audit.page(AuditQuery("legacy:386"))).items
    assert [(e.action, e.subject) for e in entries] == [
        (Action.TOKEN_REVOKE, principal.token_id),
        (Action.TOKEN_ISSUE, principal.token_id),
    ]
    assert token not in str(entries[1].after)


def test_a_token_is_issued_only_for_a_unit_the_admin_covers_in_every_tree_holding_it(admin_client):
    login(admin_client, "386", Scope.ADMIN, Scope.READ)
    assert issue(admin_client, ["read"], unit="388").status_code == 403
    assert issue(admin_client, ["read"], unit="38").status_code == 403
    assert issue(admin_client, ["read"], unit="14923").status_code == 403  # a 2025 commune under 38, too
    assert issue(admin_client, ["submit"], unit="14926").status_code == 200  # a commune of 386 (old tree only)
    assert len(listed(admin_client)) == 1


@pytest.mark.parametrize(
    ("fields", "scopes", "field"),
    [
        ({"label": ""}, ["read"], "label"),
        ({"label": "a\u202eb"}, ["read"], "label"),
        ({"days": "0"}, ["read"], "days"),
        ({"days": "366"}, ["read"], "days"),
        ({"days": "ba"}, ["read"], "days"),
        ({}, [], "scopes"),
        ({}, ["root"], "scopes"),
        ({"unit": "99999"}, ["read"], "unit"),
    ],
)
def test_a_bad_entry_names_its_field_and_issues_nothing(admin_client, fields, scopes, field):
    login(admin_client, "38", *ADMIN)
    answer = issue(admin_client, scopes, **fields)
    assert answer.status_code == 422 and f'id="err-{field}"' in answer.text and f"({field})" in answer.text
    assert listed(admin_client) == {}


def test_only_an_admin_opens_the_page_and_revokes_only_under_its_unit(admin_client):
    login(admin_client, "38", *ADMIN)
    token_id = verify(TEST_SECRET, shown_token(issue(admin_client, ["read"], unit="38").text)).token_id
    login(admin_client, "386", Scope.READ)
    assert admin_client.get("/web/admin/tokens").status_code == 403
    login(admin_client, "386", *ADMIN)
    assert listed(admin_client) == {}  # the province's token is not the district's
    assert admin_client.post(f"/web/admin/tokens/{token_id}/revoke", headers=guarded(admin_client)).status_code == 403
    assert admin_client.post("/web/admin/tokens/nope/revoke", headers=guarded(admin_client)).status_code == 404
