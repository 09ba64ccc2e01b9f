"""Both services declare their bearer tokens and one error schema in the OpenAPI schema."""

import pytest

from services.api.app import create_app as create_api
from services.api.repository import InMemoryTotalsReader
from services.api.settings import ApiSettings
from services.ingest.app import create_app as create_ingest
from services.ingest.publisher import InMemoryPublisher
from services.ingest.settings import IngestSettings
from services.ingest.submissions import InMemorySubmissionLog
from shared.domain.hierarchy import load_vietnam
from tests.conftest import TEST_SECRET

COMMON = {"kafka_bootstrap_servers": "unused:9092", "mongodb_uri": "mongodb://unused", "auth_secret": TEST_SECRET}


def ingest_schema():
    app = create_ingest(
        IngestSettings(**COMMON),
        publisher=InMemoryPublisher(),
        submissions=InMemorySubmissionLog(),
        tree=load_vietnam(["38"]),
    )
    return app.openapi()


def api_schema():
    return create_api(ApiSettings(**COMMON), reader=InMemoryTotalsReader({}), tree=load_vietnam(["38"])).openapi()


@pytest.mark.parametrize("schema_of", [ingest_schema, api_schema])
def test_every_v1_route_requires_the_bearer_scheme_and_the_probes_none(schema_of):
    schema = schema_of()
    assert schema["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "bcv1.<payload>.<signature>",
        "description": "an access token minted by `baocao token mint`, naming a unit, scopes and an expiry",
    }
    operations = [(path, op) for path, item in schema["paths"].items() for op in item.values()]
    v1 = [op for path, op in operations if path.startswith("/v1/")]
    assert v1 and all(op.get("security") == [{"bearer": []}] for op in v1)
    assert all("security" not in op for path, op in operations if path in ("/healthz", "/readyz", "/metrics"))


@pytest.mark.parametrize("schema_of", [ingest_schema, api_schema])
def test_error_answers_share_one_declared_schema(schema_of):
    schema = schema_of()
    assert set(schema["components"]["schemas"]["ErrorOut"]["properties"]) == {"detail"}
    ref = {"$ref": "#/components/schemas/ErrorOut"}
    for path, item in schema["paths"].items():
        if not path.startswith("/v1/"):
            continue
        for op in item.values():
            for code in ("401", "403", "413"):
                assert op["responses"][code]["content"]["application/json"]["schema"] == ref, (path, code)


def test_the_batch_route_declares_its_items_as_the_single_route_report():
    schema = ingest_schema()
    single = schema["paths"]["/v1/reports"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    batch = schema["paths"]["/v1/reports/batch"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert batch["type"] == "array" and batch["maxItems"] == 1000
    assert batch["items"] == single
    kinds = {ref["$ref"].rsplit("/", 1)[-1] for ref in batch["items"]["oneOf"]}
    assert kinds == {
        "StudySessionReportIn",
        "ActionProgramReportIn",
        "MemberRatingReportIn",
        "ReflectionReportIn",
        "IndicatorReportIn",
        "TrainingCourseReportIn",
        "OrganisationRatingReportIn",
    }
    assert batch["items"]["discriminator"]["propertyName"] == "kind"
    assert kinds <= set(schema["components"]["schemas"])
