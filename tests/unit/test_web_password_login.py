"""Logging in to the pages with a username and a password (services/api/web/pages/session.py),
on an app with the in-memory stores: one message for any failure, the throttle, the account read
again on every request, and the audit entries of logins and logouts."""

import re
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import pytest
from fastapi.testclient import TestClient
from starlette.requests import Request

from services.api.app import create_app
from services.api.repository import InMemoryTotalsReader
from services.api.settings import ApiSettings
from services.api.web.accounts import cli_actor
from services.api.web.components import WebComponents
from services.api.web.deps import account_session
from services.api.web.pages.session import BAD_LOGIN
from services.api.web.session import MINTED_SECONDS, InMemorySessions, LoginThrottle
from shared.adapters.audit import InMemoryAuditLog
from shared.adapters.revocations import InMemoryRevocations
from shared.domain.audit import Action
from shared.domain.auth import Principal, Scope, account_key, mint, verify
from shared.domain.hierarchy import load_vietnam
from tests.conftest import TEST_SECRET
from tests.unit.test_api_app import DOCS

T = TypeVar("T")
ORIGIN = "http://testserver"
PASSWORD = "mật khẩu rất dài 38"
ADMIN = Principal("s-admin", "38", frozenset({Scope.ADMIN, Scope.READ, Scope.STREAM}), 2**31, "admin.38")


@pytest.fixture
def client() -> Iterator[TestClient]:
    settings = ApiSettings(
        kafka_bootstrap_servers="unused:9092",
        mongodb_uri="mongodb://unused",
        auth_secret=TEST_SECRET,  # type: ignore[arg-type]  # pydantic takes the plain string
        ingest_url="http://127.0.0.1:9",
    )
    revocations = InMemoryRevocations()
    app = create_app(settings, reader=InMemoryTotalsReader(DOCS), tree=load_vietnam(["38"]), revocations=revocations)
    with TestClient(app, follow_redirects=False, headers={"Origin": ORIGIN}) as c:
        web = web_of(c)
        call(c, lambda: web.account_service.create(
            cli_actor(), username="clerk.38", display_name="Văn thư 38", unit="38", roles=["clerk"], password=PASSWORD
        ))  # fmt: skip
        yield c


def call(client: TestClient, function: Callable[..., Awaitable[T]], *args: object) -> T:
    """``function(*args)`` on the app's event loop."""
    assert client.portal is not None
    return client.portal.call(function, *args)


def web_of(client: TestClient) -> WebComponents:
    web: WebComponents = client.app.state.web  # type: ignore[attr-defined]
    return web


def audit(client: TestClient) -> list[tuple[str, str, str | None]]:
    log = web_of(client).api.audit
    assert isinstance(log, InMemoryAuditLog)
    return [(e.action, e.actor, e.origin) for e in log.entries]


def password_login(client: TestClient, username: str, password: str):  # type: ignore[no-untyped-def]
    proof = re.search(r'name="csrf" value="([^"]+)"', client.get("/web/login").text)
    assert proof is not None
    return client.post("/web/login/password", data={"username": username, "password": password, "csrf": proof[1]})


def csrf_of(client: TestClient) -> str:
    meta = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/web/submissions").text)
    assert meta is not None, "no CSRF token on the page"
    return meta[1]


def test_a_password_login_opens_a_session_whose_principal_is_the_account(client: TestClient) -> None:
    answer = password_login(client, " Clerk.38 ", PASSWORD)  # the name as typed, case and spaces aside
    assert (answer.status_code, answer.headers["location"]) == (303, "/web/")
    cookie = answer.headers["set-cookie"]
    assert "baocao_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert PASSWORD not in answer.text and "clerk.38" not in cookie
    assert client.get("/web/").headers["location"] == "/web/units/38"  # the account's unit
    assert client.get("/web/units/38").status_code == 200
    stored = next(iter(web_of(client).sessions.sessions.values()))  # type: ignore[attr-defined]
    assert stored.account == "clerk.38" and stored.token == ""
    assert audit(client) == [(Action.LOGIN, "clerk.38", "testclient")]


def test_every_failure_says_the_same_and_is_audited_with_the_name_tried(client: TestClient) -> None:
    answers = [
        password_login(client, "clerk.38", "not the password"),
        password_login(client, "nobody.here", PASSWORD),
        password_login(client, "", PASSWORD),
        password_login(client, "clerk.38", "x" * 300),
    ]
    for answer in answers:
        assert (
            answer.status_code == 401
            and BAD_LOGIN in answer.text
            and "baocao_session" not in answer.headers.get("set-cookie", "")
        )
    assert 'value="nobody.here"' in answers[1].text  # the name stays in the form; the password never
    assert [a for a, _, _ in audit(client)] == [Action.LOGIN_FAILED] * 4
    assert [who for _, who, _ in audit(client)][:2] == ["clerk.38", "nobody.here"]
    log = web_of(client).api.audit
    assert isinstance(log, InMemoryAuditLog)
    assert [e.detail for e in log.entries][:2] == ["wrong password", "no such account"]  # for the admins only
    assert log.entries[1].unit == "VN" and log.entries[0].unit == "38"


def test_five_failures_throttle_the_username_even_for_the_right_password(client: TestClient) -> None:
    for _ in range(5):
        assert password_login(client, "clerk.38", "wrong password!").status_code == 401
    throttled = password_login(client, "clerk.38", PASSWORD)
    assert throttled.status_code == 429 and 0 < int(throttled.headers["retry-after"]) <= 900
    assert "15 phút" in throttled.text and "baocao_session" not in throttled.headers.get("set-cookie", "")
    assert len(audit(client)) == 5  # a throttled attempt is refused before any check, and not logged again


def test_a_disabled_account_is_out_at_its_next_request_and_cannot_log_in(client: TestClient) -> None:
    assert password_login(client, "clerk.38", PASSWORD).status_code == 303
    assert client.get("/web/submit").status_code == 200
    web = web_of(client)
    call(client, web.account_service.disable, ADMIN, "clerk.38")
    assert client.get("/web/submit").headers["location"] == "/web/login"
    assert web.sessions.sessions == {}  # type: ignore[attr-defined]
    refused = password_login(client, "clerk.38", PASSWORD)
    assert refused.status_code == 401 and BAD_LOGIN in refused.text  # the right password, told nothing more
    call(client, web.account_service.enable, ADMIN, "clerk.38")
    assert password_login(client, "clerk.38", PASSWORD).status_code == 303


def test_roles_changed_by_an_admin_apply_at_the_next_request(client: TestClient) -> None:
    password_login(client, "clerk.38", PASSWORD)
    assert client.get("/web/submit").status_code == 200
    call(client, web_of(client).account_service.set_roles, ADMIN, "clerk.38", ["viewer"])
    assert client.get("/web/submit").status_code == 403
    assert client.get("/web/units/38").status_code == 200


def test_the_pages_mint_a_short_token_naming_the_account_and_logout_is_audited(client: TestClient) -> None:
    password_login(client, "clerk.38", PASSWORD)
    web = web_of(client)
    stored = next(iter(web.sessions.sessions.values()))  # type: ignore[attr-defined]
    request = Request({"type": "http", "method": "GET", "headers": [], "client": ("203.0.113.7", 5000)})
    session = call(client, account_session, web, request, stored)
    minted = verify(TEST_SECRET, session.token)
    assert (minted.account, minted.origin, minted.unit) == ("clerk.38", "203.0.113.7", "38")
    assert minted.scopes == {Scope.SUBMIT, Scope.READ} and minted.expires_at - time.time() <= MINTED_SECONDS
    assert session.principal.token_id == stored.token_id and session.account is not None
    assert session.principal.origin == "203.0.113.7"
    client.headers["X-CSRF-Token"] = csrf_of(client)
    out = client.post("/web/logout")
    assert out.headers["location"] == "/web/login"
    assert audit(client)[-1] == (Action.LOGOUT, "clerk.38", "testclient")
    assert client.get("/web/").headers["location"] == "/web/login"


def test_the_throttle_counts_per_username_and_per_address_and_forgets_after_the_window() -> None:
    now = [1000.0]
    throttle = LoginThrottle(per_username=3, per_address=5, window=60, max_keys=4, clock=lambda: now[0])
    for _ in range(3):
        assert throttle.retry_after("a", "10.0.0.1") == 0
        throttle.failed("a", "10.0.0.1")
        now[0] += 1
    assert throttle.retry_after("a", "10.0.0.9") == 57  # the name, from anywhere
    assert throttle.retry_after("b", "10.0.0.1") == 0  # another name from the same office
    throttle.failed("b", "10.0.0.1")
    throttle.failed("c", "10.0.0.1")
    assert throttle.retry_after("d", "10.0.0.1") == 57  # the address: five failures, the first at 1000
    now[0] += 58
    assert throttle.retry_after("a", None) == 0 and throttle.retry_after("d", "10.0.0.1") == 0
    throttle.failed("b", None)
    throttle.succeeded("b")
    assert throttle.retry_after("b", None) == 0
    for name in "efgh":  # more names than it keeps: the oldest are forgotten
        throttle.failed(name, None)
    assert len(throttle._failures) == 4


async def test_an_account_ends_its_sessions_but_the_one_kept_and_a_revoked_account_ends_its_streams() -> None:
    revocations = InMemoryRevocations()
    store = InMemorySessions(revocations)
    _, a1 = await store.create("", "s-1", time.time() + 60, "clerk.a")
    _, a2 = await store.create("", "s-2", time.time() + 60, "clerk.a")
    _, b1 = await store.create("", "s-3", time.time() + 60, "clerk.b")
    _, token = await store.create("bcv1.x.y", "t-1", time.time() + 60)
    await store.end_account("clerk.a", keep=a2.key)
    assert set(store.sessions) == {a2.key, b1.key, token.key}
    await revocations.revoke(account_key("clerk.b"), "disabled")
    assert await store.ended([a1, a2, b1, token]) == {a1.key, b1.key}


def test_an_account_changes_its_own_password_and_its_other_sessions_end(client: TestClient) -> None:
    web = web_of(client)
    other = TestClient(client.app, follow_redirects=False, headers={"Origin": ORIGIN})
    assert password_login(other, "clerk.38", PASSWORD).status_code == 303  # another browser
    password_login(client, "clerk.38", PASSWORD)
    page = client.get("/web/password")
    assert page.status_code == 200 and 'id="password-form"' in page.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None

    def change(current: str, new: str, again: str) -> str:
        fields = {"current_password": current, "new_password": new, "again": again, "csrf": csrf[1]}
        answer = client.post("/web/password", data=fields)
        fields_in_error = re.findall(r'id="err-([a-z_]+)"', answer.text)
        return " ".join([str(answer.status_code), *fields_in_error])

    assert change("wrong password 1", "a new password 22", "a new password 22") == "422 current_password"
    assert change(PASSWORD, "short", "short") == "422 new_password"
    assert change(PASSWORD, "a new password 22", "a new password 23") == "422 again"
    assert change(PASSWORD, "a new password 22", "a new password 22") == "200"
    assert client.get("/web/units/38").status_code == 200  # this session stays
    assert other.get("/web/units/38").headers["location"] == "/web/login"  # the other one ended
    assert password_login(other, "clerk.38", "a new password 22").status_code == 303
    assert [a for a, _, _ in audit(client)][-2:] == [Action.ACCOUNT_PASSWORD, Action.LOGIN]
    assert web.throttle.retry_after("clerk.38", "testclient") == 0  # one wrong guess is far from the limit


def test_a_token_session_has_no_password_to_change(client: TestClient) -> None:
    proof = re.search(r'name="csrf" value="([^"]+)"', client.get("/web/login").text)
    assert proof is not None
    token = mint(TEST_SECRET, "38", [Scope.READ], 600)
    assert client.post("/web/login", data={"token": token, "csrf": proof[1]}).status_code == 303
    assert client.get("/web/password").status_code == 404
