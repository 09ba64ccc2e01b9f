"""/v1/approvals over HTTP with fakes: each refusal names what was refused (scope, unit, series,
period, the level that approved), and approving and unapproving each write an audit entry."""

import pytest
from fastapi.testclient import TestClient

from services.api.app import create_app
from services.api.repository import InMemoryTotalsReader
from services.api.settings import ApiSettings
from shared.domain.auth import Scope, mint
from shared.domain.hierarchy import load_vietnam
from tests.conftest import TEST_SECRET

TREE = load_vietnam(["38"])
BODY = {"unit": "14923", "series": "study_session", "period": "2020-12"}
PATH = "/v1/approvals/14923/study_session/2020-12"


@pytest.fixture
def client():
    settings = ApiSettings(
        kafka_bootstrap_servers="unused:9092", mongodb_uri="mongodb://unused", auth_secret=TEST_SECRET
    )
    with TestClient(create_app(settings, reader=InMemoryTotalsReader({}), tree=TREE)) as c:
        yield c


def auth(unit, *scopes, token_id=None):
    token = mint(TEST_SECRET, unit, scopes or (Scope.APPROVE, Scope.READ), 3600, token_id=token_id)
    return {"Authorization": f"Bearer {token}"}


def test_refusals_name_what_was_refused(client):
    assert "lacks the 'approve' scope" in client.post("/v1/approvals", json=BODY, headers=auth("38", Scope.READ)).text
    neighbour = client.post("/v1/approvals", json=BODY, headers=auth("14926"))
    assert neighbour.status_code == 403 and "outside this token's unit 14926" in neighbour.text
    series = client.post("/v1/approvals", json={**BODY, "series": "tea"}, headers=auth("38"))
    assert series.status_code == 422 and series.json()["detail"][0]["loc"] == ["body", "series"]
    period = client.post("/v1/approvals", json={**BODY, "period": "2020-13"}, headers=auth("38"))
    assert period.status_code == 422 and period.json()["detail"][0]["loc"] == ["body", "period"]
    unknown = client.post("/v1/approvals", json={**BODY, "unit": "99999"}, headers=auth("38"))
    assert unknown.status_code == 403  # a code outside the token's unit, whether or not it exists
    assert client.delete(PATH, headers=auth("38")).status_code == 404


def test_approve_then_unapprove_from_above_each_audited(client):
    made = client.post("/v1/approvals", json=BODY, headers=auth("386", token_id="d386"))
    assert made.status_code == 201 and made.json()["approver"] == "token:d386"
    below = client.delete(PATH, headers=auth("14923"))
    assert below.status_code == 403 and "approved at level 386" in below.json()["detail"]
    assert client.delete(PATH, headers=auth("38", token_id="p38")).json()["level"] == "386"
    audit = client.app.state.components.audit
    assert [(e.action.value, e.actor, e.scope) for e in audit.entries] == [
        ("approval.approve", "token:d386", ("legacy:14923", "legacy:386", "legacy:38", "VN")),
        ("approval.unapprove", "token:p38", ("legacy:14923", "legacy:386", "legacy:38", "VN")),
    ]
