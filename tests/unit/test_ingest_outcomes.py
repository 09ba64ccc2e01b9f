"""What became of a report (a Verdict) and the one mapping from it to HTTP (services/ingest/outcomes.py),
checked against what both report routes answer."""

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.ingest.app import create_app
from services.ingest.metrics import IngestMetrics
from services.ingest.outcomes import HTTP_STATUS, REJECTED, Result, Verdict, batch_status, count, in_body
from services.ingest.publisher import InMemoryPublisher
from services.ingest.settings import IngestSettings
from services.ingest.submissions import InMemorySubmissionLog
from shared.adapters.revocations import InMemoryRevocations
from shared.domain.hierarchy import load_vietnam
from tests.conftest import TEST_SECRET
from tests.unit.test_ingest_app import auth, report


def test_every_verdict_has_one_status_and_only_unavailable_asks_to_send_again_as_is():
    assert set(HTTP_STATUS) == set(Verdict)
    assert {v for v, code in HTTP_STATUS.items() if 200 <= code < 300} == {Verdict.ACCEPTED, Verdict.DUPLICATE}
    assert {v for v, code in HTTP_STATUS.items() if 400 <= code < 500} == REJECTED
    assert {v for v, code in HTTP_STATUS.items() if code >= 500} == {Verdict.UNAVAILABLE}


# For each verdict: the token's unit, the report to send, and what happens before it is sent.
Setup = Callable[[TestClient, InMemoryPublisher], None]
SCENARIOS: dict[Verdict, tuple[str, dict[str, Any], Setup]] = {
    Verdict.ACCEPTED: ("14923", report(), lambda client, publisher: None),
    Verdict.DUPLICATE: (
        "14923",
        report(),
        lambda client, publisher: client.post("/v1/reports", json=report(), headers=auth()),
    ),
    Verdict.INVALID: (  # valid in itself, but its period has not begun at its receipt
        "14923",
        {**report(), "period": "2099-01", "body": {**report()["body"], "held_on": "2099-01-15"}},
        lambda client, publisher: None,
    ),
    Verdict.UNKNOWN_UNIT: ("VN", report(unit="99999"), lambda client, publisher: None),
    Verdict.FORBIDDEN: ("14923", report(unit="388"), lambda client, publisher: None),
    Verdict.CONFLICT: (
        "14923",
        report(attended=10),
        lambda client, publisher: client.post("/v1/reports", json=report(), headers=auth()),
    ),
    Verdict.UNAVAILABLE: ("14923", report(), lambda client, publisher: setattr(publisher, "available", False)),
}


def test_every_verdict_has_a_scenario():
    assert set(SCENARIOS) == set(Verdict)


@pytest.fixture
def ingest():
    publisher = InMemoryPublisher()
    settings = IngestSettings(
        kafka_bootstrap_servers="unused:9092", mongodb_uri="mongodb://unused", auth_secret=TEST_SECRET
    )
    app = create_app(
        settings,
        publisher=publisher,
        submissions=InMemorySubmissionLog(),
        tree=load_vietnam(["38"]),
        revocations=InMemoryRevocations(),
    )
    with TestClient(app) as client:
        yield client, publisher


@pytest.mark.parametrize("verdict", list(Verdict), ids=str)
def test_the_single_route_answers_each_verdict_with_its_status(ingest, verdict):
    client, publisher = ingest
    unit, body, before = SCENARIOS[verdict]
    before(client, publisher)
    answer = client.post("/v1/reports", json=body, headers=auth(unit))
    assert answer.status_code == HTTP_STATUS[verdict]
    assert f'baocao_ingest_reports_total{{outcome="{verdict}"}} 1.0' in client.get("/metrics").text
    if verdict in (Verdict.ACCEPTED, Verdict.DUPLICATE):
        assert answer.json()["status"] == verdict.value


def test_the_single_route_declares_every_status_it_answers_a_verdict_with(ingest):
    client, _ = ingest
    declared = client.get("/openapi.json").json()["paths"]["/v1/reports"]["post"]["responses"]
    assert {str(code) for code in HTTP_STATUS.values()} <= set(declared)


@pytest.mark.parametrize("verdict", list(Verdict), ids=str)
def test_a_batch_item_gets_the_verdict_as_its_status_and_only_unavailable_makes_the_batch_503(ingest, verdict):
    client, publisher = ingest
    unit, body, before = SCENARIOS[verdict]
    before(client, publisher)
    answer = client.post("/v1/reports/batch", json=[body], headers=auth(unit))
    assert answer.status_code == (503 if verdict is Verdict.UNAVAILABLE else 200)
    [item] = answer.json()["results"]
    assert item["status"] == verdict.value
    assert ("errors" in item) == (verdict not in (Verdict.ACCEPTED, Verdict.DUPLICATE))


def test_a_batch_is_503_when_any_item_is_unavailable():
    assert batch_status([Result(Verdict.ACCEPTED), Result(Verdict.CONFLICT)]) == 200
    assert batch_status([Result(Verdict.ACCEPTED), Result(Verdict.UNAVAILABLE)]) == 503
    assert batch_status([]) == 200


def test_errors_located_in_the_body_keep_the_report_as_a_whole_unlocated():
    errors = [{"loc": ["unit"], "msg": "a"}, {"loc": ["body", "held_on"], "msg": "b"}, {"loc": [], "msg": "c"}]
    assert [e["loc"] for e in in_body(errors)] == [["body", "unit"], ["body", "body", "held_on"], []]


def sample(metrics: IngestMetrics, name: str, label: str) -> float:
    value = metrics.registry.get_sample_value(name, {"outcome" if "reports" in name else "reason": label})
    return value or 0.0


def test_an_invalid_report_counts_each_error_by_type_any_other_only_itself():
    metrics = IngestMetrics()
    errors = [{"type": "period_not_begun"}, {"type": "date_in_future"}, {"msg": "no type"}]
    count(metrics, Verdict.INVALID, errors)
    count(metrics, Verdict.CONFLICT, [{"type": "conflict"}])
    assert sample(metrics, "baocao_ingest_reports_total", "invalid") == 1
    assert sample(metrics, "baocao_ingest_reports_total", "conflict") == 1
    failures = "baocao_ingest_validation_failures_total"
    assert [sample(metrics, failures, t) for t in ("period_not_begun", "date_in_future", "invalid", "conflict")] == [
        1,
        1,
        1,
        0,
    ]
