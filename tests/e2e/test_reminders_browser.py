"""The reminders page (/web/reminders) in a real headless Chromium, against the services as
processes: seed 000's December 2020 study sessions (due by the end of 15 January 2021) from all
but two of Bá Thước's communes; on 10 January the district office sees those two, in the legacy
tree; on a 2025 day the 2025 province 38 sees its communes in the new tree. The page works on a
phone, every input has a label, and the form changes the day and the window."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.domain.auth import Scope
from shared.domain.hierarchy import TREE_2025, load_vietnam
from tests.conftest import wait_until
from tools import demo

from .browser import DESKTOP, PHONE, Browser
from .system import System

pytestmark = pytest.mark.e2e

TREE = load_vietnam(["38"])
COMMUNES = demo.communes_of(TREE, demo.BA_THUOC)
LATE = COMMUNES[-2:]  # the two communes whose reports are held back
SEED = [r for r in demo.seed_000_study_sessions(TREE) if r["unit"] not in (demo.BA_THUOC, *LATE)]


@pytest.fixture
def seeded(system: System) -> Iterator[System]:
    with system.client(system.ingest.url) as http:
        answer = http.post("/v1/reports/batch", json=SEED)
    assert answer.status_code == 200 and answer.json()["accepted"] == len(SEED), answer.text
    wait_until(
        lambda: system.totals("386", "2020-12")["completeness"]["study_session"]["units_reported"] == len(SEED),
        timeout=90,
        what="seed 000 without two communes counted",
    )
    yield system


@pytest.fixture
def browser(chromium: Any, seeded: System, screenshots: Path) -> Browser:
    return Browser(chromium, seeded.api.url, screenshots)


def _section(browser: Browser, series: str, period: str) -> str:
    return browser.text(f"#due-{series}-{period}")


def test_the_district_sees_who_has_not_reported_before_the_deadline(browser: Browser, seeded: System) -> None:
    browser.login(seeded.token("386", Scope.READ))
    browser.open("/web/reminders?on=2021-01-10&within_days=7")
    browser.wait(lambda d: "Chưa báo cáo, sắp đến hạn" in d.page_source, what="the reminders page")
    study = _section(browser, "study_session", "2020-12")
    assert "Hạn nộp: hết ngày 15/01/2021 (giờ Việt Nam), còn 5 ngày." in study
    late_names = [TREE.get(code).name for code in LATE]
    assert all(name in study for name in late_names), study
    assert TREE.get(COMMUNES[0]).name not in study  # it has reported
    rows = browser.all("#due-study_session-2020-12 tbody tr")
    assert sorted(r.find_element("css selector", "td").text for r in rows) == sorted(LATE)
    browser.screenshot("nhac-han-huyen")
    # another window through the form: 16 January is past the deadline, nothing of 2020-12 is due
    browser.script("document.querySelector('#on').value = '2021-01-16'")
    browser.find("form.filters button").click()
    browser.wait(lambda d: "on=2021-01-16" in d.current_url, what="the form's answer")
    assert not browser.all("#due-study_session-2020-12")


def test_the_2025_province_and_a_phone(browser: Browser, seeded: System) -> None:
    browser.login(seeded.token("38", Scope.READ))
    browser.driver.set_window_size(*PHONE)
    try:
        browser.open("/web/reminders?on=2025-10-15&within_days=0")
        study = _section(browser, "study_session", "2025-09")
        assert "hôm nay là ngày cuối" in study
        first = load_vietnam(["38"]).version_named(TREE_2025).children("38")[0]
        assert first.name in study and "Huyện" not in study  # the new tree: communes, no districts
        width = browser.script("return document.documentElement.scrollWidth")
        assert width <= PHONE[0], f"the reminders page scrolls sideways at {PHONE[0]} px ({width} px wide)"
        unlabelled = browser.script(
            "return [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]"
            ".filter(e => e.labels.length === 0).map(e => e.name)"
        )
        assert unlabelled == []
    finally:
        browser.driver.set_window_size(*DESKTOP)
