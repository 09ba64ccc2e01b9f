"""/web/admin/accounts over HTTP with fakes: an admin creates an account (a typed password, or a
made-up one shown once), lists the accounts under its unit, disables and enables one, resets its
password and changes its roles; outside its unit a 403 page; a bad entry names its field; every
change is in the audit log."""

from __future__ import annotations

import html
import re

import pytest
from fastapi.testclient import TestClient

from shared.adapters.audit import InMemoryAuditLog
from shared.domain import passwords
from shared.domain.accounts import Role
from shared.domain.audit import Action, AuditQuery
from shared.domain.auth import Scope, account_key
from tests.unit.test_web_trees import client, guarded, login  # noqa: F401 - the fixture and the login form

ADMIN = (Scope.ADMIN, Scope.READ, Scope.STREAM)
ACCOUNT_ACTIONS = frozenset(a for a in Action if a.value.startswith("account."))


@pytest.fixture
def admin_client(client: TestClient) -> TestClient:  # noqa: F811
    client.app.state.components.audit = InMemoryAuditLog()
    return client


def create(http: TestClient, roles: list[str], **fields: str):
    data = {"username": "lan.nguyen", "display_name": "Nguyễn Thị Lan", "unit": "14926", **fields, "roles": roles}
    return http.post("/web/admin/accounts", data=data, headers=guarded(http))


def act(http: TestClient, username: str, do: str, roles: list[str] | None = None):
    data = {"do": do, **({"roles": roles} if roles is not None else {})}
    return http.post(f"/web/admin/accounts/{username}", data=data, headers=guarded(http))


def shown_password(page: str) -> str:
    return html.unescape(re.search(r'<input id="new-password" readonly value="([^"]+)"', page).group(1))


def listed(http: TestClient) -> dict[str, str]:
    rows = re.findall(
        r'<tr data-account="([^"]+)">.*?<td class="state">([^<]+)</td>', http.get("/web/admin/accounts").text, re.S
    )
    return dict(rows)


async def audited(http: TestClient) -> list[Action]:
    page = await http.app.state.components.audit.page(AuditQuery("VN", actions=ACCOUNT_ACTIONS))
    return [e.action for e in reversed(page.items)]


async def test_an_admin_creates_disables_enables_resets_and_changes_roles(admin_client):
    login(admin_client, "386", *ADMIN)
    answer = create(admin_client, ["clerk"])
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    first = shown_password(answer.text)
    web = admin_client.app.state.web
    stored = await web.accounts.get("lan.nguyen")
    assert passwords.verify(stored.password_hash, first)
    assert (stored.unit, stored.roles, stored.display_name) == ("14926", frozenset({Role.CLERK}), "Nguyễn Thị Lan")
    assert listed(admin_client) == {"lan.nguyen": "Đang dùng"}
    assert first not in admin_client.get("/web/admin/accounts/lan.nguyen").text  # shown once

    assert act(admin_client, "lan.nguyen", "disable").status_code == 303
    assert listed(admin_client) == {"lan.nguyen": "Đã khoá"}
    assert await web.api.auth.revocations.is_revoked(account_key("lan.nguyen"))
    assert act(admin_client, "lan.nguyen", "enable").status_code == 303
    assert not await web.api.auth.revocations.is_revoked(account_key("lan.nguyen"))

    reset = act(admin_client, "lan.nguyen", "reset")
    assert reset.status_code == 200 and reset.headers["cache-control"] == "no-store"
    second = shown_password(reset.text)
    stored = await web.accounts.get("lan.nguyen")
    assert second != first and passwords.verify(stored.password_hash, second)

    assert act(admin_client, "lan.nguyen", "roles", ["viewer", "reviewer"]).status_code == 303
    assert (await web.accounts.get("lan.nguyen")).roles == frozenset({Role.VIEWER, Role.REVIEWER})
    assert await audited(admin_client) == [
        Action.ACCOUNT_CREATE,
        Action.ACCOUNT_DISABLE,
        Action.ACCOUNT_ENABLE,
        Action.ACCOUNT_RESET,
        Action.ACCOUNT_ROLES,
    ]
    entries = (await admin_client.app.state.components.audit.page(AuditQuery("legacy:386"))).items
    assert not any(first in str(e.after) or second in str(e.after) for e in entries)


async def test_a_typed_password_is_kept_and_not_shown(admin_client):
    login(admin_client, "386", *ADMIN)
    answer = create(admin_client, ["clerk"], password="mat-khau-dai-du")
    assert answer.status_code == 303 and answer.headers["location"] == "/web/admin/accounts/lan.nguyen?saved=create"
    stored = await admin_client.app.state.web.accounts.get("lan.nguyen")
    assert passwords.verify(stored.password_hash, "mat-khau-dai-du")


@pytest.mark.parametrize(
    ("fields", "roles", "field"),
    [
        ({"username": "A"}, ["clerk"], "username"),
        ({"display_name": " "}, ["clerk"], "display_name"),
        ({}, [], "roles"),
        ({}, ["owner"], "roles"),
        ({"password": "ngan"}, ["clerk"], "password"),
        ({"unit": "99999"}, ["clerk"], "unit"),
        ({"email": "khong-phai-thu"}, ["clerk"], "email"),
    ],
)
def test_a_bad_entry_names_its_field_and_creates_nothing(admin_client, fields, roles, field):
    login(admin_client, "386", *ADMIN)
    answer = create(admin_client, roles, **fields)
    assert answer.status_code == 422 and f'id="err-{field}"' in answer.text and f"({field})" in answer.text
    assert listed(admin_client) == {}


def test_a_taken_username_is_a_field_error(admin_client):
    login(admin_client, "386", *ADMIN)
    create(admin_client, ["clerk"])
    answer = create(admin_client, ["viewer"], unit="386")
    assert answer.status_code == 409 and 'id="err-username"' in answer.text


def test_an_admin_acts_only_under_its_unit(admin_client):
    login(admin_client, "38", *ADMIN)
    create(admin_client, ["clerk"], unit="388")
    login(admin_client, "386", *ADMIN)
    assert listed(admin_client) == {}
    assert admin_client.get("/web/admin/accounts/lan.nguyen").status_code == 403
    assert act(admin_client, "lan.nguyen", "disable").status_code == 403
    assert create(admin_client, ["clerk"], username="khac", unit="388").status_code == 403
    assert admin_client.get("/web/admin/accounts/nobody").status_code == 404
    login(admin_client, "386", Scope.READ)
    assert admin_client.get("/web/admin/accounts").status_code == 403


def test_an_unknown_action_is_named(admin_client):
    login(admin_client, "386", *ADMIN)
    create(admin_client, ["clerk"])
    answer = act(admin_client, "lan.nguyen", "delete")
    assert answer.status_code == 422 and "(do)" in answer.text


def test_the_menu_links_the_admin_pages_for_an_admin_only(admin_client):
    login(admin_client, "386", *ADMIN)
    assert 'href="/web/admin/accounts" id="menu-admin"' in admin_client.get("/web/submissions").text
    login(admin_client, "386", Scope.READ, Scope.SUBMIT)
    assert "/web/admin/" not in admin_client.get("/web/submissions").text
