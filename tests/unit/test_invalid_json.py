"""A body that is not JSON is a 400 on every route that takes a body, in both services, and the
OpenAPI schema of that route lists 400."""

import pytest
from fastapi.testclient import TestClient

from services.api.app import create_app as create_api
from services.api.repository import InMemoryTotalsReader
from services.api.settings import ApiSettings
from services.ingest.app import create_app as create_ingest
from services.ingest.publisher import InMemoryPublisher
from services.ingest.settings import IngestSettings
from services.ingest.submissions import InMemorySubmissionLog
from shared.domain.auth import COUNTRY, Scope, mint
from shared.domain.hierarchy import load_vietnam
from tests.conftest import TEST_SECRET

TREE = load_vietnam(["38"])
COMMON = {"kafka_bootstrap_servers": "unused:9092", "mongodb_uri": "mongodb://unused", "auth_secret": TEST_SECRET}
HEADERS = {
    "Authorization": f"Bearer {mint(TEST_SECRET, COUNTRY, list(Scope), 3600)}",
    "Content-Type": "application/json",
}


def ingest_app():
    return create_ingest(
        IngestSettings(**COMMON), publisher=InMemoryPublisher(), submissions=InMemorySubmissionLog(), tree=TREE
    )


def api_app():
    return create_api(ApiSettings(**COMMON), reader=InMemoryTotalsReader({}), tree=TREE)


@pytest.mark.parametrize(
    ("make_app", "path"),
    [(ingest_app, "/v1/reports"), (ingest_app, "/v1/reports/batch"), (api_app, "/v1/admin/agencies")],
)
@pytest.mark.parametrize("body", [b"{not json", b'[{"report_id": "r-1",', b'{"a": 1}}'])
def test_a_body_that_is_not_json_is_400_and_the_schema_says_so(make_app, path, body):
    with TestClient(make_app()) as client:
        r = client.post(path, content=body, headers=HEADERS)
        assert r.status_code == 400, r.text
        assert r.json()["detail"].startswith("invalid JSON at position ")
        responses = client.get("/openapi.json").json()["paths"][path]["post"]["responses"]
    assert "400" in responses


@pytest.mark.parametrize(("make_app", "path"), [(ingest_app, "/v1/reports"), (api_app, "/v1/admin/agencies")])
def test_json_that_fails_validation_is_still_422(make_app, path):
    with TestClient(make_app()) as client:
        r = client.post(path, json={"unexpected": True}, headers=HEADERS)
    assert r.status_code == 422
    assert isinstance(r.json()["detail"], list)


@pytest.mark.parametrize(
    ("make_app", "path"),
    [(ingest_app, "/v1/reports"), (ingest_app, "/v1/reports/batch"), (api_app, "/v1/admin/agencies")],
)
@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"[" * 100_000, "nested too deep"),
        (b"[" * 5000 + b"]" * 5000, "nested too deep"),
        (b'{"a":' * 50_000, "nested too deep"),
        (b'{"unit": "\xff"}', "not UTF-8 at byte 10"),
    ],
)
def test_a_body_the_parser_gives_up_on_is_a_400_that_says_why(make_app, path, body, says):
    with TestClient(make_app()) as client:
        r = client.post(path, content=body, headers=HEADERS)
    assert r.status_code == 400 and says in r.json()["detail"], r.text
