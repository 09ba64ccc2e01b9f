"""The ingest service over HTTP, with the in-memory publisher and submission log."""

import json
import logging

import pytest
from fastapi.testclient import TestClient

from services.aggregate.routing import partition_for
from services.ingest.app import create_app
from services.ingest.publisher import InMemoryPublisher
from services.ingest.settings import IngestSettings
from services.ingest.submissions import InMemorySubmissionLog
from shared.adapters.revocations import InMemoryRevocations
from shared.domain.auth import Scope, mint
from shared.domain.hierarchy import load_vietnam
from tests.conftest import TEST_SECRET

TREE = load_vietnam(["38"])


def report(unit="14923", rid="r-1", rev=1, attended=280):
    return {
        "report_id": rid,
        "revision": rev,
        "unit": unit,
        "kind": "study_session",
        "period": "2020-12",
        "submitted_at": "2020-12-26T09:00:00+07:00",
        "body": {
            "resolution": "NQ",
            "held_on": "2020-12-25",
            "format": "online",
            "bridge_points": 1,
            "delegates": 0,
            "members_attended": attended,
            "members_total": 300,
        },
    }


@pytest.fixture
def world():
    publisher = InMemoryPublisher()
    revocations = InMemoryRevocations()
    settings = IngestSettings(
        kafka_bootstrap_servers="unused:9092",
        mongodb_uri="mongodb://unused",
        auth_secret=TEST_SECRET,
        max_body_bytes=200_000,
        max_batch=50,
    )
    app = create_app(
        settings, publisher=publisher, submissions=InMemorySubmissionLog(), tree=TREE, revocations=revocations
    )
    with TestClient(app) as client:
        yield client, publisher, revocations


def auth(unit="14923", scopes=(Scope.SUBMIT,)):
    return {"Authorization": f"Bearer {mint(TEST_SECRET, unit, scopes, 3600)}"}


def published(publisher):
    return [json.loads(v) for part in publisher.partitions for _, v in part]


def test_an_accepted_report_is_published_keyed_by_its_province_and_stamped(world):
    client, publisher, _ = world
    r = client.post("/v1/reports", json=report(), headers=auth())
    assert r.status_code == 202
    assert r.json() == {"report_id": "r-1", "revision": 1, "status": "accepted"}
    [envelope] = published(publisher)
    assert envelope["report"]["unit"] == "14923" and envelope["received_at"]
    # to the partition the aggregator counts province 38 on (services/aggregate/routing.py)
    assert [(p, k) for p, part in enumerate(publisher.partitions) for k, _ in part] == [
        (partition_for("38", len(publisher.partitions)), b"38")
    ]


def test_a_resubmission_is_a_duplicate_and_is_not_published_again(world):
    client, publisher, _ = world
    client.post("/v1/reports", json=report(), headers=auth())
    r = client.post("/v1/reports", json=report(), headers=auth())
    assert (r.status_code, r.json()["status"]) == (200, "duplicate")
    assert len(published(publisher)) == 1


def test_the_same_revision_with_other_figures_is_a_conflict(world):
    client, _, _ = world
    client.post("/v1/reports", json=report(), headers=auth())
    r = client.post("/v1/reports", json=report(attended=1), headers=auth())
    assert r.status_code == 409 and "revision 2" in r.json()["detail"]


def test_a_report_id_is_the_units_own_a_siblings_report_of_that_id_is_another_report(world):
    client, publisher, _ = world
    assert client.post("/v1/reports", json=report(), headers=auth("14923")).status_code == 202
    r = client.post("/v1/reports", json=report(unit="14926", attended=5), headers=auth("14926"))
    assert (r.status_code, r.json()["status"]) == (202, "accepted")
    assert "14923" not in r.text
    assert sorted(e["report"]["unit"] for e in published(publisher)) == ["14923", "14926"]


def test_a_revision_cannot_change_its_kind_and_the_answer_speaks_only_of_the_units_own_report(world):
    client, _, _ = world
    client.post("/v1/reports", json=report(), headers=auth("14923"))
    reflection = {**report(rev=2), "kind": "reflection", "body": {"members_submitted": 1, "members_required": 2}}
    r = client.post("/v1/reports", json=reflection, headers=auth("14923"))
    assert r.status_code == 409
    assert r.json()["detail"] == (
        "report r-1 of unit 14923 is a study_session report; a revision cannot change its kind, nor move to a "
        "period of another administrative tree (@2025: the tree from 2025-07-01); use a new report_id"
    )


def test_an_invalid_report_gets_422_naming_the_field(world):
    client, publisher, _ = world
    r = client.post("/v1/reports", json=report(attended=400), headers=auth())
    assert r.status_code == 422
    assert any("members_attended (400) must not exceed members_total (300)" in e["msg"] for e in r.json()["detail"])
    assert published(publisher) == []


def test_an_unknown_unit_gets_422_on_the_unit_field(world):
    client, _, _ = world
    r = client.post("/v1/reports", json=report(unit="99999"), headers=auth("VN"))
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "unit"]


def test_when_kafka_does_not_acknowledge_the_answer_is_503_never_202(world):
    client, publisher, _ = world
    publisher.available = False
    r = client.post("/v1/reports", json=report(), headers=auth())
    assert r.status_code == 503 and "not accepted" in r.json()["detail"]
    publisher.available = True
    assert client.post("/v1/reports", json=report(), headers=auth()).status_code == 202


@pytest.mark.parametrize(
    ("token_unit", "status"), [("14926", 403), ("14923", 202), ("386", 202), ("388", 403), ("38", 202)]
)
def test_a_token_submits_only_inside_its_own_subtree(world, token_unit, status):
    client, _, _ = world
    assert client.post("/v1/reports", json=report(), headers=auth(token_unit)).status_code == status


def test_a_read_only_token_cannot_submit(world):
    client, _, _ = world
    assert client.post("/v1/reports", json=report(), headers=auth(scopes=(Scope.READ,))).status_code == 403


@pytest.mark.parametrize("header", [None, "Bearer nonsense", "Basic abc", "Bearer bcv1.e30.AAAA"])
def test_missing_or_forged_tokens_get_401(world, header):
    client, _, _ = world
    headers = {"Authorization": header} if header else {}
    assert client.post("/v1/reports", json=report(), headers=headers).status_code == 401


def test_expired_and_revoked_tokens_get_401(world):
    client, _, revocations = world
    expired = mint(TEST_SECRET, "14923", [Scope.SUBMIT], -10)
    assert client.post("/v1/reports", json=report(), headers={"Authorization": f"Bearer {expired}"}).status_code == 401
    token = mint(TEST_SECRET, "14923", [Scope.SUBMIT], 3600)
    from shared.domain.auth import verify

    revocations.revoked[verify(TEST_SECRET, token).token_id] = "lost laptop"
    assert client.post("/v1/reports", json=report(), headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_a_batch_answers_each_item_and_loses_none(world):
    client, publisher, _ = world
    items = [report(rid="a"), report(rid="b", attended=999), report(rid="c", unit="14926"), report(rid="d", unit="388")]
    r = client.post("/v1/reports/batch", json=items, headers=auth("386"))
    assert r.status_code == 200
    statuses = [x["status"] for x in r.json()["results"]]
    assert statuses == ["accepted", "invalid", "accepted", "forbidden"]
    assert {e["report"]["report_id"] for e in published(publisher)} == {"a", "c"}


def test_oversized_batches_and_bodies_get_413(world):
    client, _, _ = world
    assert (
        client.post("/v1/reports/batch", json=[report(rid=f"x{i}") for i in range(51)], headers=auth()).status_code
        == 413
    )
    big = report()
    big["body"]["resolution"] = "x" * 300_000
    assert client.post("/v1/reports", json=big, headers=auth()).status_code == 413


@pytest.mark.parametrize(
    "evil",
    [
        {"unit": {"$ne": None}},
        {"report_id": {"$gt": ""}},
        {"period": {"$regex": ".*"}},
        {"body": {"$where": "sleep(1000)"}},
        {"kind": "study_session", "$set": {"x": 1}},
    ],
)
def test_mongodb_operators_in_a_report_are_rejected_as_invalid(world, evil):
    client, publisher, _ = world
    payload = {**report(), **evil}
    r = client.post("/v1/reports", json=payload, headers=auth("VN"))
    assert r.status_code == 422
    assert published(publisher) == []


def test_probes_and_metrics_answer(world):
    client, _, _ = world
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    client.post("/v1/reports", json=report(), headers=auth())
    text = client.get("/metrics").text
    assert 'baocao_ingest_reports_total{outcome="accepted"} 1.0' in text
    assert 'baocao_ingest_requests_total{code="202",route="/v1/reports"} 1.0' in text


def test_a_token_over_its_rate_gets_429_with_retry_after():
    settings = IngestSettings(
        kafka_bootstrap_servers="unused:9092",
        mongodb_uri="mongodb://unused",
        auth_secret=TEST_SECRET,
        rate_limit_per_second=1,
        rate_limit_burst=3,
        max_batch=3,
    )
    app = create_app(
        settings,
        publisher=InMemoryPublisher(),
        submissions=InMemorySubmissionLog(),
        tree=TREE,
        revocations=InMemoryRevocations(),
    )
    with TestClient(app) as client:
        headers = auth()
        codes = [client.post("/v1/reports", json=report(rid=f"r{i}"), headers=headers).status_code for i in range(4)]
        assert codes == [202, 202, 202, 429]
        r = client.post("/v1/reports", json=report(rid="late"), headers=headers)
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
        # another token is not affected
        assert client.post("/v1/reports", json=report(rid="other"), headers=auth("386")).status_code == 202


def test_the_limiter_refills_at_its_rate():
    from services.ingest.ratelimit import RateLimiter

    now = [0.0]
    limiter = RateLimiter(rate_per_s=10, burst=5, clock=lambda: now[0])
    assert limiter.acquire("t", 5) == 0
    assert limiter.acquire("t", 1) == pytest.approx(0.1)
    now[0] = 0.5
    assert limiter.acquire("t", 5) == 0
    assert limiter.acquire("t", 6) == float("inf")


def test_retry_after_is_whole_seconds_at_least_one_and_an_hour_for_more_than_the_burst():
    from services.ingest.ratelimit import NEVER, RateLimiter, retry_after

    limiter = RateLimiter(rate_per_s=4, burst=10, clock=lambda: 0.0)
    assert retry_after(limiter, "t", 10) is None  # taken from the bucket
    assert retry_after(limiter, "t", 1) == 1  # 0.25 s, rounded up
    assert retry_after(limiter, "t", 9) == 3  # 2.25 s
    assert retry_after(limiter, "t", 11) == NEVER == 3600


def test_a_request_before_the_lifespan_has_opened_the_components_is_told_so():
    from services.ingest.deps import components_of

    settings = IngestSettings(
        kafka_bootstrap_servers="unused:9092", mongodb_uri="mongodb://unused", auth_secret=TEST_SECRET
    )
    app = create_app(settings, publisher=InMemoryPublisher(), submissions=InMemorySubmissionLog(), tree=TREE)
    with pytest.raises(RuntimeError, match="opened by the app's lifespan"):
        components_of(app)
    with TestClient(app):
        assert components_of(app).tree is TREE


class UnreadableRevocations(InMemoryRevocations):
    async def is_revoked(self, token_id):
        from shared.adapters.revocations import RevocationsUnavailable

        raise RevocationsUnavailable("revoked tokens unreadable: ServerSelectionTimeoutError")


def test_an_unreadable_revocation_list_is_503_with_retry_after_never_500_nor_open():
    settings = IngestSettings(
        kafka_bootstrap_servers="unused:9092", mongodb_uri="mongodb://unused", auth_secret=TEST_SECRET
    )
    publisher = InMemoryPublisher()
    app = create_app(
        settings,
        publisher=publisher,
        submissions=InMemorySubmissionLog(),
        tree=TREE,
        revocations=UnreadableRevocations(),
    )
    with TestClient(app) as client:
        response = client.post("/v1/reports", json=report(), headers=auth())
    assert response.status_code == 503 and response.headers["retry-after"] == "5"
    assert "revoked tokens unreadable" in response.json()["detail"]
    assert all(not p for p in publisher.partitions)  # nothing was accepted


def rejections(caplog):
    """The 'rejected report' log lines, as the JSON objects the service writes."""
    from shared.logs import JsonFormatter

    formatter = JsonFormatter()
    return [json.loads(formatter.format(r)) for r in caplog.records if r.getMessage() == "rejected report"]


def test_a_rejected_report_is_logged_with_its_reason_and_fields_never_the_token(world, caplog):
    client, _, _ = world
    headers = auth()
    token = headers["Authorization"].removeprefix("Bearer ")
    long = {**report(rid="r" * 1000), "kind": "k" * 1000}  # an error message that echoes the input
    with caplog.at_level(logging.WARNING, logger="services.ingest.outcomes"):
        assert client.post("/v1/reports", json=report(rid="r-bad", attended=400), headers=headers).status_code == 422
        assert client.post("/v1/reports", json=long, headers=headers).status_code == 422
    first, second = rejections(caplog)
    assert first["level"] == "warning" and first["logger"] == "services.ingest.outcomes"
    assert (first["route"], first["reason"], first["report_id"], first["unit"]) == (
        "/v1/reports",
        "invalid",
        "r-bad",
        "14923",
    )
    assert any("members_attended (400) must not exceed members_total (300)" in e["msg"] for e in first["errors"])
    assert all(set(e) == {"loc", "msg"} for e in first["errors"] + second["errors"])
    assert second["errors"] and all(len(e["msg"]) <= 200 for e in second["errors"])
    assert len(second["report_id"]) == 200 and "k" * 201 not in caplog.text
    assert token not in caplog.text


def test_rejected_items_of_a_batch_unknown_units_and_non_json_bodies_are_logged(world, caplog):
    client, _, _ = world
    items = [report(rid="a"), report(rid="b", attended=999), report(rid="d", unit="388"), {"report_id": 7}]
    with caplog.at_level(logging.WARNING, logger="services.ingest.outcomes"):
        client.post("/v1/reports/batch", json=items, headers=auth("386"))
        client.post("/v1/reports", json=report(rid="u", unit="99999"), headers=auth("VN"))
        client.post("/v1/reports", content=b"{oops", headers={**auth(), "Content-Type": "application/json"})
    got = [(x["route"], x["reason"], x.get("index"), x.get("report_id"), x.get("unit")) for x in rejections(caplog)]
    assert sorted(got[:3], key=lambda g: g[2]) == [
        ("/v1/reports/batch", "invalid", 1, "b", "14923"),
        ("/v1/reports/batch", "forbidden", 2, "d", "388"),
        ("/v1/reports/batch", "invalid", 3, None, None),
    ]
    assert got[3:] == [
        ("/v1/reports", "unknown_unit", None, "u", "99999"),
        ("/v1/reports", "invalid_json", None, None, None),
    ]
    assert "Bearer" not in caplog.text and "bcv1." not in caplog.text


def test_a_chunked_body_over_the_limit_gets_413_not_400_and_without_a_token_401_unread(world):
    client, publisher, _ = world
    sent = [0]

    def chunks():
        for _ in range(20):  # 2 MB in 100 kB chunks, no Content-Length; the limit is 200 kB
            sent[0] += 1
            yield b"x" * 100_000

    r = client.post("/v1/reports", content=chunks(), headers={**auth(), "content-type": "application/json"})
    assert r.status_code == 413
    assert r.json()["detail"] == "request body larger than 200000 bytes"
    sent[0] = 0
    r = client.post("/v1/reports", content=chunks(), headers={"content-type": "application/json"})
    assert (r.status_code, r.json()["detail"]) == (401, "missing bearer token")
    assert r.headers["connection"] == "close" and sent[0] == 0  # answered before any byte of the body
    assert published(publisher) == []


@pytest.mark.parametrize(
    ("header", "detail"),
    [
        ({}, "missing bearer token"),
        ({"Authorization": "Bearer nope"}, "malformed token"),
        ({"Authorization": "Bearer " + mint("x" * 32, "14923", ["submit"], 3600)}, "bad signature"),
        ({"Authorization": "Bearer " + mint(TEST_SECRET, "14923", ["submit"], -10)}, "token expired"),
    ],
)
def test_a_body_without_a_valid_token_is_refused_before_it_is_read(world, header, detail):
    client, _, _ = world
    for path in ("/v1/reports", "/v1/reports/batch"):

        def never():
            raise AssertionError("the body was read")
            yield b""

        r = client.post(path, content=never(), headers={**header, "content-type": "application/json"})
        assert (r.status_code, r.json()["detail"]) == (401, detail)
        assert r.headers["www-authenticate"] == "Bearer"


def test_a_content_length_over_the_limit_gets_413_before_the_token_is_checked(world):
    client, _, _ = world
    r = client.post("/v1/reports", content=b"x" * 200_001, headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert "200000 bytes" in r.json()["detail"]


def test_a_token_cannot_tell_an_unknown_unit_from_a_neighbours_when_submitting(world):
    client, publisher, _ = world
    for unit in ("14926", "99999"):
        r = client.post("/v1/reports", json=report(unit=unit, rid=f"r-{unit}"), headers=auth("14923"))
        assert r.status_code == 403
        assert r.json()["detail"] == f"unit {unit} is outside this token's unit 14923"
    items = [report(unit="14926", rid="a"), report(unit="99999", rid="b"), report(unit="14923-khong_co", rid="c")]
    r = client.post("/v1/reports/batch", json=items, headers=auth("14923"))
    assert [x["status"] for x in r.json()["results"]] == ["forbidden", "forbidden", "unknown_unit"]
    assert published(publisher) == []


def test_a_token_with_stray_characters_in_its_signature_gets_401(world):
    client, _, _ = world
    token = auth()["Authorization"]
    r = client.post("/v1/reports", json=report(), headers={"Authorization": token + "!!"})
    assert r.status_code == 401 and r.json()["detail"] == "malformed token"


def test_a_neighbours_registered_and_missing_agency_are_refused_on_the_same_path_before_any_lookup():
    tree = load_vietnam(["38"])
    tree.add_agency("14926-bv", "Bệnh viện", "14926")
    settings = IngestSettings(
        kafka_bootstrap_servers="unused:9092", mongodb_uri="mongodb://unused", auth_secret=TEST_SECRET
    )
    app = create_app(
        settings,
        publisher=InMemoryPublisher(),
        submissions=InMemorySubmissionLog(),
        tree=tree,
        revocations=InMemoryRevocations(),
    )
    looked_up: list[str] = []

    async def lookup(code: str) -> bool:  # the registry's read, for a code no tree holds
        looked_up.append(code)
        return False

    with TestClient(app) as client:
        client.app.state.components.service.lookup_unit = lookup
        answers = {
            unit: client.post("/v1/reports", json=report(unit=unit, rid=f"r-{unit}"), headers=auth("14923"))
            for unit in ("14926-bv", "14926-khong_co")
        }
        assert {u: (r.status_code, r.json()["detail"]) for u, r in answers.items()} == {
            u: (403, f"unit {u} is outside this token's unit 14923") for u in answers
        }
        items = [report(unit="14926-bv", rid="a"), report(unit="14926-khong_co", rid="b")]
        batch = client.post("/v1/reports/batch", json=items, headers=auth("14923")).json()["results"]
        assert [x["status"] for x in batch] == ["forbidden", "forbidden"]
        assert looked_up == []  # neither asked the registry: existence made no difference
        # the token's own new agency is looked up (it may have been registered a moment ago)
        own = client.post("/v1/reports", json=report(unit="14923-moi", rid="own"), headers=auth("14923"))
        assert own.status_code == 422 and looked_up


@pytest.mark.integration
def test_reports_recorded_before_scopes_get_theirs_at_start_up_agencies_included(infra, monkeypatch):
    """Ingest's start-up fills in the scope of the reports recorded without one, after it has
    loaded the agency registry, so an agency's reports are placed too."""
    import uuid

    from pymongo import MongoClient

    from shared.adapters.mongo import AGENCIES, SUBMISSIONS

    monkeypatch.setattr("services.ingest.components.freeze_startup_objects", lambda: None)  # not in a test process
    database = f"ingest_scope_{uuid.uuid4().hex[:8]}"
    sync: MongoClient = MongoClient(infra["MONGODB_URI"])
    try:
        sync[database][AGENCIES].insert_one(
            {"_id": "386-bv", "name": "Bệnh viện", "parent": "386", "trees": ["legacy"]}
        )
        sync[database][SUBMISSIONS].insert_many(
            [
                {"_id": "386-bv/a", "unit": "386-bv", "report_id": "a", "series": "reflection", "revisions": {}},
                {"_id": "14923/b", "unit": "14923", "report_id": "b", "series": "study_session@2025", "revisions": {}},
            ]
        )
        settings = IngestSettings(
            kafka_bootstrap_servers="unused:9092",
            mongodb_uri=infra["MONGODB_URI"],
            mongodb_database=database,
            auth_secret=TEST_SECRET,
        )
        app = create_app(
            settings, publisher=InMemoryPublisher(), tree=load_vietnam(["38"]), revocations=InMemoryRevocations()
        )
        with TestClient(app):
            scopes = {d["_id"]: d.get("scope") for d in sync[database][SUBMISSIONS].find({})}
        assert scopes == {
            "386-bv/a": ["legacy:386-bv", "legacy:386", "legacy:38"],
            "14923/b": ["2025:14923", "2025:38"],
        }
    finally:
        sync.drop_database(database)
        sync.close()
