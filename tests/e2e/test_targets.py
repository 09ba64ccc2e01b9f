"""Targets through the running services: Đakrông's new party members of 2024 (seed 004: 90–100 a
year) are reported by its communes; targets set over HTTP at two communes, then at the district,
roll up to the district and the province as a hand computation says, with the achievement of
the served figures. The unit page shows them in a real Chromium, on the old district and on the
2025 province 38."""

import asyncio
import time
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
from selenium.webdriver.support.ui import Select

from shared.domain.auth import Scope
from shared.domain.hierarchy import load_vietnam
from tests.conftest import wait_until
from tools import demo

from .browser import Browser
from .system import System, own_system

pytestmark = pytest.mark.e2e

TREE = load_vietnam()
MEMBERS = "indicator.new_party_members.value"
DOCTORS = "indicator.doctors_per_10k.rate"
SEED = [
    r
    for r in demo.seed_002_004_indicators(TREE)
    if r["period"] == "2024" and r["body"]["indicator"] in ("new_party_members", "doctors_per_10k")
]
MEMBER_REPORTS = [r for r in SEED if r["body"]["indicator"] == "new_party_members"]
ADMITTED = {r["unit"]: r["body"]["value"] for r in MEMBER_REPORTS}  # by commune
FIRST, SECOND = MEMBER_REPORTS[0]["unit"], MEMBER_REPORTS[1]["unit"]


@pytest.fixture(scope="module")
def system(infra: dict[str, str]) -> Iterator[System]:
    yield from own_system(infra)


@pytest.fixture(scope="module")
def seeded(system: System) -> System:
    with system.client(system.ingest.url) as http:
        answer = http.post("/v1/reports/batch", json=SEED)
    assert answer.json()["accepted"] == len(SEED), answer.text
    system.wait_for_metric(demo.DAKRONG, "2024", MEMBERS, sum(ADMITTED.values()))
    system.wait_for_metric("45", "2024", MEMBERS, sum(ADMITTED.values()))
    return system


def four_places(numerator: int | Decimal, denominator: int | Decimal) -> float:
    """The hand computation: the quotient rounded half-up to 4 decimals."""
    return float((Decimal(numerator) / Decimal(denominator)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP))


def put(system: System, token: str, unit: str, metric: str, value: str) -> dict[str, Any]:
    with system.client(system.api.url, token) as http:
        answer = http.put(f"/v1/targets/{unit}/{metric}/2024", json={"value": value})
    assert answer.status_code in (200, 201), answer.text
    return answer.json()  # type: ignore[no-any-return]


def test_targets_roll_up_to_the_district_and_the_province_with_their_achievement(seeded: System) -> None:
    district = seeded.token(demo.DAKRONG, Scope.SUBMIT, Scope.READ)
    put(seeded, district, FIRST, MEMBERS, "6 - 8")
    put(seeded, district, SECOND, MEMBERS, "10")
    with seeded.client(seeded.api.url, seeded.token(FIRST, Scope.SUBMIT)) as http:
        refused = http.put(f"/v1/targets/{SECOND}/{MEMBERS}/2024", json={"value": "1"})
        assert refused.status_code == 403 and f"outside this token's unit {FIRST}" in refused.text
        bad = http.put(f"/v1/targets/{FIRST}/{MEMBERS}/2024", json={"value": "8-6"})
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "value"]
    actual = sum(ADMITTED.values())
    # the district has no target of its own: its communes' 6–8 and 10 add up to 16–18
    summed = seeded.totals(demo.DAKRONG, "2024")["targets"][MEMBERS]
    assert summed == {
        "low": 16,
        "high": 18,
        "actual": actual,
        "achievement": four_places(actual, 16),
        "met": actual >= 16,
        "above": actual > 18,
        "source": "summed",
        "units": 2,
    }
    rows = {r["unit"]["code"]: r["targets"] for r in children(seeded, demo.DAKRONG)}
    assert rows[FIRST][MEMBERS]["achievement"] == four_places(ADMITTED[FIRST], 6)
    assert rows[FIRST][MEMBERS]["source"] == "own"

    # the district sets its own (seed 004: 90–100 a year): it stands for the communes above it
    put(seeded, district, demo.DAKRONG, MEMBERS, "90–100")
    put(seeded, district, demo.DAKRONG, DOCTORS, "9,96")
    own = seeded.totals(demo.DAKRONG, "2024")["targets"]
    assert (own[MEMBERS]["low"], own[MEMBERS]["high"], own[MEMBERS]["source"]) == (90, 100, "own")
    assert own[MEMBERS]["achievement"] == four_places(actual, 90)
    # 43 doctors for 43,500 people: 43 x 10,000 / 43,500 per 10,000, against 9.96
    assert own[DOCTORS]["achievement"] == four_places(Decimal(43 * 10_000) / 43_500, Decimal("9.96"))
    province = seeded.totals("45", "2024")["targets"]
    assert set(province) == {MEMBERS}  # a rate does not add up the tree
    assert province[MEMBERS] == {
        "low": 90,
        "high": 100,
        "actual": actual,  # the province's figure: only Đakrông's communes reported
        "achievement": four_places(actual, 90),
        "met": actual >= 90,
        "above": actual > 100,
        "source": "summed",
        "units": 1,
    }
    with seeded.client(seeded.api.url, seeded.token("45", Scope.READ)) as http:
        listed = http.get("/v1/targets", params={"unit": "45", "period": "2024"}).json()["targets"]
        assert sorted((t["unit"], t["text"]) for t in listed if t["metric"] == MEMBERS) == sorted(
            [(FIRST, "6–8"), (SECOND, "10"), (demo.DAKRONG, "90–100")]
        )
        trail = http.get("/v1/audit", params={"unit": demo.DAKRONG, "period": "2024"}).json()["items"]
        assert sum(e["action"] == "target.set" for e in trail) == 4


def children(system: System, unit: str) -> list[dict[str, Any]]:
    with system.client(system.api.url) as http:
        answer = http.get(f"/v1/units/{unit}/children/totals", params={"period": "2024"})
    answer.raise_for_status()
    return answer.json()["children"]  # type: ignore[no-any-return]


@pytest.fixture
def browser(chromium: Any, seeded: System, screenshots: Any) -> Browser:
    return Browser(chromium, seeded.api.url, screenshots)


def test_the_unit_page_shows_targets_on_an_old_district_and_a_2025_province(seeded: System, browser: Browser) -> None:
    # the old tree: the district's page, its own target set through the page's form
    browser.login(seeded.token(demo.DAKRONG, Scope.READ, Scope.SUBMIT))
    browser.open(f"/web/units/{demo.DAKRONG}?period=2024&series=indicator.new_party_members")
    Select(browser.find("#target-unit")).select_by_value(demo.DAKRONG)
    Select(browser.find("#target-metric")).select_by_value(MEMBERS)
    browser.find("#target-value").send_keys("95")
    browser.find("#target-form button[value='set']").click()
    shown = f"#summary [data-target='{MEMBERS}']"
    browser.wait(lambda d: browser.all(shown) and "95 · đạt" in browser.text(shown), what="the district's target")
    browser.screenshot("chi-tieu-huyen")
    actual = sum(ADMITTED.values())
    assert browser.text(shown) == f"Chỉ tiêu 95 · đạt {str(four_places(actual, 95)).replace('.', ',').ljust(6, '0')}"

    # the 2025 tree: province 38's communes report 2025-Q4; a commune's target shows on its row
    new = [r for r in demo.reform_2025_study_sessions(TREE) if r["period"] == "2025-Q4"]
    with seeded.client(seeded.ingest.url) as http:
        http.post("/v1/reports/batch", json=new).raise_for_status()
    commune, attended = new[0]["unit"], new[0]["body"]["members_attended"]
    wait_until(
        lambda: seeded.totals(commune, "2025-Q4")["metrics"].get("study_session.members_attended") == attended,
        what="the 2025 commune's figures",
    )
    province = seeded.token("38", Scope.READ, Scope.APPROVE)
    with seeded.client(seeded.api.url, province) as http:
        path = f"/v1/targets/{commune}/study_session.members_attended/2025-Q4"
        assert http.put(path, json={"value": str(attended * 2)}).status_code == 201
    browser.login(province)
    browser.open("/web/units/38?period=2025-Q4&series=study_session")
    cell = f"tr[data-unit='{commune}'] [data-target='study_session.members_attended']"
    assert browser.text(cell) == f"{attended * 2:,}".replace(",", ".") + " · đạt 0,5000"
    assert "Huyện" not in browser.text("#totals")  # the new tree: communes under the province


def test_the_demos_targets_for_dakrong_show_against_its_reports(seeded: System) -> None:
    """What ``make run`` loads: seed 004's targets written straight to the store, and Đakrông's
    indicator reports; the term 2020-2025 holds each stock's latest figure (2024's)."""
    reports = [r for r in demo.seed_002_004_indicators(TREE) if r["unit"] != demo.LANG_CHANH]
    with seeded.client(seeded.ingest.url) as http:
        answer = http.post("/v1/reports/batch", json=reports).json()
    assert (answer["accepted"] + answer["duplicates"], answer["failed"]) == (len(reports), 0), answer
    env = seeded.namespace.env
    asyncio.run(
        demo.write_targets(demo.seed_004_targets(TREE, time.time()), env["MONGODB_URI"], env["MONGODB_DATABASE"])
    )
    beds = "indicator.hospital_beds.value"
    wait_until(lambda: seeded.totals(demo.DAKRONG, "2020-2025")["metrics"].get(beds) == 118, what="2024's 118 beds")
    term = wait_until(
        lambda: (t := seeded.totals(demo.DAKRONG, "2020-2025")["targets"]) and len(t) == 4 and t,
        what="the demo's targets past the API's five-second listing cache",
    )
    assert (term[beds]["low"], term[beds]["actual"], term[beds]["achievement"]) == (120, 118, four_places(118, 120))
    rural = term["indicator.new_rural_communes.value"]
    assert (rural["low"], rural["high"], rural["actual"], rural["met"]) == (3, 4, 3, True)  # three communes
    assert term[DOCTORS]["achievement"] == four_places(Decimal(43 * 10_000) / 43_500, Decimal("9.96"))
    members = sum(r["body"]["value"] for r in reports if r["body"]["indicator"] == "new_party_members")
    assert term[MEMBERS] == {
        "low": 450,
        "high": 500,
        "actual": members,
        "achievement": four_places(members, 450),
        "met": members >= 450,
        "above": members > 500,
        "source": "own",
        "units": 1,
    }
