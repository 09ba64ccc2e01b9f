"""Reports from the future are refused (issue 24): a period that has not begun in Vietnam time,
or an event date after the receipt day plus one day, judged against the server's receipt time
(ingest's clock, or the broker's for a report sent straight to Kafka), never the sender's."""

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient

from services.aggregate.decode import Origin, Rejected, Trust, decode
from services.ingest.app import create_app
from services.ingest.publisher import InMemoryPublisher
from services.ingest.settings import IngestSettings
from services.ingest.submissions import InMemorySubmissionLog
from shared.adapters.revocations import InMemoryRevocations
from shared.domain.auth import Scope, mint
from shared.domain.catalog import load_catalog
from shared.domain.hierarchy import load_vietnam
from shared.domain.reports import REPORT_ADAPTER, future_problems
from shared.domain.rollup import Report
from shared.domain.stamps import STAMP_HEADER, TOKEN_HEADER, stamp, stamp_key
from tests.conftest import TEST_SECRET

ICT = timezone(timedelta(hours=7))
CATALOG = load_catalog()
TREE = load_vietnam(["38"])
NOW = datetime(2026, 12, 7, 15, 30, tzinfo=ICT)  # the receipt time of every report below


def session(period="2026-12", held_on="2026-12-05", unit="15031", rid="f-1", withdrawn=False):
    out = {
        "report_id": rid,
        "revision": 1,
        "unit": unit,
        "kind": "study_session",
        "period": period,
        "submitted_at": "2026-12-07T08:00:00+07:00",
        "withdrawn": withdrawn,
        "body": {
            "resolution": "NQ",
            "held_on": held_on,
            "format": "online",
            "bridge_points": 1,
            "delegates": 0,
            "members_attended": 20,
            "members_total": 30,
        },
    }
    return out


def program(adopted_on, period="2026-12"):
    return {
        "report_id": "ap-1",
        "revision": 1,
        "unit": "15031",
        "kind": "action_program",
        "period": period,
        "submitted_at": "2026-12-07T08:00:00+07:00",
        "body": {"resolution": "NQ", "adopted_on": adopted_on, "key_programs": 1, "breakthroughs": 1, "indicators": 1},
    }


def course(started_on, ended_on):
    return {
        "report_id": "tc-1",
        "revision": 1,
        "unit": "388",
        "kind": "training_course",
        "period": "2026-12",
        "submitted_at": "2026-12-07T08:00:00+07:00",
        "body": {
            "started_on": started_on,
            "ended_on": ended_on,
            "days": 1,
            "learners_enrolled": 10,
            "learners_completed": 10,
        },
    }


def problems(raw, at=NOW):
    return future_problems(REPORT_ADAPTER.validate_python(raw), at, CATALOG)


def test_a_report_of_a_period_under_way_with_a_past_date_has_no_problem():
    assert problems(session()) == []
    assert problems(session(period="2026-11", held_on="2026-11-30")) == []
    assert problems(session(period="2026", held_on="2026-01-02")) == []
    assert problems(session(period="2025-2030", held_on="2026-12-07")) == []


@pytest.mark.parametrize(
    ("period", "held_on"),
    [("2099-03", "2099-03-10"), ("2027-01", "2027-01-01"), ("2027-Q1", "2027-01-01"), ("2027", "2027-01-01")],
)
def test_a_period_that_has_not_begun_is_refused_naming_the_period(period, held_on):
    [first, *_] = problems(session(period=period, held_on=held_on))
    assert first["loc"] == ["period"] and first["type"] == "period_not_begun"
    assert f"period {period} has not begun" in first["msg"]
    assert "2026-12-07 15:30 Vietnam time" in first["msg"]


@pytest.mark.parametrize(
    ("at", "begun"),
    [
        (datetime(2026, 11, 30, 23, 54, 59, tzinfo=ICT), False),  # more than the clock skew before
        (datetime(2026, 11, 30, 23, 55, 0, tzinfo=ICT), True),  # a sender's clock 5 minutes fast
        (datetime(2026, 11, 30, 17, 0, 0, tzinfo=UTC), True),  # 00:00 on 1 December in Vietnam
        (datetime(2026, 11, 30, 16, 54, 59, tzinfo=UTC), False),  # still 30 November in Vietnam
    ],
)
def test_a_period_begins_in_vietnam_time_give_or_take_five_minutes(at, begun):
    got = problems(session(period="2026-12", held_on="2026-12-01"), at=at)
    assert ([p["loc"] for p in got if p["loc"] == ["period"]] == []) is begun


@pytest.mark.parametrize(
    ("held_on", "refused"),
    [("2026-12-07", False), ("2026-12-08", False), ("2026-12-09", True), ("2026-12-20", True)],
)
def test_an_event_date_more_than_a_day_after_the_receipt_day_is_refused_naming_the_field(held_on, refused):
    got = problems(session(held_on=held_on))
    assert bool(got) is refused
    if refused:
        assert got == [
            {
                "loc": ["body", "held_on"],
                "msg": f"body.held_on {held_on} is in the future: the report was received on 2026-12-07 "
                "(Vietnam time), and a date may be at most one day later",
                "type": "date_in_future",
            }
        ]


def test_the_receipt_day_is_the_day_in_vietnam_not_in_utc():
    late_evening_utc = datetime(2026, 12, 6, 18, 0, tzinfo=UTC)  # already 7 December, 01:00, in Vietnam
    assert problems(session(held_on="2026-12-08"), at=late_evening_utc) == []
    assert problems(session(held_on="2026-12-09"), at=late_evening_utc)[0]["loc"] == ["body", "held_on"]


def test_every_date_field_of_every_kind_is_checked():
    date_fields = {(k.name, f.name) for k in CATALOG.kinds.values() for f in k.fields if f.type == "date"}
    assert date_fields == {
        ("study_session", "held_on"),
        ("action_program", "adopted_on"),
        ("training_course", "started_on"),
        ("training_course", "ended_on"),
    }
    assert problems(program("2026-12-08")) == []
    [got] = problems(program("2026-12-20"))
    assert got["loc"] == ["body", "adopted_on"] and "body.adopted_on 2026-12-20" in got["msg"]
    assert problems(course("2026-12-01", "2026-12-08")) == []
    [got] = problems(course("2026-12-01", "2026-12-20"))  # a course reported before it ends
    assert got["loc"] == ["body", "ended_on"] and "body.ended_on 2026-12-20" in got["msg"]
    assert [p["loc"] for p in problems(course("2026-12-19", "2026-12-20"))] == [
        ["body", "started_on"],
        ["body", "ended_on"],
    ]


def test_a_withdrawal_is_never_from_the_future():
    """It adds no figures, and it is how a unit takes back such a report accepted earlier."""
    assert problems(session(period="2099-03", held_on="2099-03-10", withdrawn=True)) == []


# ingest, with its clock set to NOW


@pytest.fixture
def ingest():
    publisher = InMemoryPublisher()
    settings = IngestSettings(
        kafka_bootstrap_servers="unused:9092",
        mongodb_uri="mongodb://unused",
        auth_secret=TEST_SECRET,
        max_body_bytes=200_000,
        max_batch=50,
    )
    app = create_app(
        settings,
        publisher=publisher,
        submissions=InMemorySubmissionLog(),
        tree=TREE,
        revocations=InMemoryRevocations(),
        clock=lambda: NOW.astimezone(UTC),
    )
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {mint(TEST_SECRET, '38', (Scope.SUBMIT,), 3600)}"
        yield client, publisher


def published(publisher):
    return [json.loads(v) for part in publisher.partitions for _, v in part]


def test_ingest_answers_422_for_a_period_that_has_not_begun(ingest):
    client, publisher = ingest
    r = client.post("/v1/reports", json=session(period="2099-03", held_on="2099-03-10"))
    assert r.status_code == 422
    by_field = {tuple(e["loc"]): e for e in r.json()["detail"]}
    assert set(by_field) == {("body", "period"), ("body", "body", "held_on")}
    assert "period 2099-03 has not begun" in by_field["body", "period"]["msg"]
    assert published(publisher) == []


def test_ingest_answers_422_for_an_event_date_13_days_ahead_in_the_current_month(ingest):
    client, publisher = ingest
    r = client.post("/v1/reports", json=session(held_on="2026-12-20"))
    assert r.status_code == 422
    [error] = r.json()["detail"]
    assert error["loc"] == ["body", "body", "held_on"] and "body.held_on 2026-12-20 is in the future" in error["msg"]
    assert published(publisher) == []


def test_ingest_stamps_its_own_clock_as_the_receipt_time_not_the_senders(ingest):
    client, publisher = ingest
    sent = session(held_on="2026-12-08")
    sent["submitted_at"] = "2026-12-01T00:00:00+07:00"
    assert client.post("/v1/reports", json=sent).status_code == 202
    [envelope] = published(publisher)
    assert datetime.fromisoformat(envelope["received_at"]) == NOW


def test_a_batch_answers_invalid_for_its_items_from_the_future_and_takes_the_others(ingest):
    client, publisher = ingest
    items = [
        session(rid="ok"),
        session(rid="p", period="2099-03", held_on="2099-03-10"),
        session(rid="d", held_on="2026-12-20"),
    ]
    r = client.post("/v1/reports/batch", json=items)
    assert r.status_code == 200
    results = r.json()["results"]
    assert [x["status"] for x in results] == ["accepted", "invalid", "invalid"]
    assert [e["loc"] for e in results[1]["errors"]] == [["period"], ["body", "held_on"]]
    assert [e["loc"] for e in results[2]["errors"]] == [["body", "held_on"]]
    assert [e["report"]["report_id"] for e in published(publisher)] == ["ok"]


# the aggregator's decoding, for reports sent straight to Kafka and for envelopes

TRUST = Trust.from_secret(TEST_SECRET)
NOW_MS = int(NOW.timestamp() * 1000)


def direct(raw, timestamp_ms=NOW_MS):
    tok = mint(TEST_SECRET, "38", (Scope.SUBMIT,), 30 * 86_400, now=NOW.timestamp() - 60)
    origin = Origin(((TOKEN_HEADER, tok.encode()),), log_append_time=True)
    return decode(json.dumps(raw).encode(), timestamp_ms, CATALOG, TREE, origin, TRUST)


def test_a_report_sent_straight_to_kafka_from_the_future_is_a_dead_letter_naming_the_field():
    got = direct(session(period="2099-03", held_on="2099-03-10"))
    assert isinstance(got, Rejected) and got.reason == "in_future"
    assert got.detail.startswith("period: period 2099-03 has not begun")
    assert "body.held_on: body.held_on 2099-03-10 is in the future" in got.detail
    got = direct(session(held_on="2026-12-20"))
    assert isinstance(got, Rejected) and got.reason == "in_future" and got.detail.startswith("body.held_on:")


def test_on_kafka_the_receipt_time_is_the_brokers():
    assert isinstance(direct(session(held_on="2026-12-08")), Report)
    a_week_later = NOW_MS + 7 * 86_400_000
    assert isinstance(direct(session(held_on="2026-12-14"), timestamp_ms=a_week_later), Report)
    assert isinstance(direct(session(held_on="2026-12-14")), Rejected)


def test_an_envelope_is_judged_at_the_receipt_time_it_carries():
    def envelope(received_at):
        value = json.dumps({"report": session(held_on="2026-12-20"), "received_at": received_at.isoformat()}).encode()
        key = stamp_key(TEST_SECRET)
        return decode(value, NOW_MS, CATALOG, TREE, Origin(((STAMP_HEADER, stamp(key, value)),)), TRUST)

    assert isinstance(envelope(datetime(2026, 12, 20, 9, tzinfo=ICT)), Report)
    got = envelope(NOW)
    assert isinstance(got, Rejected) and got.reason == "in_future"
