"""/v1/targets over HTTP with fakes, and the targets in totals and drill-downs: set, replace and
remove with their refusals (each naming the field or the unit), audit entries, the roll-up and
the achievement beside the figures, one store listing per answer kept a few seconds."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.api.app import create_app
from services.api.repository import InMemoryTotalsReader
from services.api.settings import ApiSettings
from shared.adapters.targets import InMemoryTargetStore
from shared.domain.auth import Scope, mint
from shared.domain.hierarchy import load_vietnam
from shared.domain.totals_docs import stored_from_views
from tests.conftest import TEST_SECRET

TREE = load_vietnam(["45"])
LEGACY = TREE.for_period("2024")
COMMUNES = [c.code for c in LEGACY.children("467")]
MEMBERS = "indicator.new_party_members.value"
DOCTORS = "indicator.doctors_per_10k.rate"


def view(unit: str, series: str, sums: dict[str, int], reported: int) -> dict[str, Any]:
    return {
        "unit": unit,
        "series": series,
        "period": "2024",
        "parents": LEGACY.path(unit),
        "sums": sums,
        "reports": reported,
        "units_reported": reported,
        "units_on_time": reported,
    }


VIEWS = [
    view(COMMUNES[0], "indicator.new_party_members", {"value": 8}, 1),
    view(COMMUNES[1], "indicator.new_party_members", {"value": 9}, 1),
    view("467", "indicator.new_party_members", {"value": 17}, 2),
    view("45", "indicator.new_party_members", {"value": 17}, 2),
    view("467", "indicator.doctors_per_10k", {"numerator": 43, "denominator": 43_500}, 1),
    view("45", "indicator.doctors_per_10k", {"numerator": 43, "denominator": 43_500}, 1),
]


class CountingStore(InMemoryTargetStore):
    def __init__(self) -> None:
        super().__init__()
        self.listings = 0

    async def listing(self, unit: str, period: str):  # type: ignore[no-untyped-def]
        self.listings += 1
        return await super().listing(unit, period)


@pytest.fixture
def client():
    settings = ApiSettings(
        kafka_bootstrap_servers="unused:9092", mongodb_uri="mongodb://unused", auth_secret=TEST_SECRET
    )
    app = create_app(
        settings, reader=InMemoryTotalsReader(stored_from_views(VIEWS)), tree=TREE, target_store=CountingStore()
    )
    with TestClient(app) as c:
        yield c


def auth(unit, *scopes, token_id=None):
    token = mint(TEST_SECRET, unit, scopes or (Scope.SUBMIT, Scope.READ), 3600, token_id=token_id)
    return {"Authorization": f"Bearer {token}"}


def body(unit="467", metric=MEMBERS, period="2024", value="90–100"):
    return {"unit": unit, "metric": metric, "period": period, "value": value}


def test_refusals_name_the_field_or_the_unit(client):
    read_only = client.post("/v1/targets", json=body(), headers=auth("467", Scope.READ))
    assert read_only.status_code == 403 and "'submit' or 'approve' scope" in read_only.text
    above = client.post("/v1/targets", json=body(), headers=auth(COMMUNES[0]))
    assert above.status_code == 403 and f"outside this token's unit {COMMUNES[0]}" in above.text
    for wrong, field in [
        (body(value="100-90"), "value"),
        (body(value="12,5"), "value"),
        (body(value=True), "value"),
        (body(metric="indicator.tea.value"), "metric"),
        (body(metric="study_session.resolution"), "metric"),
        (body(period="2024-13"), "period"),
    ]:
        answer = client.post("/v1/targets", json=wrong, headers=auth("45"))
        assert answer.status_code == 422, (wrong, answer.text)
        assert answer.json()["detail"][0]["loc"][:2] == ["body", field], answer.text
    assert client.post("/v1/targets", json=body(unit="99999"), headers=auth("45")).status_code == 403
    assert client.post("/v1/targets", json=body(unit="19599"), headers=auth("VN")).status_code == 404
    gone = client.delete(f"/v1/targets/467/{MEMBERS}/2024", headers=auth("45"))
    assert gone.status_code == 404 and "no target of" in gone.text


def test_set_replace_remove_each_audited(client):
    made = client.post("/v1/targets", json=body(), headers=auth("467", token_id="h467"))
    assert made.status_code == 201, made.text
    assert (made.json()["low"], made.json()["high"], made.json()["text"], made.json()["replaced"]) == (
        90,
        100,
        "90–100",
        None,
    )
    again = client.put(f"/v1/targets/467/{MEMBERS}/2024", json={"value": 95}, headers=auth("45", Scope.APPROVE))
    assert again.status_code == 200 and again.json()["replaced"]["text"] == "90–100"
    rate = client.put(f"/v1/targets/467/{DOCTORS}/2024", json={"value": "9,96"}, headers=auth("467"))
    assert rate.json()["low"] == 9.96
    listed = client.get("/v1/targets", params={"unit": "45", "period": "2024"}, headers=auth("45", Scope.READ))
    assert [(t["unit"], t["metric"], t["text"]) for t in listed.json()["targets"]] == [
        ("467", DOCTORS, "9,96"),
        ("467", MEMBERS, "95"),
    ]
    assert client.delete(f"/v1/targets/467/{MEMBERS}/2024", headers=auth("467")).json()["text"] == "95"
    entries = client.app.state.components.audit.entries
    assert [(e.action.value, e.actor, e.subject, e.scope[-2:]) for e in entries][:2] == [
        ("target.set", "token:h467", f"467/{MEMBERS}/2024", ("legacy:45", "VN")),
        ("target.set", entries[1].actor, f"467/{MEMBERS}/2024", ("legacy:45", "VN")),
    ]
    assert entries[1].before == {"metric": MEMBERS, "target": "90–100", "set_by": "token:h467"}
    assert entries[-1].action.value == "target.remove" and entries[-1].after is None


def read(client, path):
    answer = client.get(path, params={"period": "2024"}, headers=auth("45", Scope.READ))
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_totals_and_drill_down_carry_rolled_up_targets_and_achievement(client):
    for unit, value in [(COMMUNES[0], "10"), (COMMUNES[1], "9-12")]:
        assert client.post("/v1/targets", json=body(unit=unit, value=value), headers=auth("467")).status_code == 201
    client.post("/v1/targets", json=body(metric=DOCTORS, value="9,96"), headers=auth("467"))
    district = read(client, "/v1/units/467/totals")
    assert {"unit", "period", "metrics", "rates", "completeness", "approvals"} <= set(district)
    # 8 + 9 = 17 members against 10 + 9 = 19 (the high 10 + 12 = 22): 17/19 = 0.8947
    assert district["targets"][MEMBERS] == {
        "low": 19,
        "high": 22,
        "actual": 17,
        "achievement": 0.8947,
        "met": False,
        "above": False,
        "source": "summed",
        "units": 2,
    }
    # 43 x 10,000 / 43,500 = 9.8851 doctors per 10,000 against 9.96: 0.9925; a rate does not add up
    assert district["targets"][DOCTORS]["achievement"] == 0.9925
    assert district["targets"][DOCTORS]["actual"] == 9.8851
    province = read(client, "/v1/units/45/totals")
    assert set(province["targets"]) == {MEMBERS} and province["targets"][MEMBERS]["source"] == "summed"
    rows = {r["unit"]["code"]: r["targets"] for r in read(client, "/v1/units/467/children/totals")["children"]}
    assert rows[COMMUNES[0]][MEMBERS]["achievement"] == 0.8 and rows[COMMUNES[0]][MEMBERS]["source"] == "own"
    assert rows[COMMUNES[1]][MEMBERS]["met"] is True  # 9 reaches the low of 9-12
    assert rows[COMMUNES[2]] == {}


def test_one_listing_per_answer_kept_five_seconds_and_cleared_by_a_change(client):
    store = client.app.state.components.targets
    client.post("/v1/targets", json=body(unit=COMMUNES[0], value="10"), headers=auth("467"))
    before = store.listings
    read(client, "/v1/units/467/children/totals")
    read(client, "/v1/units/467/children/totals")
    assert store.listings == before + 1  # one for all the children, then kept
    client.delete(f"/v1/targets/{COMMUNES[0]}/{MEMBERS}/2024", headers=auth("467"))
    rows = read(client, "/v1/units/467/children/totals")["children"]
    assert all(r["targets"] == {} for r in rows) and store.listings == before + 2
