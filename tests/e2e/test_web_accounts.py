"""People's accounts against the services as processes, in headless Chromium: accounts made with
``baocao account``, a password login that sends a report through the pages (ingest gets a token
minted for the account), one message for a wrong password, the throttle, logout, and a disabled
account refused within seconds on the pages, on its open live stream and at ingest.

How long a disabled account's stream and tokens still worked is printed with the prefix
``MEASURE`` for the closing note.
"""

from __future__ import annotations

import html
import io
import re
import time
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import httpx
import pytest
from pymongo import MongoClient

from shared.adapters.mongo import AUDIT_LOG
from shared.domain.auth import Scope, mint
from tests.conftest import TEST_SECRET, wait_until
from tools import cli
from tools.demo import DEMO_ADMIN, ensure_admin_account

from .browser import Browser
from .system import System, own_system
from .test_web_session_security import HOME, PROMPT_SECONDS, SEED, Listener, Reports

pytestmark = pytest.mark.e2e

PASSWORD = "mật khẩu của văn thư 1"
REFUSED_WITHIN = 10.0  # seconds: the revocation caches hold 5 s; ingest's and the stream guard's


@pytest.fixture(scope="module")
def system(infra: dict[str, str]) -> Iterator[System]:
    yield from own_system(infra)


@pytest.fixture
def browser(chromium, system: System, screenshots) -> Browser:  # type: ignore[no-untyped-def]
    return Browser(chromium, system.api.url, screenshots)


def account(system: System, monkeypatch: pytest.MonkeyPatch, *args: str, password: str | None = None) -> int:
    """``baocao account ARGS`` on the system's database, the password on standard input."""
    monkeypatch.setenv("MONGODB_URI", system.namespace.env["MONGODB_URI"])
    monkeypatch.setenv("MONGODB_DATABASE", system.namespace.database)
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{password}\n" if password is not None else ""))
    return cli.main(["account", *args])


def password_login(system: System, username: str, password: str) -> httpx.Client:
    """An HTTP client that posted the password form as a browser does (its answer in .answer)."""
    http = httpx.Client(base_url=system.api.url, timeout=30, follow_redirects=False)
    proof = re.search(r'name="csrf" value="([^"]+)"', http.get("/web/login").text)
    assert proof is not None
    http.answer = http.post(  # type: ignore[attr-defined]
        "/web/login/password",
        data={"username": username, "password": password, "csrf": html.unescape(proof[1])},
        headers={"Origin": system.api.url},
    )
    return http


def browser_login(browser: Browser, username: str, password: str) -> None:
    browser.open("/web/login")
    browser.driver.delete_all_cookies()
    browser.open("/web/login")
    browser.find("#username").send_keys(username)
    browser.find("#password").send_keys(password)
    browser.find("#password-login button").click()


def test_a_clerk_logs_in_with_a_password_sends_a_report_and_logs_out(browser, system, monkeypatch):
    made = account(
        system, monkeypatch, "create", "--username", "clerk.home", "--unit", HOME, "--role", "clerk",
        "--name", "Văn thư xã", password=PASSWORD,
    )  # fmt: skip
    assert made == 0
    browser_login(browser, "clerk.home", "not the password")
    browser.wait(lambda d: browser.all("#password-error"), what="the login error")
    assert browser.text("#password-error") == "Tên đăng nhập hoặc mật khẩu không đúng."
    assert browser.driver.get_cookie("baocao_session") is None
    assert browser.find("#username").get_attribute("value") == "clerk.home"

    browser_login(browser, "clerk.home", PASSWORD)
    browser.wait(lambda d: "/web/login" not in d.current_url, what="the login to finish")
    assert browser.path.startswith(f"/web/units/{HOME}")
    browser.open("/web/submit")
    values = {"period": "2020-11", "held_on": "2020-11-05", "format": "in_person", "bridge_points": "1"}
    values |= {"delegates": "20", "members_attended": "250", "members_total": "300"}
    browser.fill_form(values)
    browser.find(".report-form button[type=submit]").click()
    browser.wait(lambda d: browser.all("#outcome"), what="the confirmation")
    assert browser.find("#outcome").get_attribute("data-status") == "accepted"  # ingest took the minted token

    cookie = browser.session_cookie()
    browser.find("form.logout button").click()
    browser.wait(lambda d: d.current_url.endswith("/web/login"), what="the login page after logout")
    with httpx.Client(base_url=system.api.url, cookies={"baocao_session": cookie}) as replay:
        answer = replay.get(f"/web/units/{HOME}", follow_redirects=False)
    assert (answer.status_code, answer.headers["location"]) == (303, "/web/login")


def test_five_wrong_passwords_throttle_the_name_with_429_and_retry_after(system, monkeypatch):
    made = account(
        system, monkeypatch, "create", "--username", "viewer.38", "--unit", "38", "--role", "viewer",
        "--name", "Người xem tỉnh", password=PASSWORD,
    )  # fmt: skip
    assert made == 0
    for _ in range(5):
        with closing(password_login(system, "viewer.38", "wrong password!")) as http:
            assert http.answer.status_code == 401  # type: ignore[attr-defined]
    with closing(password_login(system, "viewer.38", PASSWORD)) as http:
        answer = http.answer  # type: ignore[attr-defined]
    assert answer.status_code == 429 and 800 < int(answer.headers["retry-after"]) <= 900
    assert "baocao_session" not in answer.headers.get("set-cookie", "")


def test_a_disabled_account_is_refused_within_seconds_on_pages_streams_and_ingest(system, monkeypatch):
    made = account(
        system, monkeypatch, "create", "--username", "reviewer.386", "--unit", "386",
        "--role", "reviewer", "--role", "clerk", "--name", "Người duyệt huyện", password=PASSWORD,
    )  # fmt: skip
    assert made == 0
    minted = mint(TEST_SECRET, "386", [Scope.SUBMIT], 300, account="reviewer.386", origin="127.0.0.1")
    report = {**SEED, "report_id": f"{HOME}-disabled-check", "period": "2021-02"}
    report["body"] = {**SEED["body"], "held_on": "2021-02-03"}
    with system.client(system.ingest.url, minted) as ingest:
        assert ingest.post("/v1/reports", json=report).status_code == 202
    with closing(password_login(system, "reviewer.386", PASSWORD)) as http, Reports(system):
        assert http.answer.status_code == 303  # type: ignore[attr-defined]
        assert http.get("/web/units/386").status_code == 200
        listener = Listener(http)
        listener.wait_for_event()
        disabled_at = time.time()
        assert account(system, monkeypatch, "disable", "reviewer.386") == 0
        page = http.get("/web/units/386")
        late, ended = listener.after(disabled_at)
    assert (page.status_code, page.headers["location"]) == (303, "/web/login")  # at the next request

    def ingest_refuses() -> bool:
        with system.client(system.ingest.url, minted) as ingest:
            return ingest.post("/v1/reports", json={**report, "revision": 2}).status_code == 401

    wait_until(ingest_refuses, timeout=REFUSED_WITHIN, what="ingest to refuse the disabled account's token")
    refused_after = time.time() - disabled_at
    print(f"MEASURE disabled account: stream's last event {late:.1f} s after, ended: {ended}; "
          f"ingest refused its token {refused_after:.1f} s after")  # fmt: skip
    assert ended and late <= PROMPT_SECONDS, (late, ended)
    with closing(password_login(system, "reviewer.386", PASSWORD)) as again:
        assert again.answer.status_code == 401  # type: ignore[attr-defined]
    assert account(system, monkeypatch, "enable", "reviewer.386") == 0
    with closing(password_login(system, "reviewer.386", PASSWORD)) as again:
        assert again.answer.status_code == 303  # type: ignore[attr-defined]
    assert [(e["action"], e["actor"]) for e in audit_of(system, "reviewer.386")] == [
        ("account.create", "token:cli"),
        ("login", "reviewer.386"),
        ("account.disable", "token:cli"),
        ("login.failed", "reviewer.386"),
        ("account.enable", "token:cli"),
        ("login", "reviewer.386"),
    ]


def audit_of(system: System, username: str) -> list[dict[str, Any]]:
    """The audit log's entries about ``username``, oldest first, read straight from the database."""
    mongo: MongoClient[dict[str, Any]] = MongoClient(system.namespace.env["MONGODB_URI"])
    try:
        found = mongo[system.namespace.database][AUDIT_LOG].find({"subject": username})
        return sorted(found, key=lambda e: e["_id"])
    finally:
        mongo.close()


def test_the_demo_admin_has_a_random_password_that_logs_in(system):
    import asyncio

    uri, database = system.namespace.env["MONGODB_URI"], system.namespace.database
    first = asyncio.run(ensure_admin_account(uri, database, password_kept=False))
    assert first is not None and len(first) >= 20
    assert asyncio.run(ensure_admin_account(uri, database, password_kept=True)) is None  # kept as it is
    with closing(password_login(system, DEMO_ADMIN, first)) as http:
        assert http.answer.status_code == 303  # type: ignore[attr-defined]
        assert http.get("/web/").status_code == 200  # the country's page
    second = asyncio.run(ensure_admin_account(uri, database, password_kept=False))
    assert second is not None and second != first
    with closing(password_login(system, DEMO_ADMIN, first)) as http:
        assert http.answer.status_code == 401  # type: ignore[attr-defined]
