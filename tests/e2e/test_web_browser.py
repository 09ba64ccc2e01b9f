"""The web front end in a real headless Chromium, against the services as processes.

Seed 000 is loaded once for the module (Bá Thước's 21 communes, December 2020: 5,962 of 6,600
members took part). The pages must show the API's numbers, keep each token inside its subtree,
and let unit staff send reports by form and by file. Screenshots go to BAOCAO_SCREENSHOT_DIR
when it is set (docs/screenshots was made that way), to a temporary folder otherwise.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from openpyxl import load_workbook
from selenium.webdriver.support.ui import Select

from shared.domain.auth import Scope, mint
from shared.domain.hierarchy import load_vietnam
from tests.conftest import TEST_SECRET, Namespace
from tools import demo

from .browser import PHONE, Browser
from .system import System, start_system

pytestmark = pytest.mark.e2e

TREE = load_vietnam(["38"])
COMMUNES = demo.communes_of(TREE, demo.BA_THUOC)
HOME, NEIGHBOUR = COMMUNES[0], COMMUNES[1]
REFLECTED = COMMUNES[:3]  # the communes that sent their reflections for December 2020
SEED = [r for r in demo.seed_000_study_sessions(TREE) if r["unit"] != demo.BA_THUOC]


def reflection(unit: str) -> dict:
    return {
        "report_id": f"{unit}-reflection-2020-12",
        "revision": 1,
        "unit": unit,
        "kind": "reflection",
        "period": "2020-12",
        "submitted_at": "2020-12-10T09:00:00+07:00",
        "body": {"resolution": demo.RESOLUTION_38, "members_submitted": 250, "members_required": 300},
    }


@pytest.fixture(scope="module")
def system(infra: dict[str, str]) -> Iterator[System]:
    """One stack for the module's tests, seeded with seed 000 and three reflections."""
    from tools.topics import create_topics

    namespace = Namespace(uuid.uuid4().hex[:8], infra)
    create_topics(infra["KAFKA_BOOTSTRAP_SERVERS"], 4, namespace.env)
    system = start_system(namespace)
    try:
        with system.client(system.api.url) as http:  # the provincial hospital's party committee
            assert http.post("/v1/admin/agencies", json=demo.agencies()[0]).status_code == 201
        with system.client(system.ingest.url) as http:
            answer = http.post("/v1/reports/batch", json=SEED + [reflection(u) for u in REFLECTED])
        assert answer.status_code == 200 and answer.json()["accepted"] == 24, answer.text
        system.wait_for_metric("386", "2020-12", "study_session.members_attended", 5962)
        system.wait_for_metric("386", "2020-12", "reflection.members_submitted", 750)
        yield system
    finally:
        system.stop()


@pytest.fixture
def browser(chromium, system: System, screenshots: Path) -> Browser:
    return Browser(chromium, system.api.url, screenshots)


def cell(browser: Browser, unit: str, metric: str) -> str:
    return browser.text(f"#totals tr[data-unit='{unit}'] td[data-metric='{metric}']")


def test_a_district_office_reads_its_totals_drills_down_and_sees_the_chart(browser, system):
    browser.login(system.token("386", Scope.READ, Scope.STREAM))
    assert browser.path.startswith("/web/units/386")
    period = browser.find("#period")
    period.clear()
    period.send_keys("2020-12")
    browser.find(".filters button").click()
    browser.wait(lambda d: "period=2020-12" in d.current_url, what="the December 2020 page")

    api = system.totals("386", "2020-12")["metrics"]
    assert api["study_session.members_attended"] == 5962
    assert cell(browser, "386", "study_session.members_attended") == "5.962"
    assert cell(browser, "386", "study_session.members_total") == "6.600"
    assert cell(browser, "386", "study_session.participation_rate") == "90,33 %"
    assert browser.find("html").get_attribute("lang") == "vi"
    rows = browser.all("#totals tbody tr[data-unit]")
    assert len(rows) == 1 + len(COMMUNES)  # the district's own total, then one row per commune
    home_report = next(r for r in SEED if r["unit"] == HOME)
    # the chart: one tick per month of 2020, December's bar is the current one
    assert len(browser.all("svg.chart rect.bar.current")) == 1
    assert "Tỷ lệ tham dự" in browser.text("#chart-heading")
    browser.screenshot("kiem-thu-huyen")

    browser.find(f"#totals tr[data-unit='{HOME}'] a").click()
    browser.wait(lambda d: f"/web/units/{HOME}?" in d.current_url, what="the commune's page")
    expected = f"{home_report['body']['members_attended']:,}".replace(",", ".")
    assert cell(browser, HOME, "study_session.members_attended") == expected
    crumbs = [a.text for a in browser.all(".crumbs a")]
    assert crumbs == ["Huyện Bá Thước"]  # the province is outside the token's subtree: no link to it

    for outside in ("38", "388"):
        browser.open(f"/web/units/{outside}?period=2020-12")
        assert browser.text("h1") == "Không có quyền truy cập"
        assert "5.962" not in browser.driver.page_source


def test_a_province_drills_down_to_a_district_a_commune_and_an_agency(browser, system):
    browser.login(system.token("38", Scope.READ))
    browser.open("/web/units/38?period=2020-12")
    assert cell(browser, "38", "study_session.members_attended") == "5.962"
    assert cell(browser, "386", "study_session.members_attended") == "5.962"
    agency = demo.agencies()[0]
    assert browser.text(f"#totals tr[data-unit='{agency['code']}'] th") == f"{agency['name']} Cơ quan"
    browser.find("#totals tr[data-unit='386'] a").click()
    browser.wait(lambda d: "/web/units/386?" in d.current_url, what="the district")
    browser.find(f"#totals tr[data-unit='{HOME}'] a").click()
    browser.wait(lambda d: f"/web/units/{HOME}?" in d.current_url, what="the commune")
    assert [a.text for a in browser.all(".crumbs a")] == ["Tỉnh Thanh Hóa", "Huyện Bá Thước"]
    browser.find(".crumbs a").click()  # back up to the province, the same period
    browser.wait(lambda d: "/web/units/38?period=2020-12" in d.current_url, what="the province")
    browser.find(f"#totals tr[data-unit='{agency['code']}'] a").click()
    browser.wait(lambda d: f"/web/units/{agency['code']}?" in d.current_url, what="the agency")
    assert browser.text("h1") == f"{agency['name']} Cơ quan · mã {agency['code']}"


def test_a_commune_token_cannot_see_its_neighbour_nor_its_district(browser, system):
    browser.login(system.token(HOME, Scope.READ, Scope.SUBMIT))
    assert browser.path.startswith(f"/web/units/{HOME}")
    neighbour = next(r for r in SEED if r["unit"] == NEIGHBOUR)
    figure = f"{neighbour['body']['members_attended']:,}".replace(",", ".")
    for path in (
        f"/web/units/{NEIGHBOUR}?period=2020-12",
        f"/web/units/{NEIGHBOUR}/missing?period=2020-12&series=study_session",
        f"/web/units/{NEIGHBOUR}/export.csv?period=2020-12",
        "/web/units/386?period=2020-12",
    ):
        browser.open(path)
        assert browser.text("h1") == "Không có quyền truy cập", path
        assert figure not in browser.driver.page_source
    cookies = {"baocao_session": browser.session_cookie()}
    with httpx.Client(base_url=system.api.url, cookies=cookies) as http:
        assert http.get(f"/web/units/{NEIGHBOUR}/export.xlsx", params={"period": "2020-12"}).status_code == 403
        assert http.get(f"/web/units/{NEIGHBOUR}/events").status_code == 403
        assert http.get(f"/web/units/{HOME}/export.csv", params={"period": "2020-12"}).status_code == 200


def test_the_not_reported_list_gives_completeness_and_timeliness(browser, system):
    browser.login(system.token("386", Scope.READ))
    browser.open("/web/units/386?period=2020-12&series=reflection")
    browser.find("a[href*='/missing']").click()
    browser.wait(lambda d: "/missing" in d.current_url, what="the not-reported page")
    api = system.totals("386", "2020-12")["completeness"]["reflection"]
    # on time is decided by arrival, and these arrived years after the 15 January 2021 deadline
    assert (api["units_reported"], api["units_on_time"], api["units_expected"]) == (3, 0, 21)
    assert browser.text("#completeness") == "3/21 (14,29 %)"
    assert browser.text("#timeliness") == "0/21 (0,00 %)"
    listed = [row.find_elements("css selector", "td")[0].text for row in browser.all("#missing tbody tr")]
    assert sorted(listed) == sorted(set(COMMUNES) - set(REFLECTED))
    # every commune sent its conference report, none on time
    Select(browser.find("#series")).select_by_value("study_session")
    browser.find(".filters button").click()
    browser.wait(lambda d: "series=study_session" in d.current_url, what="the study-session list")
    assert browser.text("#completeness") == "21/21 (100,00 %)"
    assert browser.text("#timeliness") == "0/21 (0,00 %)"
    assert browser.text("#all-reported") == "Tất cả đơn vị đã báo cáo."


def test_the_table_exports_to_csv_and_xlsx_with_the_api_numbers(browser, system):
    browser.login(system.token("386", Scope.READ))
    browser.open("/web/units/386?period=2020-12")
    links = {a.text: a.get_attribute("href") for a in browser.all(".actions a[download]")}
    assert set(links) == {"Tải Excel (.xlsx)", "Tải CSV"}
    cookies = {"baocao_session": browser.session_cookie()}
    with httpx.Client(cookies=cookies, timeout=30) as http:
        as_csv = http.get(links["Tải CSV"])
        as_xlsx = http.get(links["Tải Excel (.xlsx)"])
        assert httpx.get(links["Tải CSV"], follow_redirects=False).status_code == 303  # no session: to login
    assert as_csv.status_code == 200 and "attachment" in as_csv.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(as_csv.content.decode("utf-8-sig"))))
    header, district = rows[0], rows[1]
    assert district[:3] == ["386", "Huyện Bá Thước", "Huyện"]
    by_name = dict(zip(header, district, strict=True))
    assert by_name["Số đảng viên tham dự (study_session.members_attended)"] == "5962"
    assert by_name["Tổng số đảng viên (study_session.members_total)"] == "6600"
    assert by_name["Tỷ lệ tham dự (study_session.participation_rate)"] == "0.9033"
    assert len(rows) == 2 + len(COMMUNES)

    sheet = load_workbook(io.BytesIO(as_xlsx.content)).active
    values = list(sheet.iter_rows(values_only=True))
    assert values[1] == tuple(header)
    xlsx_row = dict(zip(values[1], values[2], strict=True))
    assert xlsx_row["Số đảng viên tham dự (study_session.members_attended)"] == 5962
    assert xlsx_row["Tỷ lệ tham dự (study_session.participation_rate)"] == 0.9033


def test_live_updates_redraw_the_table_without_reloading_the_page(browser, system):
    browser.login(system.token("386", Scope.READ, Scope.STREAM))
    browser.open("/web/units/386?period=2020-11&series=study_session")
    assert cell(browser, "386", "study_session.members_attended") == "—"
    browser.wait(lambda d: browser.find("#live").get_attribute("data-connected") == "yes", what="the event stream")
    browser.script("window.notReloaded = true")
    report = {
        **SEED[0],
        "report_id": f"{HOME}-study-2020-11",
        "period": "2020-11",
        "body": {**SEED[0]["body"], "held_on": "2020-11-20", "members_attended": 123, "members_total": 150},
    }
    with system.client(system.ingest.url) as http:
        assert http.post("/v1/reports", json=report).status_code == 202
    browser.wait(
        lambda d: cell(browser, "386", "study_session.members_attended") == "123",
        timeout=60,
        what="the new total to appear",
    )
    assert browser.script("return window.notReloaded") is True
    assert cell(browser, HOME, "study_session.participation_rate") == "82,00 %"
    assert browser.text("#live-status").startswith("Đã cập nhật lúc")


def test_unit_staff_fix_field_errors_then_send_a_report_and_a_revision(browser, system):
    browser.login(system.token(HOME, Scope.SUBMIT, Scope.READ))
    browser.find("a[href='/web/submit']").click()
    browser.wait(lambda d: d.current_url.endswith("/web/submit"), what="the form")

    fill = browser.fill_form
    fill(
        {
            "period": "2020-10",
            "held_on": "2020-09-30",
            "format": "in_person",
            "bridge_points": "2",
            "delegates": "40",
            "members_attended": "350",
            "members_total": "300",
        }
    )
    browser.find(".report-form button[type=submit]").click()
    browser.wait(lambda d: browser.all("#error-summary"), what="the errors")
    assert browser.text("#err-members_attended") == "Không được lớn hơn tổng số đảng viên (300)."
    assert browser.text("#err-held_on") == "Ngày phải nằm trong kỳ 2020-10 (01/10/2020 – 31/10/2020)."
    attended = browser.find("#f-members_attended")
    assert attended.get_attribute("aria-invalid") == "true"
    assert "err-members_attended" in attended.get_attribute("aria-describedby")
    assert attended.get_attribute("value") == "350"  # what was typed is kept
    assert browser.script("return document.activeElement.id") == "error-summary"
    browser.screenshot("loi-tung-truong", PHONE)

    fill({"held_on": "2020-10-05", "members_total": "6.600"})
    browser.find(".report-form button[type=submit]").click()
    browser.wait(lambda d: browser.all("#outcome"), what="the confirmation")
    assert browser.find("#outcome").get_attribute("data-status") == "accepted"
    report_id = f"{HOME}-study_session-2020-10"
    assert report_id in browser.text("#outcome")

    browser.open("/web/submissions")
    row = f"#submissions tr[data-report='{report_id}']"
    assert browser.text(f"{row} .revisions") == "1"
    browser.find(f"{row} a").click()
    browser.wait(lambda d: "revision=2" in d.current_url, what="the revision form")
    assert browser.find("#f-report_id").get_attribute("value") == report_id
    assert browser.find("#f-revision").get_attribute("value") == "2"
    fill(
        {
            "period": "2020-10",
            "held_on": "2020-10-05",
            "format": "in_person",
            "bridge_points": "2",
            "delegates": "40",
            "members_attended": "360",
            "members_total": "6600",
        }
    )
    # the form is sent twice, as a browser retrying after a lost answer would: counted once
    first = browser.script(
        "const form = document.querySelector('.report-form');"
        "return fetch('/web/submit', {method: 'POST', body: new URLSearchParams(new FormData(form))})"
        ".then(r => r.text())"
    )
    assert 'data-status="accepted"' in first
    browser.find(".report-form button[type=submit]").click()
    browser.wait(lambda d: browser.all("#outcome"), what="the answer to the resubmission")
    assert browser.find("#outcome").get_attribute("data-status") == "duplicate"

    browser.open("/web/submissions")
    assert browser.text(f"{row} .revisions") == "1, 2"
    system.wait_for_metric(HOME, "2020-10", "study_session.members_attended", 360)
    browser.open(f"/web/units/{HOME}?period=2020-10")
    assert cell(browser, HOME, "study_session.members_attended") == "360"


def upload(browser: Browser, path: Path) -> None:
    browser.open("/web/upload")
    Select(browser.find("#kind")).select_by_value("study_session")
    browser.find("#file").send_keys(str(path))
    browser.find("#upload-form button[type=submit]").click()
    browser.wait(lambda d: browser.find("#upload-form").get_attribute("data-state") == "done", what="the upload")


def test_unit_staff_upload_a_csv_file_and_get_a_result_per_row(browser, system, tmp_path):
    browser.login(system.token("386", Scope.SUBMIT, Scope.READ))
    browser.open("/web/upload")
    template_url = browser.find("#template-csv").get_attribute("href")
    with httpx.Client(cookies={"baocao_session": browser.session_cookie()}) as http:
        template = http.get(template_url)
    assert template.status_code == 200
    header = next(csv.reader(io.StringIO(template.content.decode("utf-8-sig"))))
    assert header[:4] == ["Mã báo cáo (report_id)", "Bản số (revision)", "Mã đơn vị (unit)", "Kỳ báo cáo (period)"]
    rows = [
        ["", "", COMMUNES[3], "2020-09", "", "05/09/2020", "online", "1", "10", "90", "100"],
        ["", "", COMMUNES[4], "2020-09", "", "2020-09-06", "hybrid", "2", "12", "120", "100"],  # 120 of 100
        ["", "", "15031", "2020-09", "", "2020-09-07", "online", "1", "5", "50", "60"],  # Lang Chánh: not ours
        ["", "", COMMUNES[5], "2020-09", "", "2020-09-08", "online", "3", "20", "1.500", "2.000"],
    ]
    path = tmp_path / "bao-cao-thang-9.csv"
    out = io.StringIO()
    csv.writer(out).writerows([header, *rows])
    path.write_bytes(out.getvalue().encode("utf-8-sig"))
    upload(browser, path)
    assert browser.find("#progress").get_attribute("value") == "100"
    statuses = {r.get_attribute("data-row"): r.get_attribute("data-status") for r in browser.all("#results tbody tr")}
    assert statuses == {"2": "accepted", "3": "invalid", "4": "invalid", "5": "accepted"}
    row3 = browser.text("#results tr[data-row='3']")
    assert "Số đảng viên tham dự: Không được lớn hơn tổng số đảng viên (100)." in row3
    assert "nằm ngoài phạm vi" in browser.text("#results tr[data-row='4']")
    assert browser.text("#upload-status").startswith("Xong: 2/4 dòng được tiếp nhận")
    browser.screenshot("tai-tep-len", PHONE)
    system.wait_for_metric("386", "2020-09", "study_session.members_attended", 90 + 1500)

    upload(browser, path)  # the same file again: nothing counts twice
    statuses = {r.get_attribute("data-row"): r.get_attribute("data-status") for r in browser.all("#results tbody tr")}
    assert statuses["2"] in ("duplicate", "conflict") and statuses["5"] in ("duplicate", "conflict")
    assert system.totals("386", "2020-09")["metrics"]["study_session.members_attended"] == 1590


def test_unit_staff_upload_an_excel_file(browser, system, tmp_path):
    browser.login(system.token(HOME, Scope.SUBMIT, Scope.READ))
    browser.open("/web/upload")
    with httpx.Client(cookies={"baocao_session": browser.session_cookie()}) as http:
        template = http.get(browser.find("#template-xlsx").get_attribute("href"))
    book = load_workbook(io.BytesIO(template.content))
    sheet = book.active
    sheet.append([None, None, HOME, "2020-08", "NQ", datetime(2020, 8, 3), "online", 1, 7, 70, 80])
    path = tmp_path / "bao-cao.xlsx"
    book.save(path)
    upload(browser, path)
    assert [r.get_attribute("data-status") for r in browser.all("#results tbody tr")] == ["accepted"]
    system.wait_for_metric(HOME, "2020-08", "study_session.members_attended", 70)


def test_pages_work_on_a_phone_and_every_input_has_a_label(browser, system):
    browser.login(system.token("386", Scope.READ, Scope.STREAM, Scope.SUBMIT))
    browser.driver.set_window_size(*PHONE)
    try:
        for path in ("/web/units/386?period=2020-12", "/web/submit?kind=indicator", "/web/upload", "/web/submissions"):
            browser.open(path)
            width = browser.script("return document.documentElement.scrollWidth")
            assert width <= PHONE[0], f"{path} scrolls sideways at {PHONE[0]} px ({width} px wide)"
            unlabelled = browser.script(
                "return [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]"
                ".filter(e => e.labels.length === 0).map(e => e.name)"
            )
            assert unlabelled == [], path
        browser.open("/web/units/386?period=2020-12")
        browser.screenshot("kiem-thu-dien-thoai", PHONE)
    finally:
        browser.driver.set_window_size(1280, 1000)
    # keyboard: the first Tab reaches the skip link, which moves focus to the content
    browser.find("body").send_keys("\ue004")  # Tab
    assert browser.script("return document.activeElement.className") == "skip"
    browser.script("document.activeElement.click()")
    assert browser.script("return document.activeElement.id") == "main"


def test_a_wrong_or_expired_token_is_refused_at_login(browser, system):
    browser.open("/web/login")
    browser.driver.delete_all_cookies()
    browser.open("/web/units/386")
    assert browser.path == "/web/login"
    browser.script("document.getElementById('token').value = 'bcv1.not.valid'")
    browser.find("form[action='/web/login'] button").click()
    browser.wait(lambda d: browser.all("#login-error"), what="the login error")
    assert "không hợp lệ" in browser.text("#login-error")
    expired = mint(TEST_SECRET, "386", [Scope.READ], -60)
    browser.script("document.getElementById('token').value = arguments[0]", expired)
    browser.find("form[action='/web/login'] button").click()
    browser.wait(lambda d: browser.all("#login-error"), what="the login error")
    assert browser.driver.get_cookie("baocao_session") is None
    with httpx.Client(base_url=system.api.url, cookies={"baocao_session": "e30.forged"}) as http:
        forged = http.get("/web/units/386", follow_redirects=False)
    assert (forged.status_code, forged.headers["location"]) == (303, "/web/login")


def test_a_submission_and_its_revision_are_in_the_audit_log_the_csv_and_the_page(browser, system):
    """Issue 29: who sent what, from where, with the figures before and after, in both trees."""
    from shared.domain.auth import verify

    clerk = system.token(HOME, Scope.SUBMIT)
    first = {
        **SEED[0],
        "report_id": f"{HOME}-audit-2020-07",
        "period": "2020-07",
        "body": {**SEED[0]["body"], "held_on": "2020-07-20", "members_attended": 100, "members_total": 150},
    }
    second = {**first, "revision": 2, "body": {**first["body"], "members_attended": 110}}
    ward = {  # Xã Bá Thước in the 2025 tree: the same code, another unit (of province 38)
        **first,
        "report_id": "ba-thuoc-2025-10",
        "unit": "14923",
        "period": "2025-10",
        "submitted_at": "2025-10-26T09:00:00+07:00",
        "body": {**first["body"], "held_on": "2025-10-25"},
    }
    with system.client(system.ingest.url, clerk) as http:
        for report in (first, second, second):  # the repeat is a duplicate: recorded once
            assert http.post("/v1/reports", json=report).status_code in (200, 202)
    with system.client(system.ingest.url, system.token("38", Scope.SUBMIT)) as http:
        assert http.post("/v1/reports", json=ward).status_code == 202

    with system.client(system.api.url, system.token("386", Scope.READ)) as http:
        entries = http.get("/v1/audit", params={"unit": HOME, "period": "2020-07"}).json()["items"]
        exported = http.get("/v1/audit.csv", params={"unit": HOME, "period": "2020-07"})
    assert [(e["action"], e["detail"]) for e in entries] == [
        ("report.revise", "revision 2"),
        ("report.submit", "revision 1"),
    ]
    revised = entries[0]
    assert revised["actor"] == f"token:{verify(TEST_SECRET, clerk).token_id}"
    assert revised["origin"] == "127.0.0.1" and revised["subject"] == f"{HOME}/{HOME}-audit-2020-07"
    assert revised["before"]["body"]["members_attended"] == 100
    assert revised["after"]["body"]["members_attended"] == 110
    assert entries[1]["before"] is None
    assert exported.status_code == 200 and exported.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert [r["action"] for r in rows] == ["report.revise", "report.submit"]
    assert '"members_attended": 100' in rows[0]["before"] and '"members_attended": 110' in rows[0]["after"]

    # the old district's page, reached from its unit page
    browser.login(system.token("386", Scope.READ))
    browser.open("/web/units/386?period=2020-07")
    browser.find("#audit-link").click()
    browser.wait(lambda d: "/web/audit" in d.current_url, what="the audit page")
    assert [e.get_attribute("data-action") for e in browser.all("#audit li.entry")] == [
        "report.revise",
        "report.submit",
    ]
    changed = "#audit li.entry:first-child tr.changed"
    assert (browser.text(f"{changed} td.before"), browser.text(f"{changed} td.after")) == ("100", "110")
    assert browser.text("#audit li.entry:first-child .origin") == "127.0.0.1"
    assert browser.find("#audit-csv").get_attribute("href").endswith("/web/audit.csv?unit=386&period=2020-07")
    browser.screenshot("huyen-nhat-ky")
    browser.open("/web/audit?unit=386")  # every period: nothing of the 2025 tree
    assert "2025-10" not in browser.text("#audit")

    # the 2025 province's page
    browser.login(system.token("38", Scope.READ))
    browser.open("/web/audit?unit=38&period=2025-10")
    assert [e.get_attribute("data-action") for e in browser.all("#audit li.entry")] == ["report.submit"]
    assert "Xã Bá Thước" in browser.text("#audit li.entry")
    browser.screenshot("tinh-2025-nhat-ky")
