"""Issue 24 against the running services: a report is on time until the end of the 15th day after
its period ends (Vietnam time), the demo shows realistic timeliness with seed 000 on time, and
reports from the future are refused on every path (HTTP 422, batch, straight to Kafka)."""

import json
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from shared.adapters.kafka_credentials import principal_env
from shared.domain.periods import parse_period
from shared.domain.stamps import STAMP_HEADER, stamp, stamp_key
from tests.conftest import TEST_SECRET, wait_until
from tools import demo
from tools.cli import load_demo

from .test_dead_letters_and_agencies import read_dead_letters

pytestmark = pytest.mark.e2e
ICT = timezone(timedelta(hours=7))


def session(rid, unit, period, held_on, attended=10):
    return {
        "report_id": rid,
        "revision": 1,
        "unit": unit,
        "kind": "study_session",
        "period": period,
        "submitted_at": datetime.now(UTC).isoformat(),
        "body": {
            "resolution": "NQ",
            "held_on": held_on,
            "format": "online",
            "bridge_points": 1,
            "delegates": 0,
            "members_attended": attended,
            "members_total": 50,
        },
    }


def test_a_report_received_just_after_its_period_ends_counts_on_time_and_one_after_the_deadline_late(system):
    """Receipt times set exactly through ingest's stamped envelope: the aggregator trusts the
    receipt time of an envelope stamped with the services' key, as ingest writes it."""
    end = datetime(2025, 12, 1, 0, 0, 0, tzinfo=ICT)  # 2025-11 ended a moment before
    due = datetime(2025, 12, 15, 23, 59, 59, 999999, tzinfo=ICT)
    arrivals = {
        "14923": end + timedelta(seconds=1),  # just after the period's end
        "14932": due - timedelta(seconds=1),  # a second before the deadline
        "14950": due + timedelta(seconds=1),  # a second after it
    }
    producer = system.unit_producer("38")
    key = stamp_key(TEST_SECRET)
    for unit, received in arrivals.items():
        value = json.dumps(
            {
                "report": session(f"edge-{unit}", unit, "2025-11", "2025-11-20"),
                "received_at": received.isoformat(),
                "source": "http",
            }
        ).encode()
        producer.producer.send(
            system.namespace.reports_topic, value=value, key=b"38", headers=[(STAMP_HEADER, stamp(key, value))]
        )
    producer.flush()
    producer.close()
    province = system.wait_for_metric("38", "2025-11", "study_session.members_attended", 30)
    assert province["completeness"]["study_session"]["units_reported"] == 3
    assert province["completeness"]["study_session"]["units_on_time"] == 2
    own = {unit: system.totals(unit, "2025-11")["completeness"]["study_session"] for unit in arrivals}
    assert {unit: c["units_on_time"] for unit, c in own.items()} == {"14923": 1, "14932": 1, "14950": 0}


def test_a_report_of_the_month_under_way_sent_over_http_counts_on_time(system):
    now = datetime.now(ICT)
    period = f"{now.year}-{now.month:02d}"
    with system.client(system.ingest.url) as http:
        answer = http.post("/v1/reports", json=session("now", "14923", period, f"{period}-01", attended=7))
    assert answer.status_code == 202, answer.text
    totals = system.wait_for_metric("14923", period, "study_session.members_attended", 7)
    assert totals["completeness"]["study_session"]["units_on_time"] == 1


def test_the_demo_sent_as_its_units_sent_it_is_mostly_on_time_and_seed_000_is_21_of_21(system):
    """What `make run` does: the demo's reports through ingest's use case at their send times."""
    counts = load_demo(
        system.api.url, system.ingest.url, system.admin_token, principal_env(system.namespace.env, "ingest")
    )
    assert counts == {"accepted": len(demo.all_reports(demo_tree()))}
    district = system.wait_for_metric("386", "2020-12", "study_session.members_attended", 5962)
    assert district["completeness"]["study_session"]["units_reported"] == 21
    assert district["completeness"]["study_session"]["units_on_time"] == 21
    late = {demo.communes_of(demo_tree(), demo.DAKRONG)[i] for i in demo.LATE_SENDERS}
    dakrong = wait_until(
        lambda: (
            (t := system.totals("467", "2022"))["completeness"]
            .get("indicator.new_party_members", {})
            .get("units_reported")
            == len(demo.communes_of(demo_tree(), demo.DAKRONG))
            and t
        ),
        timeout=90,
        what="Đakrông's 2022 reports",
    )
    figures = dakrong["completeness"]["indicator.new_party_members"]
    assert figures["units_on_time"] == figures["units_reported"] - len(late)
    # the first page a clerk of Xã Bá Thước opens: this month, on time
    this_month = datetime.now(ICT).strftime("%Y-%m")
    mine = wait_until(
        lambda: (
            (t := system.totals("14923", this_month))["completeness"].get("study_session", {}).get("units_reported")
            and t
        ),
        timeout=60,
        what="this month's demo report of 14923",
    )
    assert mine["completeness"]["study_session"]["units_on_time"] == 1


def demo_tree():
    from shared.domain.hierarchy import load_vietnam

    return load_vietnam()


def period_holding(day: date) -> str:
    """The finest period under way today (Vietnam time) that also holds ``day``."""
    today = datetime.now(ICT).date()
    quarter = (today.month - 1) // 3 + 1
    for label in (f"{today:%Y-%m}", f"{today.year}-Q{quarter}", str(today.year), "2025-2030", "2030-2035"):
        p = parse_period(label)
        if p.contains(today) and p.contains(day):
            return label
    raise AssertionError(f"no period holds both {today} and {day}")


def test_ingest_refuses_reports_from_the_future_with_422_naming_the_field(system):
    ahead = datetime.now(ICT).date() + timedelta(days=13)
    period = period_holding(ahead)
    with system.client(system.ingest.url) as http:
        future_period = http.post("/v1/reports", json=session("f1", "14923", "2099-03", "2099-03-10"))
        future_date = http.post("/v1/reports", json=session("f2", "14923", period, ahead.isoformat()))
        batch = http.post(
            "/v1/reports/batch",
            json=[session("f3", "14923", "2099-03", "2099-03-10"), session("f4", "14923", period, ahead.isoformat())],
        )
    assert future_period.status_code == 422, future_period.text
    errors = {tuple(e["loc"]): e["msg"] for e in future_period.json()["detail"]}
    assert "period 2099-03 has not begun" in errors["body", "period"]
    assert future_date.status_code == 422, future_date.text
    [error] = future_date.json()["detail"]
    assert error["loc"] == ["body", "body", "held_on"] and f"body.held_on {ahead} is in the future" in error["msg"]
    assert batch.status_code == 200
    assert [r["status"] for r in batch.json()["results"]] == ["invalid", "invalid"]
    assert batch.json()["results"][1]["errors"][0]["loc"] == ["body", "held_on"]


def test_a_report_from_the_future_sent_straight_to_kafka_is_a_dead_letter_naming_the_field(system):
    ahead = datetime.now(ICT).date() + timedelta(days=13)
    producer = system.unit_producer("38")
    topic = system.namespace.reports_topic
    producer.send(topic, json.dumps(session("k1", "14923", "2099-03", "2099-03-10")).encode(), key=b"14923")
    producer.send(
        topic, json.dumps(session("k2", "14923", period_holding(ahead), ahead.isoformat())).encode(), key=b"14923"
    )
    producer.flush()
    producer.close()
    letters = read_dead_letters(system, 2)
    reasons = sorted((h["baocao-reason"], h.get("baocao-detail", "")) for h in letters)
    assert [r for r, _ in reasons] == ["in_future", "in_future"]
    details = " | ".join(d for _, d in reasons)
    assert "period: period 2099-03 has not begun" in details
    assert f"body.held_on: body.held_on {ahead} is in the future" in details
    assert system.totals("14923", "2099-03")["metrics"] == {}
