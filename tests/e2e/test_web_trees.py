"""The pages in the tree of each report's period, against the services as processes: over HTTP as
a form would post, and in Debian's headless Chromium.

Codes are reused across the two trees: 00691 was Phường Trần Phú of Hà Giang 02 before July 2025
and is Phường Hà Giang 2 of Tuyên Quang 08 since; 14923 was Thị trấn Cành Nàng under district 386
and is Xã Bá Thước under Thanh Hóa 38. A 2025 province's token sends for every one of its
communes from the form; an abolished district's (386) or merged province's (02) is refused for
every unit of the 2025 tree; the submissions page lists a report only where the token covers its
unit in the tree of its period, named in that tree; pages without a period open in the tree in
force today.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.domain.auth import Scope
from shared.domain.hierarchy import load_vietnam
from shared.domain.periods import VIETNAM_TZ
from tests.conftest import Namespace

from .browser import Browser
from .system import System, start_system

pytestmark = pytest.mark.e2e

TREES = load_vietnam()
NEW, OLD = TREES.version_named("2025"), TREES.version_named("legacy")
TODAY = datetime.now(VIETNAM_TZ)
NOW = TODAY.strftime("%Y-%m")  # the current period: the 2025 tree
WARD = "14758"  # Phường Hàm Rồng, Thanh Hóa


def study(unit: str, period: str, tag: str, day: str = "01") -> dict[str, Any]:
    return {
        "report_id": f"{unit}-{tag}",
        "revision": 1,
        "unit": unit,
        "kind": "study_session",
        "period": period,
        "submitted_at": f"{period}-{day}T09:00:00+07:00",
        "body": {
            "resolution": "Nghị quyết Đại hội XIV",
            "held_on": f"{period}-{day}",
            "format": "in_person",
            "bridge_points": 1,
            "delegates": 0,
            "members_attended": 9,
            "members_total": 10,
        },
    }


SEED = [
    study("00691", NOW, "hg2-now"),  # Phường Hà Giang 2, Tuyên Quang 08
    study("00691", "2020-12", "tranphu-2020"),  # Phường Trần Phú, Hà Giang 02
    study("14923", NOW, "bathuoc-now"),  # Xã Bá Thước, Thanh Hóa 38
    study("14923", "2020-12", "canhnang-2020"),  # Thị trấn Cành Nàng, district 386
    study(WARD, NOW, "hamrong-now"),
]


@pytest.fixture(scope="module")
def system(infra: dict[str, str]) -> Iterator[System]:
    from tools.topics import create_topics

    namespace = Namespace(uuid.uuid4().hex[:8], infra)
    create_topics(infra["KAFKA_BOOTSTRAP_SERVERS"], 4, namespace.env)
    system = start_system(namespace)
    try:
        with system.client(system.ingest.url) as http:  # the country's token: every tree
            answer = http.post("/v1/reports/batch", json=SEED)
        assert answer.status_code == 200 and answer.json()["accepted"] == len(SEED), answer.text
        system.wait_for_metric("14923", NOW, "study_session.members_attended", 9)
        yield system
    finally:
        system.stop()


class Web:
    """The pages over HTTP as a browser uses them: the login form's proof field, the site's own
    origin and the session's CSRF token on every post (when the pages carry them)."""

    def __init__(self, system: System, unit: str, *scopes: Scope) -> None:
        base = system.api.url
        self.http = httpx.Client(base_url=base, timeout=60, follow_redirects=False, headers={"Origin": base})
        form = self.http.get("/web/login").text
        proof = re.search(r'name="csrf" value="([^"]+)"', form)
        token = system.token(unit, *(scopes or (Scope.READ, Scope.SUBMIT)))
        answer = self.http.post("/web/login", data={"token": token, **({"csrf": proof.group(1)} if proof else {})})
        assert answer.status_code == 303, answer.text
        meta = re.search(r'name="csrf-token" content="([^"]+)"', self.get("/web/submissions").text)
        self.guard = {"X-CSRF-Token": meta.group(1)} if meta else {}

    def get(self, path: str, **params: str) -> httpx.Response:
        return self.http.get(path, params=params)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.post(path, headers=self.guard, **kwargs)

    def submit(self, unit: str, period: str, tag: str) -> httpx.Response:
        report = study(unit, period, tag)
        data = {"kind": "study_session", "unit": unit, "period": period, "report_id": report["report_id"]}
        return self.post("/web/submit", data={**data, **{k: str(v) for k, v in report["body"].items()}})

    def check(self, units: list[str], period: str) -> list[dict[str, Any]]:
        header = self.get("/web/templates/study_session.csv").content
        rows = [f",,{u},{period},,{period}-01,online,1,0,9,10" for u in units]
        answer = self.post(
            "/web/upload/check",
            data={"kind": "study_session"},
            files={"file": ("a.csv", header + "\r\n".join(rows).encode())},
        )
        assert answer.status_code == 200, answer.text
        return answer.json()["rows"]  # type: ignore[no-any-return]

    def listed(self) -> dict[str, str]:
        page = self.get("/web/submissions")
        assert page.status_code == 200
        found = re.findall(r'<tr data-report="([^"]+)"><td><code>[^<]+</code></td><td>([^<]+)</td>', page.text)
        return dict(found)


@pytest.fixture
def web(system: System) -> Iterator[Callable[..., Web]]:
    """Opens a session for a unit's token; closes them all after the test."""
    opened: list[Web] = []

    def open_session(unit: str, *scopes: Scope) -> Web:
        opened.append(Web(system, unit, *scopes))
        return opened[-1]

    yield open_session
    for session in opened:
        session.http.close()


def options(html: str) -> list[str]:
    return re.findall(r'<option value="([^"]*)"', html.split('id="f-unit"')[1].split("</select>")[0])


def test_a_2025_province_sends_from_the_form_for_every_one_of_its_communes(system, web):
    tuyen_quang = web("08")
    communes = [u.code for u in NEW.children("08")]
    former_ha_giang = [c for c in communes if c in OLD and OLD.path(c)[-1] == "02"]
    assert len(former_ha_giang) == 73
    offered = options(tuyen_quang.get("/web/submit").text)
    assert offered == ["08", *communes]  # no district 070-076, every former Hà Giang commune
    assert [r for r in tuyen_quang.check(communes, NOW) if r["errors"]] == []
    sent = tuyen_quang.submit("00691", NOW, "form-now")
    assert sent.status_code == 200 and 'data-status="accepted"' in sent.text, sent.text
    system.wait_for_metric("00691", NOW, "study_session.members_attended", 18)


def test_an_old_district_or_merged_province_is_refused_for_every_2025_unit(system, web):
    units = ["08", *(u.code for u in NEW.children("08")), "38", *(u.code for u in NEW.children("38"))]
    for old in ("02", "386"):
        session = web(old)
        rows = session.check(units, NOW)
        assert all("nằm ngoài phạm vi" in r["errors"].get("Mã đơn vị", "") for r in rows), old
        for unit in ("00691", "14923", "08"):
            refused = session.submit(unit, NOW, f"{old}-form")
            assert refused.status_code == 422 and "nằm ngoài phạm vi" in refused.text, (old, unit)
    closed = web("386").submit("386", NOW, "closed")
    assert closed.status_code == 422 and f"không có trong cây đơn vị của kỳ {NOW}" in closed.text
    old_period = web("386").submit("14923", "2020-11", "canhnang-form")  # its own tree: allowed
    assert old_period.status_code == 200 and 'data-status="accepted"' in old_period.text, old_period.text
    assert system.totals("14923", NOW)["metrics"]["study_session.members_attended"] == 9  # unchanged


def test_the_submissions_page_lists_each_report_in_the_tree_of_its_period(system, web):
    tuyen_quang = web("08").listed()
    assert tuyen_quang["00691-hg2-now"] == "Phường Hà Giang 2 (00691)"
    assert "00691-tranphu-2020" not in tuyen_quang  # Hà Giang's, before July 2025
    assert web("02").listed() == {"00691-tranphu-2020": "Phường Trần Phú (00691)"}
    district = web("386").listed()
    assert district["14923-canhnang-2020"] == "Thị trấn Cành Nàng (14923)"
    assert "14923-bathuoc-now" not in district and "14758-hamrong-now" not in district
    province = web("38").listed()
    assert province["14923-bathuoc-now"] == "Xã Bá Thước (14923)"
    assert province["14923-canhnang-2020"] == "Thị trấn Cành Nàng (14923)"


def test_a_revision_link_of_a_2025_report_opens_its_form(system, web):
    tuyen_quang = web("08")
    page = tuyen_quang.get("/web/submissions").text
    link = re.search(r'<tr data-report="00691-hg2-now">.*?<a class="revise" href="([^"]+)"', page, re.S)
    assert link is not None
    href = link.group(1).replace("&amp;", "&")
    assert href.startswith("/web/submit?kind=study_session&tree=2025&")
    form = tuyen_quang.http.get(href)
    assert form.status_code == 200 and '<option value="00691" selected>' in form.text
    assert tuyen_quang.get("/web/submit", kind="study_session@2025").status_code == 200  # an older link's form


def test_levels_are_named_by_each_units_kind_and_pages_open_in_todays_tree(system, web):
    province = web("38", Scope.READ)
    ward = province.get(f"/web/units/{WARD}").text  # no period: this month, the 2025 tree
    assert f"Phường · mã {WARD}" in ward and ">Toàn phường<" in ward and "Toàn xã" not in ward
    country = web("VN", Scope.READ).get("/web/").text
    assert len(re.findall(r'href="/web/units/\d\d"', country)) == 34
    district = web("386", Scope.READ).get("/web/units/386")
    assert district.status_code == 200 and 'value="2025-06"' in district.text


# ------------------------------------------------------------------ in the browser


@pytest.fixture
def browser(chromium, system: System, screenshots: Path) -> Browser:
    return Browser(chromium, system.api.url, screenshots)


def test_a_2025_province_in_the_browser_form_submissions_revision_and_ward(browser, system):
    browser.login(system.token("08", Scope.READ, Scope.SUBMIT, Scope.STREAM))
    assert browser.path.startswith("/web/units/08")
    assert browser.text("header .who") == "Tỉnh Tuyên Quang"
    rows = {r.get_attribute("data-unit") for r in browser.all("#totals tbody tr[data-unit]")}
    assert "00691" in rows and "070" not in rows
    browser.screenshot("tinh-2025-tuyen-quang")
    browser.open("/web/units/00691")  # a former Hà Giang ward: live updates in the 2025 tree
    assert browser.text("h1").startswith("Phường Hà Giang 2")
    live = browser.find("#live")
    browser.wait(lambda d: live.get_attribute("data-connected") == "yes", what="live updates to connect")

    browser.open("/web/submit")
    offered = [o.get_attribute("value") for o in browser.all("#f-unit option")]
    assert "00691" in offered and "070" not in offered and len(offered) == 1 + len(NEW.children("08"))
    browser.screenshot("tinh-2025-bieu-mau")

    browser.open("/web/submissions")
    row = "#submissions tr[data-report='00691-hg2-now']"
    assert "Phường Hà Giang 2 (00691)" in browser.text(row)
    browser.screenshot("tinh-2025-bao-cao-da-gui")
    browser.find(f"{row} a").click()
    browser.wait(lambda d: "revision=2" in d.current_url, what="the revision form")
    assert browser.text("h1") == "Gửi báo cáo"
    assert browser.find("#f-unit option:checked").get_attribute("value") == "00691"

    browser.login(system.token("38", Scope.READ))
    browser.open(f"/web/units/{WARD}")
    assert browser.text("#totals tr.total th") == "Toàn phường"
    assert "Phường · mã" in browser.text("h1")
    browser.screenshot("phuong-ham-rong")


def test_an_old_district_in_the_browser_keeps_to_the_old_tree(browser, system):
    browser.login(system.token("386", Scope.READ, Scope.SUBMIT))
    assert browser.find("#period").get_attribute("value") == "2025-06"  # its last month
    browser.open("/web/units/386?period=2020-12")
    assert browser.text("#totals tr.total th") == "Toàn huyện"
    assert browser.text("#totals tr[data-unit='14923'] th") == "Thị trấn Cành Nàng Thị trấn"
    browser.screenshot("huyen-cu-386")

    browser.open("/web/submissions")
    reports = [r.get_attribute("data-report") for r in browser.all("#submissions tr[data-report]")]
    assert "14923-canhnang-2020" in reports and "14923-bathuoc-now" not in reports
    browser.screenshot("huyen-cu-bao-cao-da-gui")

    browser.open("/web/submit")  # the current period's tree does not hold 386: a code to type
    browser.find("#f-unit").clear()
    browser.find("#f-unit").send_keys("14923")
    browser.find("#f-period").send_keys(NOW)
    browser.find(".report-form button[type=submit]").click()
    browser.wait(lambda d: browser.all("#err-unit"), what="the unit's error")
    assert "nằm ngoài phạm vi" in browser.text("#err-unit")
    browser.screenshot("huyen-cu-bieu-mau-bi-tu-choi")
