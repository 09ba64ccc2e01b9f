"""The rules the pages' routes call: what ingest's answers become on the form, the client to
ingest that the app's lifespan opens and closes, the live-update quotas, and the access checks."""

import json
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from services.api.app import create_app
from services.api.repository import InMemoryTotalsReader
from services.api.settings import ApiSettings
from services.api.stream import StreamQuota
from services.api.web import labels
from services.api.web.access import OUTSIDE, allow, unit_error
from services.api.web.errors import PageError
from services.api.web.ingest import IngestClient, batch_results, report_outcome
from services.api.web.live import LiveStreams, SessionFull
from services.api.web.session import StreamGuard
from shared.domain.auth import Scope, mint, verify
from shared.domain.hierarchy import load_vietnam
from tests.conftest import TEST_SECRET
from tests.unit.test_api_app import DOCS

TREE = load_vietnam(["38"])
REPORT = {"report_id": "r-1", "revision": 2, "unit": "14923"}


def test_ingests_answers_become_an_outcome_or_errors_by_field_and_the_pages_status() -> None:
    assert report_outcome(202, {"status": "accepted"}, REPORT).outcome == "accepted"
    assert report_outcome(200, {"status": "duplicate"}, REPORT).outcome == "duplicate"
    invalid = report_outcome(422, {"detail": [{"loc": ["body", "delegates"], "type": "int_parsing"}]}, REPORT)
    assert (invalid.outcome, invalid.errors, invalid.status) == (None, {"delegates": "Phải là số nguyên."}, 422)
    conflict = report_outcome(409, {}, REPORT)
    assert "r-1" in conflict.errors["revision"] and "bản 2" in conflict.errors["revision"] and conflict.status == 422
    assert report_outcome(403, {}, REPORT).errors == {"unit": labels.STATUSES["forbidden"]}
    down = report_outcome(502, {}, REPORT)
    assert (down.errors, down.status) == ({"_form": labels.STATUSES["unavailable"]}, 503)


def test_a_batchs_results_say_each_status_in_words_and_its_errors_by_field_label() -> None:
    answer = {
        "results": [
            {"index": 0, "status": "accepted"},
            {"index": 1, "status": "invalid", "errors": [{"loc": ["body", "delegates"], "type": "missing"}]},
            {"index": 2, "status": "new_status"},
        ]
    }
    assert batch_results(answer) == [
        {"index": 0, "status": "accepted", "text": labels.STATUSES["accepted"], "message": ""},
        {
            "index": 1,
            "status": "invalid",
            "text": labels.STATUSES["invalid"],
            "message": f"{labels.field_label('delegates')}: Bắt buộc nhập.",
        },
        {"index": 2, "status": "new_status", "text": "new_status", "message": ""},
    ]


async def test_the_ingest_client_sends_with_the_sessions_token_on_one_connection_pool() -> None:
    seen: list[tuple[str, str, Any]] = []

    def ingest(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.path, request.headers["authorization"], json.loads(request.content)))
        if request.url.path == "/v1/reports/batch":
            return httpx.Response(200, json={"results": [{"index": 0, "status": "accepted"}]})
        return httpx.Response(202, json={"status": "accepted"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(ingest), base_url="http://ingest") as http:
        client = IngestClient(http)
        assert (await client.send_report("tok", REPORT)).outcome == "accepted"
        batch = await client.send_batch("tok", [REPORT])
    assert batch.status == 200 and batch.body["results"][0]["text"] == labels.STATUSES["accepted"]
    assert seen == [("/v1/reports", "Bearer tok", REPORT), ("/v1/reports/batch", "Bearer tok", [REPORT])]


async def test_an_unreachable_ingest_is_unavailable_on_the_form_and_503_for_a_batch() -> None:
    async with IngestClient.open("http://127.0.0.1:9") as client:
        sent = await client.send_report("tok", REPORT)
        batch = await client.send_batch("tok", [REPORT])
    assert (sent.outcome, sent.errors, sent.status) == (None, {"_form": labels.STATUSES["unavailable"]}, 503)
    assert (batch.status, batch.body) == (503, {"detail": labels.STATUSES["unavailable"]})


def test_the_apps_lifespan_opens_one_client_to_ingest_and_closes_it() -> None:
    settings = ApiSettings(
        kafka_bootstrap_servers="unused:9092", mongodb_uri="mongodb://unused", auth_secret=SecretStr(TEST_SECRET)
    )
    app = create_app(settings, reader=InMemoryTotalsReader(DOCS), tree=TREE)
    with TestClient(app):
        client = app.state.web.ingest
        http = client._http
        assert not http.is_closed and str(http.base_url).rstrip("/") == settings.ingest_url.rstrip("/")
    assert http.is_closed


def test_a_session_and_its_token_each_hold_at_most_their_streams_and_release_gives_back_both() -> None:
    per_token = StreamQuota(3)
    live = LiveStreams(2, per_token, StreamGuard(1.0))
    first, second = live.take("session-a", "token-1"), live.take("session-a", "token-1")
    with pytest.raises(SessionFull) as full:
        live.take("session-a", "token-1")  # the session's two
    assert full.value.held == 2
    third = live.take("session-b", "token-1")  # another session of the same token
    with pytest.raises(SessionFull):
        live.take("session-c", "token-1")  # the token's three, whatever the session
    assert per_token.held("token-1") == 3
    for release in (first, second, third):
        release()
    assert live.session_streams == {} and per_token.held("token-1") == 0 and len(per_token) == 0


def principal(unit: str, *scopes: Scope) -> Any:
    return verify(TEST_SECRET, mint(TEST_SECRET, unit, scopes or (Scope.READ,), 60))


def test_a_unit_outside_the_subtree_is_403_and_an_unknown_one_404_only_inside_it() -> None:
    old = TREE.version_named("legacy")
    allow(principal("386"), old, Scope.READ, "14923")
    with pytest.raises(PageError) as outside:
        allow(principal("386"), old, Scope.READ, "38")
    assert outside.value.status == 403
    with pytest.raises(PageError) as scope:
        allow(principal("386", Scope.SUBMIT), old, Scope.READ, "14923")
    assert scope.value.status == 403 and "xem số liệu" in scope.value.message
    with pytest.raises(PageError) as unknown:
        allow(principal("VN"), old, Scope.READ, "99999")
    assert unknown.value.status == 404


def test_who_may_send_a_report_is_decided_in_the_tree_of_its_period() -> None:
    district = principal("386", Scope.SUBMIT)
    assert unit_error(TREE, district, "14923", "2020-12") is None  # Cành Nàng, under 386
    assert unit_error(TREE, district, "14923", "2026-01") == OUTSIDE  # Bá Thước, under province 38
    closed = unit_error(TREE, district, "386", "2026-01")
    assert closed is not None and "không có trong cây đơn vị của kỳ 2026-01" in closed
    assert unit_error(TREE, district, "14923", "not-a-period") is None  # the period's own error says so
