"""The OpenID Connect pages over HTTP with the fakes (no sockets): the tests' provider
(tests/e2e/oidc_provider.py) answers through an in-process transport, the accounts and the audit
log are the in-memory ones of an app built without a database."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from services.api.app import create_app
from services.api.repository import InMemoryTotalsReader
from services.api.settings import ApiSettings
from services.api.web.oidc import OidcClient, OidcConfig
from shared.adapters.revocations import InMemoryRevocations
from shared.domain.accounts import Account, Role
from shared.domain.audit import Action
from shared.domain.hierarchy import load_vietnam
from tests.conftest import TEST_SECRET
from tests.e2e.oidc_provider import Provider, User
from tests.unit.test_api_app import DOCS

ORIGIN = "http://testserver"
HOA = User("248289761001", "hoa.le", "Lê Thị Hoa", "hoa@thanhhoa.example.vn")
STRANGER = User("990000000042", "la.nguoi", "Người Lạ", "la@example.vn")
COMMON = {
    "kafka_bootstrap_servers": "unused:9092",
    "mongodb_uri": "mongodb://unused",
    "auth_secret": TEST_SECRET,
    "ingest_url": "http://127.0.0.1:9",
}


@pytest.fixture
def provider() -> Provider:
    return Provider("baocao", "s3cret", HOA, redirect_uris={f"{ORIGIN}/web/oidc/callback"}, port=8999)


@pytest.fixture
def client(provider: Provider) -> Iterator[TestClient]:
    settings = ApiSettings(
        **COMMON,
        oidc_issuer=provider.issuer,
        oidc_client_id=provider.client_id,
        oidc_client_secret=provider.client_secret,
        oidc_name="SSO Thanh Hóa",
    )
    app = create_app(
        settings, reader=InMemoryTotalsReader(DOCS), tree=load_vietnam(["38"]), revocations=InMemoryRevocations()
    )
    with TestClient(app, follow_redirects=False, headers={"Origin": ORIGIN}) as c:
        config = OidcConfig.of(settings)
        assert config is not None
        app.state.oidc = OidcClient(config, transport=httpx.ASGITransport(app=provider.app()))
        asyncio.run(
            app.state.web.accounts.create(
                Account(
                    "hoa.le",
                    "Lê Thị Hoa",
                    "386",
                    frozenset({Role.VIEWER}),
                    oidc_subject=f"{provider.issuer} {HOA.sub}",
                )
            )
        )
        yield c


def through_the_provider(client: TestClient, provider: Provider) -> httpx.Response:
    """Start, the provider's consent, and the callback, as the browser follows them."""
    started = client.get("/web/oidc/start")
    assert started.status_code == 303, started.text
    consent = asyncio.run(_consent(provider, started.headers["location"]))
    back = urlsplit(consent)
    assert f"{back.scheme}://{back.netloc}" == ORIGIN
    return client.get(f"{back.path}?{back.query}")


async def _consent(provider: Provider, url: str) -> str:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=provider.app())) as browser:
        answer = await browser.get(url)
    assert answer.status_code == 302, answer.text
    return answer.headers["location"]


def test_the_login_page_shows_the_providers_button(client):
    page = client.get("/web/login").text
    assert re.search(r'<a[^>]+href="/web/oidc/start"[^>]*>Đăng nhập [^<]*SSO Thanh Hóa</a>', page)


def test_a_linked_identity_opens_its_accounts_session(client, provider):
    answer = through_the_provider(client, provider)
    assert answer.status_code == 200, answer.text
    assert '<meta http-equiv="refresh" content="0; url=/web/">' in answer.text
    assert "baocao_session=" in answer.headers["set-cookie"]
    assert client.cookies.get("baocao_oidc") is None
    home = client.get("/web/", follow_redirects=True)
    assert home.status_code == 200 and "/web/units/386" in str(home.url)


def test_an_unlinked_identity_is_refused_and_recorded(client, provider):
    provider.user = STRANGER
    answer = through_the_provider(client, provider)
    assert answer.status_code == 403
    assert "chưa được liên kết với tài khoản nào" in answer.text
    assert "baocao_session" not in answer.headers.get("set-cookie", "")
    audit = client.app.state.web.api.audit  # type: ignore[attr-defined]
    failed = [e for e in audit.entries if e.action is Action.LOGIN_FAILED]
    assert [e.subject for e in failed] == [f"{provider.issuer} {STRANGER.sub}"]


def test_a_disabled_account_is_refused(client, provider):
    accounts = client.app.state.web.accounts  # type: ignore[attr-defined]
    hoa = asyncio.run(accounts.get("hoa.le"))
    asyncio.run(accounts.update(hoa.changed(disabled=True)))
    answer = through_the_provider(client, provider)
    assert answer.status_code == 403 and "hoa.le đã bị khoá" in answer.text


def test_a_callback_without_this_browsers_attempt_is_a_400_page(client):
    answer = client.get("/web/oidc/callback", params={"state": "x" * 43, "code": "c"})
    assert answer.status_code == 400 and "bắt đầu lại từ trang đăng nhập" in answer.text


def test_the_providers_refusal_is_shown(client, provider):
    started = client.get("/web/oidc/start")
    state = re.search(r"state=([^&]+)", started.headers["location"])
    assert state
    answer = client.get("/web/oidc/callback", params={"state": state.group(1), "error": "access_denied"})
    assert answer.status_code == 401 and "SSO Thanh Hóa không cho đăng nhập (access_denied)" in answer.text


def test_the_pages_answer_404_when_no_provider_is_configured():
    app = create_app(
        ApiSettings(**COMMON),
        reader=InMemoryTotalsReader(DOCS),
        tree=load_vietnam(["38"]),
        revocations=InMemoryRevocations(),
    )
    with TestClient(app, follow_redirects=False) as c:
        assert c.get("/web/oidc/start").status_code == 404
        assert c.get("/web/oidc/callback").status_code == 404
        assert "/web/oidc/start" not in c.get("/web/login").text


def test_a_provider_that_went_away_is_a_502_page(client, provider):
    started = client.get("/web/oidc/start")
    state = re.search(r"state=([^&]+)", started.headers["location"])
    assert state

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    app = client.app
    app.state.oidc = OidcClient(app.state.oidc.config, transport=httpx.MockTransport(down))  # type: ignore[attr-defined]
    answer = client.get("/web/oidc/callback", params={"state": state.group(1), "code": "c"})
    assert answer.status_code == 502
    assert "Không kết nối được tới SSO Thanh Hóa" in answer.text
    assert "baocao_session" not in answer.headers.get("set-cookie", "")
