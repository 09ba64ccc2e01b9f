"""Signing in through an OpenID Connect provider, in a real headless Chromium: the login page's
button, the provider (tests/e2e/oidc_provider.py, on another site than the pages), the callback,
and the account linked to the identity signed in. An identity linked to no account, and a
disabled account's, are refused with a page and a ``login.failed`` entry in the audit log.

One stack for the module, without an aggregator: nothing here is counted."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import httpx
import pytest
from pymongo import AsyncMongoClient, MongoClient

from shared.adapters.accounts import MongoAccountStore
from shared.adapters.mongo import AUDIT_LOG
from shared.domain.accounts import Account, Role
from tests.conftest import Namespace

from .browser import Browser
from .oidc_provider import Provider, User
from .system import System, start_system

pytestmark = pytest.mark.e2e

CLIENT_ID, CLIENT_SECRET, NAME = "baocao-thanhhoa", "a-secret-only-the-test-knows", "SSO Thanh Hóa"
HOA = User("248289761001", "hoa.le", "Lê Thị Hoa", "hoa@thanhhoa.example.vn")
STRANGER = User("990000000042", "la.nguoi", "Người Lạ", "la@example.vn")
LOCKED = User("248289761077", "khoa.tran", "Trần Văn Khóa", "khoa@thanhhoa.example.vn")


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    provider = Provider(CLIENT_ID, CLIENT_SECRET, HOA, consent_page=True).start()
    try:
        yield provider
    finally:
        provider.stop()


def oidc_env(provider: Provider) -> dict[str, str]:
    """The settings that plug ``provider`` into the pages."""
    return {
        "BAOCAO_OIDC_ISSUER": provider.issuer,
        "BAOCAO_OIDC_CLIENT_ID": provider.client_id,
        "BAOCAO_OIDC_CLIENT_SECRET": provider.client_secret,
        "BAOCAO_OIDC_NAME": NAME,
    }


async def link_accounts(namespace: Namespace, issuer: str) -> None:
    client: AsyncMongoClient = AsyncMongoClient(namespace.env["MONGODB_URI"])
    try:
        store = MongoAccountStore(client, namespace.database)
        for user, username, disabled in ((HOA, "hoa.le", False), (LOCKED, "khoa.tran", True)):
            await store.create(
                Account(
                    username=username,
                    display_name=user.name,
                    unit="386",
                    roles=frozenset({Role.VIEWER}),
                    oidc_subject=f"{issuer} {user.sub}",
                    disabled=disabled,
                    created_by="test",
                )
            )
    finally:
        await client.close()


@pytest.fixture(scope="module")
def system(infra: dict[str, str], provider: Provider) -> Iterator[System]:
    from tools.topics import create_topics

    namespace = Namespace(uuid.uuid4().hex[:8], infra)
    create_topics(infra["KAFKA_BOOTSTRAP_SERVERS"], 4, namespace.env)
    asyncio.run(link_accounts(namespace, provider.issuer))
    system = start_system(namespace, aggregators=0, env=oidc_env(provider))
    provider.redirect_uris.add(f"{system.api.url}/web/oidc/callback")
    try:
        yield system
    finally:
        system.stop()


@pytest.fixture
def browser(chromium, system: System, screenshots) -> Browser:
    browser = Browser(chromium, system.api.url, screenshots)
    browser.open("/web/login")
    browser.driver.delete_all_cookies()
    return browser


def sign_in_as(browser: Browser, provider: Provider, user: User) -> None:
    """From the login page's button, through the provider, back to the pages."""
    provider.user = user
    browser.open("/web/login")
    button = browser.find("a[href='/web/oidc/start']")
    assert button.text.startswith("Đăng nhập") and button.text.endswith(NAME)
    button.click()
    browser.wait(lambda d: d.current_url.startswith(provider.issuer), what="the provider's page")
    browser.find("#consent").click()  # the way back starts on the provider's site, as a person's does
    browser.wait(lambda d: signed_in_or_refused(browser), what="the pages after the provider")


def signed_in_or_refused(browser: Browser) -> bool:
    """On this site again, past the provider and the page that goes on to /web/."""
    url = browser.driver.current_url
    if not url.startswith(browser.base) or "/web/oidc/start" in url or "/web/login" in url:
        return False
    return "/web/oidc/callback" not in url or browser.text("h1") != "Đã đăng nhập"


def failed_logins(system: System) -> list[dict]:
    with MongoClient(system.namespace.env["MONGODB_URI"]) as mongo:
        return list(mongo[system.namespace.database][AUDIT_LOG].find({"action": "login.failed"}))


def test_a_linked_identity_signs_in_as_its_account(browser, provider, system):
    sign_in_as(browser, provider, HOA)
    assert browser.path.startswith("/web/units/386"), browser.path
    assert browser.driver.get_cookie("baocao_oidc") is None  # the attempt is forgotten
    browser.session_cookie()
    browser.screenshot("dang-nhap-sso")
    # the session is the account's: its token is refused outside the account's unit
    browser.open("/web/units/388")
    assert browser.text("h1") == "Không có quyền truy cập"


def test_an_identity_linked_to_no_account_is_refused_and_recorded(browser, provider, system):
    sign_in_as(browser, provider, STRANGER)
    assert browser.text("h1") == "Không có quyền truy cập"
    assert "chưa được liên kết với tài khoản nào" in browser.text("main")
    assert browser.driver.get_cookie("baocao_session") is None
    subject = f"{provider.issuer} {STRANGER.sub}"
    assert any(e["subject"] == subject for e in failed_logins(system)), failed_logins(system)


def test_a_disabled_account_is_refused_through_the_provider_too(browser, provider, system):
    sign_in_as(browser, provider, LOCKED)
    assert browser.text("h1") == "Không có quyền truy cập"
    assert "khoa.tran đã bị khoá" in browser.text("main")
    assert browser.driver.get_cookie("baocao_session") is None
    assert any(e["actor"] == "khoa.tran" for e in failed_logins(system))


def test_a_callback_that_is_not_this_browsers_attempt_is_a_clear_page_not_a_500(system, provider):
    with httpx.Client(base_url=system.api.url) as http:
        forged = http.get("/web/oidc/callback", params={"state": "x" * 43, "code": "stolen"})
        assert forged.status_code == 400
        assert "hãy bắt đầu lại từ trang đăng nhập" in forged.text
        started = http.get("/web/oidc/start")
        assert started.status_code == 303 and started.headers["location"].startswith(provider.issuer)
        cookie = started.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and "path=/web/oidc" in cookie
        # the right cookie, but a state the provider never issued for it
        wrong = http.get("/web/oidc/callback", params={"state": "y" * 43, "code": "stolen"})
        assert wrong.status_code == 400
