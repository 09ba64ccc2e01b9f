"""Schemathesis fuzzes both HTTP services from their own OpenAPI schemas: no 5xx, and every
response matches the schema it declares. Runs in-process against the apps with in-memory adapters
(the real-adapter behaviour is covered by the end-to-end tests)."""

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

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
AUTH = {"Authorization": f"Bearer {mint(TEST_SECRET, COUNTRY, list(Scope), 86400)}"}

ingest_app = create_ingest(
    IngestSettings(**COMMON), publisher=InMemoryPublisher(), submissions=InMemorySubmissionLog(), tree=TREE
)
api_app = create_api(ApiSettings(**COMMON), reader=InMemoryTotalsReader({}), tree=TREE)
# Run the lifespans once so the apps hold their components while schemathesis calls them.
for _app in (ingest_app, api_app):
    with TestClient(_app):
        pass

ingest_schema = schemathesis.openapi.from_asgi("/openapi.json", ingest_app)
api_schema = schemathesis.openapi.from_asgi("/openapi.json", api_app)
# Cross-field rules (attended <= total, dates inside the period, which indicator needs which
# fields) are beyond what the schema states, so "schema-valid data must be accepted" does not hold
# by design; everything else is checked.
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance]
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.mark.filterwarnings("ignore")
@ingest_schema.exclude(path="/metrics").parametrize()
@FUZZ
def test_ingest_never_answers_5xx_and_keeps_to_its_schema(case):
    case.call_and_validate(headers=AUTH, checks=CHECKS)


@pytest.mark.filterwarnings("ignore")
# Agency registration needs the MongoDB registry; it is exercised end to end instead.
@api_schema.exclude(path="/metrics").exclude(path_regex=".*/stream$").exclude(path="/v1/admin/agencies").parametrize()
@FUZZ
def test_api_never_answers_5xx_and_keeps_to_its_schema(case):
    case.call_and_validate(headers=AUTH, checks=CHECKS)
