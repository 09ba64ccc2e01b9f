"""The admin pages in a real headless Chromium and the agency routes over HTTP, against the
services as processes (one stack for the module): an agency closed from a date leaves the
expected counts of later periods only; an admin registers, renames and closes an agency on the
page, issues a machine token, sees it once, revokes it and the API and ingest refuse it within
seconds, and creates a clerk's account that then logs in with its password; an old district's
admin (386, the tree before July 2025) acts only under its district."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.domain.auth import Scope
from tests.conftest import wait_until

from .browser import Browser
from .system import System, own_system

pytestmark = pytest.mark.e2e

ADMIN_38 = (Scope.ADMIN, Scope.READ, Scope.STREAM)


@pytest.fixture(scope="module")
def system(infra: dict[str, str]) -> Iterator[System]:
    yield from own_system(infra)


@pytest.fixture
def browser(chromium: Any, system: System, screenshots: Path) -> Browser:
    return Browser(chromium, system.api.url, screenshots)


def expected(api: httpx.Client, period: str) -> int:
    answer = api.get("/v1/units/38/totals", params={"period": period})
    assert answer.status_code == 200, answer.text
    return int(answer.json()["completeness"]["study_session"]["units_expected"])


def not_reported(api: httpx.Client, period: str) -> set[str]:
    answer = api.get("/v1/units/38/completeness", params={"series": "study_session", "period": period})
    assert answer.status_code == 200, answer.text
    return {u["code"] for u in answer.json()["not_reported"]}


def test_an_agency_closed_from_a_date_leaves_the_expected_counts_of_later_periods_only(system):
    with system.client(system.api.url) as api:
        agency = {"code": "38-bvcd", "name": "Đảng bộ Bệnh viện C", "parent": "38"}
        assert api.post("/v1/admin/agencies", json=agency).status_code == 201
        before = {p: expected(api, p) for p in ("2024-12", "2025-09", "2025-10", "2026")}
        answer = api.patch("/v1/admin/agencies/38-bvcd", json={"closed_from": "2025-10-01"})
        assert answer.status_code == 200 and answer.json()["closed_from"] == "2025-10-01", answer.text
        after = {p: expected(api, p) for p in before}
        assert after == {**before, "2025-10": before["2025-10"] - 1, "2026": before["2026"] - 1}
        assert "38-bvcd" in not_reported(api, "2025-09") and "38-bvcd" not in not_reported(api, "2025-10")
        assert api.get("/v1/units/38-bvcd", params={"tree": "2025"}).status_code == 200  # it stays a unit

        bad = api.patch("/v1/admin/agencies/38-bvcd", json={"closed_from": "2025-02-30"})
        assert bad.status_code == 422 and "closed_from" in bad.text
        assert api.patch("/v1/admin/agencies/38-nope", json={"name": "X"}).status_code == 404
        assert api.patch("/v1/admin/agencies/386", json={"name": "X"}).status_code == 422  # not an agency's code
        with system.client(system.api.url, system.token("386", *ADMIN_38)) as district:
            assert district.patch("/v1/admin/agencies/38-bvcd", json={"closed_from": None}).status_code == 403
        renamed = api.patch("/v1/admin/agencies/38-bvcd", json={"name": "Đảng bộ Bệnh viện C mới", "closed_from": None})
        assert renamed.status_code == 200 and renamed.json()["name"] == "Đảng bộ Bệnh viện C mới"
        assert {p: expected(api, p) for p in before} == before


def fill(browser: Browser, css: str, value: str) -> None:
    box = browser.find(css)
    box.clear()
    box.send_keys(value)


def test_an_admin_registers_renames_and_closes_an_agency_on_the_page(browser, system):
    browser.login(system.token("38", *ADMIN_38))
    browser.find("#menu-admin").click()
    browser.wait(lambda d: "/web/admin/accounts" in d.current_url, what="the admin pages")
    browser.open("/web/admin/agencies")
    fill(browser, "#register #f-parent", "38")
    fill(browser, "#register #f-code", "38-truongct")
    fill(browser, "#register #f-name", "Chi bộ Trường Chính trị tỉnh")
    browser.find("#register button").click()
    browser.wait(lambda d: "saved=38-truongct" in d.current_url, what="the registration")
    row = "tr[data-agency='38-truongct']"
    assert browser.text(f"{row} .state") == "Đang hoạt động"

    browser.find(f"{row} summary").click()
    fill(browser, f"{row} form.rename input[name='name']", "Đảng bộ Trường Chính trị tỉnh")
    browser.find(f"{row} form.rename button").click()
    browser.wait(
        lambda d: "saved=38-truongct" in d.current_url and "Đảng bộ Trường" in d.page_source, what="the rename"
    )
    browser.find(f"{row} summary").click()
    date_box = browser.find(f"{row} form.close input[name='closed_from']")
    browser.script("arguments[0].value = '2025-10-01'", date_box)  # a date input's typing follows the locale
    browser.find(f"{row} form.close button").click()
    browser.wait(lambda d: "Đóng từ 2025-10-01" in d.page_source, what="the closing")
    browser.screenshot("quan-tri-co-quan")
    with system.client(system.api.url) as api:
        unit = api.get("/v1/units/38-truongct", params={"tree": "2025"}).json()
        assert unit["name"] == "Đảng bộ Trường Chính trị tỉnh"

    # an old district's admin (the tree before July 2025) sees and registers only under its district
    browser.login(system.token("386", *ADMIN_38))
    browser.open("/web/admin/agencies")
    assert not browser.all(row)
    fill(browser, "#register #f-code", "386-ttyt")
    fill(browser, "#register #f-name", "Chi bộ Trung tâm Y tế huyện")
    browser.find("#register button").click()  # the parent field starts with the admin's unit
    browser.wait(lambda d: "saved=386-ttyt" in d.current_url, what="the district's registration")
    assert [r.get_attribute("data-agency") for r in browser.all("#agencies tr[data-agency]")] == ["386-ttyt"]


def report(unit: str, report_id: str) -> dict[str, Any]:
    return {
        "report_id": report_id,
        "revision": 1,
        "unit": unit,
        "kind": "study_session",
        "period": "2021-11",
        "submitted_at": "2021-11-06T09:00:00+07:00",
        "body": {
            "resolution": "NQ",
            "held_on": "2021-11-05",
            "format": "online",
            "bridge_points": 1,
            "delegates": 2,
            "members_attended": 5,
            "members_total": 10,
        },
    }


def test_an_admin_issues_a_token_sees_it_once_revokes_it_and_every_service_refuses_it(browser, system):
    browser.login(system.token("38", *ADMIN_38))
    browser.open("/web/admin/tokens")
    fill(browser, "#f-label", "Phần mềm văn phòng huyện Bá Thước")
    fill(browser, "#f-unit", "386")
    for scope in ("submit", "read"):
        browser.find(f"#scope-{scope}").click()
    fill(browser, "#f-days", "30")
    browser.find("#issue button").click()
    token = browser.wait(lambda d: d.find_elements("id", "new-token"), what="the new token")[0].get_attribute("value")
    assert token.startswith("bcv1.")
    browser.open("/web/admin/tokens")
    assert token not in browser.driver.page_source  # shown once, never listed
    rows = browser.all("#tokens tr[data-token]")
    assert len(rows) == 1
    token_id = rows[0].get_attribute("data-token")

    with system.client(system.api.url, token) as api, system.client(system.ingest.url, token) as ingest:
        assert api.get("/v1/units/386", params={"tree": "legacy"}).status_code == 200
        assert ingest.post("/v1/reports", json=report("14923", "tok-1")).status_code == 202
        browser.find(f"tr[data-token='{token_id}'] form.revoke button").click()
        browser.wait(lambda d: f"revoked={token_id}" in d.current_url, what="the revocation")
        assert "Đã thu hồi" in browser.text(f"tr[data-token='{token_id}'] .state")
        wait_until(
            lambda: (
                api.get("/v1/units/386", params={"tree": "legacy"}).status_code == 401
                and ingest.post("/v1/reports", json=report("14923", "tok-2")).status_code == 401
            ),
            timeout=20,
            what="the API and ingest to refuse the revoked token",
        )


def test_an_admin_creates_a_clerk_who_then_logs_in_with_a_password(browser, system):
    browser.login(system.token("38", *ADMIN_38))
    browser.open("/web/admin/accounts")
    fill(browser, "#f-username", "van.thu.386")
    fill(browser, "#f-display_name", "Lê Văn Thư")
    fill(browser, "#f-unit", "386")
    fill(browser, "#f-password", "mat-khau-van-thu")
    browser.find("#create button").click()
    browser.wait(lambda d: "/web/admin/accounts/van.thu.386" in d.current_url, what="the new account's page")
    assert browser.text("#roles") == "Văn thư (gửi báo cáo)"  # the form's default role
    browser.screenshot("quan-tri-tai-khoan")

    browser.open("/web/login")
    browser.driver.delete_all_cookies()
    browser.open("/web/login")
    fill(browser, "#username", "van.thu.386")
    fill(browser, "#password", "mat-khau-van-thu")
    browser.find("#password-login button").click()
    browser.wait(lambda d: "/web/login" not in d.current_url, what="the clerk's login")
    assert browser.all("a[href='/web/submit']") and not browser.all("#menu-admin")


def test_a_clerk_an_admin_made_sends_and_revises_is_named_in_the_audit_and_disabling_her_shuts_her_out(browser, system):
    """Issue 29, end to end: an admin creates a clerk; she logs in with a password, sends a report
    and a revision that starts from her previous figures; the audit page names her for both; once
    disabled, her open session is refused within seconds."""
    browser.login(system.token("38", *ADMIN_38))
    browser.open("/web/admin/accounts")
    fill(browser, "#f-username", "lan.386")
    fill(browser, "#f-display_name", "Nguyễn Thị Lan")
    fill(browser, "#f-unit", "386")
    fill(browser, "#f-password", "mat-khau-cua-lan")
    browser.find("#create button").click()
    browser.wait(lambda d: "/web/admin/accounts/lan.386" in d.current_url, what="the new account's page")

    browser.driver.delete_all_cookies()
    browser.open("/web/login")
    fill(browser, "#username", "lan.386")
    fill(browser, "#password", "mat-khau-cua-lan")
    browser.find("#password-login button").click()
    browser.wait(lambda d: "/web/login" not in d.current_url, what="the clerk's login")

    browser.open("/web/submit")
    first = {
        "period": "2020-11",
        "held_on": "2020-11-05",
        "format": "in_person",
        "bridge_points": "2",
        "delegates": "40",
        "members_attended": "300",
        "members_total": "600",
    }
    browser.fill_form(first)
    browser.find(".report-form button[type=submit]").click()
    browser.wait(lambda d: browser.all("#outcome"), what="the confirmation")
    assert browser.find("#outcome").get_attribute("data-status") == "accepted", browser.text("main")
    report_id = "386-study_session-2020-11"

    browser.open("/web/submissions")
    browser.find(f"#submissions tr[data-report='{report_id}'] a.revise").click()
    browser.wait(lambda d: "revision=2" in d.current_url, what="the revision form")
    # the form starts from what she sent
    for name in ("members_attended", "members_total", "delegates"):
        assert browser.find(f"#f-{name}").get_attribute("value") == first[name], name
    browser.fill_form({"members_attended": "320"})
    browser.find(".report-form button[type=submit]").click()
    browser.wait(lambda d: browser.all("#outcome"), what="the revision's confirmation")
    assert browser.find("#outcome").get_attribute("data-status") == "accepted", browser.text("main")

    browser.open("/web/audit?unit=386&period=2020-11")
    entries = browser.all("#audit li.entry")
    assert [e.get_attribute("data-action") for e in entries] == ["report.revise", "report.submit"]
    assert {browser.text(f"#audit li.entry:nth-child({i}) .who") for i in (1, 2)} == {"Nguyễn Thị Lan (lan.386)"}
    changed = "#audit li.entry:first-child tr.changed"
    assert (browser.text(f"{changed} td.before"), browser.text(f"{changed} td.after")) == ("300", "320")
    browser.screenshot("nhat-ky")
    clerk_cookie = browser.session_cookie()

    browser.login(system.token("38", *ADMIN_38))
    browser.open("/web/admin/accounts/lan.386")
    browser.find("#toggle button").click()
    browser.wait(lambda d: browser.all("#toggle input[value='enable']"), what="the account disabled")

    with httpx.Client(base_url=system.api.url, cookies={"baocao_session": clerk_cookie}) as http:
        wait_until(
            lambda: http.get("/web/submissions", follow_redirects=False).status_code == 303,
            timeout=10,
            what="the disabled clerk's session refused",
        )
        assert http.get("/web/submissions", follow_redirects=False).headers["location"] == "/web/login"
