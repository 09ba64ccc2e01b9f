"""Approval and lock through the running services: seed 000 is submitted, district 386 approves a
commune's December 2020 (the commune's totals and the district's drill-down show it), the
commune's revision is refused naming the approver and the date, the commune's own approver cannot
unapprove, the province does, and the revision then counts exactly once. The 2025 tree's province
38 approves a commune of its own the same way. A unit's own system producing straight to Kafka
meets the same lock in the aggregator, and the approvals stream carries each approval and
unapproval."""

import json
import time
from collections.abc import Iterator

import pytest
from jsonschema import Draft202012Validator
from kafka import KafkaConsumer

from shared.adapters.approvals import CACHE_SECONDS
from shared.domain.approvals import MESSAGE_SCHEMA_PATH, approvals_topic
from shared.domain.auth import Scope, mint
from shared.domain.hierarchy import load_vietnam
from tests.conftest import TEST_SECRET, wait_until
from tools import demo

from .browser import Browser
from .system import System, own_system
from .test_dead_letters_and_agencies import good, read_dead_letters

pytestmark = pytest.mark.e2e

SEEN_BY_INGEST = CACHE_SECONDS + 1.0  # ingest and the aggregator read approvals through a cache of CACHE_SECONDS


@pytest.fixture(scope="module")
def system(infra: dict[str, str]) -> Iterator[System]:
    yield from own_system(infra)


def approver(unit: str, token_id: str) -> str:
    return mint(TEST_SECRET, unit, [Scope.APPROVE, Scope.READ], 3600, token_id=token_id)


def test_an_approved_commune_is_locked_until_the_level_above_unapproves(system: System) -> None:
    tree = load_vietnam()
    reports = demo.seed_000_study_sessions(tree)
    with system.client(system.ingest.url) as http:
        assert http.post("/v1/reports/batch", json=reports).json()["accepted"] == len(reports)
    system.wait_for_metric("386", "2020-12", "study_session.members_attended", 5962)
    first = next(r for r in reports if r["unit"] != demo.BA_THUOC)
    unit, old = first["unit"], first["body"]["members_attended"]
    revision = {**first, "revision": 2, "body": {**first["body"], "members_attended": old - 7}}
    clerk = system.token(unit, Scope.SUBMIT)

    with system.client(system.api.url, approver("386", "duyet386")) as http:
        made = http.post("/v1/approvals", json={"unit": unit, "series": "study_session", "period": "2020-12"})
        assert made.status_code == 201, made.text
        assert (made.json()["level"], made.json()["approver"]) == ("386", "token:duyet386")
        again = http.post("/v1/approvals", json={"unit": unit, "series": "study_session", "period": "2020-12"})
        assert again.status_code == 409 and "already approved by token:duyet386" in again.json()["detail"]
        listed = http.get("/v1/approvals", params={"unit": "386", "period": "2020-12"}).json()["approvals"]
        assert [(a["unit"], a["series"]) for a in listed] == [(unit, "study_session")]
        done = http.get("/v1/units/386/completeness", params={"series": "study_session", "period": "2020-12"}).json()
        assert (done["units_approved"], [a["unit"] for a in done["approved"]]) == (1, [unit])
        assert done["completeness"]["units_reported"] == 21  # the communes
        shown = {"by": "token:duyet386", "level": "386", "at": made.json()["at"]}
        own = http.get(f"/v1/units/{unit}/totals", params={"period": "2020-12"}).json()
        assert own["approvals"] == {"study_session": shown}
        rows = http.get("/v1/units/386/children/totals", params={"period": "2020-12"}).json()["children"]
        assert {r["unit"]["code"]: r["approvals"] for r in rows if r["approvals"]} == {unit: {"study_session": shown}}
    day = made.json()["at"][:10]

    time.sleep(SEEN_BY_INGEST)
    with system.client(system.ingest.url, clerk) as http:
        refused = http.post("/v1/reports", json=revision)
        assert refused.status_code == 409, refused.text
        message = refused.json()["detail"]
        assert f"approved by token:duyet386 (level 386) on {day}" in message
        assert http.post("/v1/reports", json=first).json()["status"] == "duplicate"

    with system.client(system.api.url, approver(unit, "duyetxa")) as http:
        below = http.delete(f"/v1/approvals/{unit}/study_session/2020-12")
        assert below.status_code == 403 and "approved at level 386" in below.json()["detail"]
    with system.client(system.api.url, approver("38", "duyet38")) as http:
        assert http.delete(f"/v1/approvals/{unit}/study_session/2020-12").status_code == 200
        assert http.get("/v1/approvals", params={"unit": "386", "period": "2020-12"}).json()["approvals"] == []
    with system.client(system.api.url) as http:
        actions = http.get("/v1/audit", params={"unit": "386", "period": "2020-12"}).json()["items"]
        trail = [(e["action"], e["actor"]) for e in actions if e["action"].startswith("approval.")]
        assert trail == [("approval.unapprove", "token:duyet38"), ("approval.approve", "token:duyet386")]

    time.sleep(SEEN_BY_INGEST)
    with system.client(system.ingest.url, clerk) as http:
        accepted = http.post("/v1/reports", json=revision)
        assert accepted.status_code == 202, accepted.text
    district = system.wait_for_metric("386", "2020-12", "study_session.members_attended", 5962 - 7)
    assert district["metrics"]["study_session.members_total"] == 6600
    assert system.totals("38", "2020-12")["metrics"]["study_session.members_attended"] == 5962 - 7


def test_the_2025_province_approves_its_commune_and_a_neighbour_province_cannot(system: System) -> None:
    tree = load_vietnam()
    q4 = [r for r in demo.reform_2025_study_sessions(tree) if r["period"] == "2025-Q4"]
    with system.client(system.ingest.url) as http:
        assert http.post("/v1/reports/batch", json=q4).json()["accepted"] == len(q4)
    unit = q4[0]["unit"]
    body = {"unit": unit, "series": "study_session", "period": "2025-Q4"}
    with system.client(system.api.url, approver("40", "duyet40")) as http:
        assert http.post("/v1/approvals", json=body).status_code == 403
    with system.client(system.api.url, approver("38", "duyet38moi")) as http:
        made = http.post("/v1/approvals", json=body)
        assert made.status_code == 201 and made.json()["level"] == "38", made.text
        done = http.get("/v1/units/38/completeness", params={"series": "study_session", "period": "2025-Q4"}).json()
        assert done["units_approved"] == 1
    time.sleep(SEEN_BY_INGEST)
    revision = {**q4[0], "revision": 2, "body": {**q4[0]["body"], "members_attended": 1}}
    with system.client(system.ingest.url, system.token(unit, Scope.SUBMIT)) as http:
        refused = http.post("/v1/reports", json=revision)
    assert refused.status_code == 409 and "approved by token:duyet38moi (level 38)" in refused.text


def read_approvals_topic(system: System, key: str, expected: int) -> list[dict[str, object]]:
    """The messages of ``key`` on the approvals stream from its beginning, as a provincial system
    reads them (the ``reader`` login), once there are ``expected`` of them."""
    consumer = KafkaConsumer(
        approvals_topic(system.namespace.env["BAOCAO_TOTALS_TOPIC"]),
        bootstrap_servers=system.namespace.env["KAFKA_BOOTSTRAP_SERVERS"],
        auto_offset_reset="earliest",
        **system.namespace.kafka_options("reader"),
        consumer_timeout_ms=2000,
    )
    seen: list[dict[str, object]] = []
    try:
        wait_until(
            lambda: (
                seen.extend(json.loads(m.value) for m in consumer if m.key.decode() == key) or len(seen) >= expected
            ),
            timeout=60,
            what=f"{expected} messages of {key} on the approvals stream",
        )
    finally:
        consumer.close()
    return seen


def test_a_report_produced_straight_to_kafka_meets_the_lock_and_the_stream_carries_the_approvals(
    system: System,
) -> None:
    unit, period, lock_id = "14926", "2021-11", "14926/study_session/2021-11"
    with system.client(system.ingest.url) as http:
        assert http.post("/v1/reports", json=good("kafka-lock", unit, attended=10)).status_code == 202
    system.wait_for_metric(unit, period, "study_session.members_attended", 10)
    with system.client(system.api.url, approver("386", "duyetkafka")) as http:
        made = http.post("/v1/approvals", json={"unit": unit, "series": "study_session", "period": period})
        assert made.status_code == 201, made.text
    time.sleep(SEEN_BY_INGEST)
    direct = system.unit_producer(unit)
    direct.send(system.namespace.reports_topic, json.dumps(good("kafka-lock", unit, attended=15, rev=2)).encode())
    direct.flush()

    (dead,) = [h for h in read_dead_letters(system, 1) if h["baocao-reason"] == "approved"]
    assert (
        f"{unit} for {period} was approved by token:duyetkafka (level 386) on {made.json()['at'][:10]}"
        in (dead["baocao-detail"])
    )
    with system.client(system.api.url, approver("386", "duyetkafka")) as http:
        assert http.delete(f"/v1/approvals/{lock_id}").status_code == 200
    time.sleep(SEEN_BY_INGEST)
    direct.send(system.namespace.reports_topic, json.dumps(good("kafka-lock", unit, attended=20, rev=3)).encode())
    direct.flush()
    direct.close()
    system.wait_for_metric(unit, period, "study_session.members_attended", 20)
    assert system.totals("386", period)["metrics"]["study_session.members_attended"] == 20  # 15 never counted

    schema = Draft202012Validator(json.loads(MESSAGE_SCHEMA_PATH.read_text()))
    stream = read_approvals_topic(system, lock_id, 2)
    for message in stream:
        schema.validate(message)
    assert [(m["approved"], m["approver"], m.get("unapproved_by")) for m in stream] == [
        (True, "token:duyetkafka", None),
        (False, "token:duyetkafka", "token:duyetkafka"),
    ]


@pytest.fixture
def browser(chromium, system: System, screenshots) -> Browser:  # type: ignore[no-untyped-def]
    return Browser(chromium, system.api.url, screenshots)


def approve_on_the_page(browser: Browser, page: str, unit: str, token_id: str) -> None:
    """On ``page``, "Duyệt" for ``unit``'s row, then the row says who approved, with "Bỏ duyệt"."""
    browser.open(page)
    cell = f"tr[data-unit='{unit}'] td.approval"
    assert browser.find(cell).get_attribute("data-approval") == "no"
    browser.find(f"{cell} button[value='approve']").click()
    browser.wait(lambda d: browser.all(f"{cell}[data-approval='yes']"), what="the approval")
    assert browser.text(cell).startswith(f"Đã duyệt (token:{token_id}, ")
    assert browser.find(f"{cell} button[value='unapprove']").text == "Bỏ duyệt"


def test_a_reviewer_approves_and_unapproves_on_the_unit_page_in_both_trees(system: System, browser: Browser) -> None:
    def reported(unit: str, period: str, units: int) -> None:
        wait_until(
            lambda: system.totals(unit, period)["completeness"]["study_session"]["units_reported"] == units,
            what=f"{units} units of {unit} reported in {period}",
        )

    tree = load_vietnam()
    old = demo.seed_000_study_sessions(tree)
    new = [r for r in demo.reform_2025_study_sessions(tree) if r["period"] == "2025-Q4"]
    with system.client(system.ingest.url) as http:
        http.post("/v1/reports/batch", json=[*old, *new]).raise_for_status()  # duplicates when already sent
    reported("386", "2020-12", 21)  # the communes
    commune = old[2]["unit"]

    # the old tree: district 386's reviewer approves a commune, then takes the approval back
    browser.login(approver("386", "web386"))
    page = "/web/units/386?period=2020-12&series=study_session"
    approve_on_the_page(browser, page, commune, "web386")
    browser.find(f"tr[data-unit='{commune}'] button[value='unapprove']").click()
    cell = f"tr[data-unit='{commune}'] td.approval"
    browser.wait(lambda d: browser.all(f"{cell}[data-approval='no'] button"), what="the unapproval")
    assert browser.find(f"{cell} button").text == "Duyệt"

    # the 2025 tree: province 38's reviewer approves a commune of its own, no district between
    reported("38", "2025-Q4", len(new))
    browser.login(approver("38", "web38"))
    approve_on_the_page(browser, "/web/units/38?period=2025-Q4&series=study_session", new[1]["unit"], "web38")
    with system.client(system.api.url) as http:
        listed = http.get("/v1/approvals", params={"unit": "38", "period": "2025-Q4"}).json()["approvals"]
    assert (new[1]["unit"], "token:web38") in {(a["unit"], a["approver"]) for a in listed}
