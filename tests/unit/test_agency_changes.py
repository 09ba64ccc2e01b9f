"""Renaming and closing agencies (services/api/agencies.py, OrgTree.close_agency): a closed
agency leaves the expected counts of the periods it is closed on the last day of, and nothing
else; reopening restores them."""

from datetime import date

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from services.api.agencies import AgencyChange, AgencyRegistrar, NotAnAgency, RegistryUnavailable
from services.api.app import create_app
from services.api.repository import InMemoryTotalsReader
from services.api.settings import ApiSettings
from shared.adapters.audit import InMemoryAuditLog
from shared.domain.audit import Action, AuditQuery
from shared.domain.auth import Scope, mint
from shared.domain.hierarchy import LEGACY, TREE_2025, HierarchyError, Level, OrgTree, load_vietnam
from shared.domain.periods import parse_period
from tests.conftest import TEST_SECRET
from tests.unit.test_api_app import DOCS


class ChangingRegistry:
    """Changes the tree as AgencyRegistry does, without a database."""

    def __init__(self, tree: OrgTree) -> None:
        self.tree = tree

    async def register(self, code: str, name: str, parent: str, trees: list[str] | None = None) -> bool:
        self.tree.add_agency(code, name, parent, trees)
        return True

    async def rename(self, code: str, name: str) -> None:
        self.tree.rename_agency(code, name)

    async def close(self, code: str, closed_from: date | None) -> None:
        self.tree.close_agency(code, closed_from)


@pytest.fixture
def trees() -> OrgTree:
    trees = load_vietnam(["38"])
    trees.version_named(LEGACY).add_agency("38-bv", "Bệnh viện", "38")  # under a province: in both trees
    return trees


def agencies_expected(tree: OrgTree, period: str) -> int:
    return tree.count("38", [Level.AGENCY], on=parse_period(period).end)


def test_a_closed_agency_is_expected_until_the_last_period_it_is_open_on_the_last_day_of(trees):
    tree = trees.version_named(TREE_2025)
    version = tree.version
    trees.close_agency("38-bv", date(2025, 10, 1))
    assert tree.version > version  # cached answers of the old tree are not reused
    assert agencies_expected(tree, "2025-09") == 1
    assert agencies_expected(tree, "2025-10") == 0  # closed on 1 October: closed on 31 October
    assert agencies_expected(tree, "2025-Q3") == 1
    assert agencies_expected(tree, "2025") == 0
    assert tree.count("38", [Level.AGENCY]) == 1  # without a day: every unit of the tree
    assert tree.count("VN", [Level.AGENCY], on=date(2026, 1, 1)) == 0
    assert "38-bv" in tree and not tree.open_on("38-bv", date(2025, 10, 1)) and tree.open_on("38-bv", date(2025, 9, 30))
    trees.close_agency("38-bv", None)
    assert agencies_expected(tree, "2025-10") == 1


def test_a_change_reaches_every_version_holding_the_agency(trees):
    trees.rename_agency("38-bv", "Bệnh viện Đa khoa")
    trees.close_agency("38-bv", date(2024, 1, 1))
    for version in trees.versions:
        assert version.get("38-bv").name == "Bệnh viện Đa khoa"
        assert version.closed_from("38-bv") == date(2024, 1, 1)
    assert [u.code for u in trees.version_named(TREE_2025).search("da khoa")] == ["38-bv"]


def test_only_agencies_are_renamed_or_closed(trees):
    with pytest.raises(HierarchyError, match="386 is not an agency"):
        trees.version_named(LEGACY).close_agency("386", date(2025, 1, 1))


async def test_the_registrar_applies_a_change_and_refuses_what_is_not_an_agency(trees):
    tree = trees.version_named(LEGACY)
    registrar = AgencyRegistrar(ChangingRegistry(tree), max_per_unit=5)
    await registrar.change("38-bv", AgencyChange(name="Bệnh viện tỉnh", closed_from=date(2025, 3, 1)), tree)
    assert (tree.get("38-bv").name, tree.closed_from("38-bv")) == ("Bệnh viện tỉnh", date(2025, 3, 1))
    await registrar.change("38-bv", AgencyChange(name="Bệnh viện tỉnh"), tree)  # no closed_from: kept
    assert tree.closed_from("38-bv") == date(2025, 3, 1)
    await registrar.change("38-bv", AgencyChange.model_validate({"closed_from": None}), tree)  # null reopens
    assert tree.closed_from("38-bv") is None
    with pytest.raises(NotAnAgency, match="no agency '386'"):
        await registrar.change("386", AgencyChange(name="X"), tree)
    with pytest.raises(RegistryUnavailable):
        await AgencyRegistrar(None, max_per_unit=5).change("38-bv", AgencyChange(name="X"), tree)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"closed_from": "2025-13-01"}, "closed_from"),
        ({"name": "a\u202eb"}, "name"),
        ({"name": ""}, "name"),
        ({"x": 1}, "x"),
    ],
)
def test_a_bad_change_names_its_field(body, field):
    with pytest.raises(ValidationError) as caught:
        AgencyChange.model_validate(body)
    assert caught.value.errors()[0]["loc"] == (field,)


@pytest.fixture
def api():
    trees = load_vietnam(["38"])
    trees.version_named(LEGACY).add_agency("38-bv", "Bệnh viện", "38")
    settings = ApiSettings(
        kafka_bootstrap_servers="unused:9092", mongodb_uri="mongodb://unused", auth_secret=TEST_SECRET
    )
    app = create_app(settings, reader=InMemoryTotalsReader(DOCS), tree=trees)
    with TestClient(app) as http:
        components = app.state.components
        components.agencies.registry = ChangingRegistry(trees.version_named(LEGACY))
        components.audit = InMemoryAuditLog()
        http.headers["Authorization"] = f"Bearer {mint(TEST_SECRET, '38', [Scope.ADMIN], 3600)}"
        yield http


async def test_the_patch_route_renames_closes_reopens_and_writes_the_audit_log(api):
    answer = api.patch(
        "/v1/admin/agencies/38-bv?tree=2025", json={"name": "Bệnh viện tỉnh", "closed_from": "2025-10-01"}
    )
    assert answer.status_code == 200, answer.text
    assert (answer.json()["name"], answer.json()["closed_from"]) == ("Bệnh viện tỉnh", "2025-10-01")
    assert api.patch("/v1/admin/agencies/38-bv", json={"closed_from": None}).json()["closed_from"] is None
    entries = (await api.app.state.components.audit.page(AuditQuery("VN"))).items
    assert [(e.action, e.before, e.after) for e in reversed(entries)] == [
        (Action.AGENCY_RENAME, {"name": "Bệnh viện"}, {"name": "Bệnh viện tỉnh"}),
        (Action.AGENCY_CLOSE, {"closed_from": None}, {"closed_from": "2025-10-01"}),
        (Action.AGENCY_CLOSE, {"closed_from": "2025-10-01"}, {"closed_from": None}),
    ]
    assert entries[0].actor.startswith("token:") and entries[0].scope[-1] == "VN"


def test_the_patch_route_names_a_bad_field_and_refuses_what_it_must(api):
    bad = api.patch("/v1/admin/agencies/38-bv", json={"closed_from": "mai"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "closed_from"]
    assert api.patch("/v1/admin/agencies/38-zz", json={"name": "X"}).status_code == 404
    district = {"Authorization": f"Bearer {mint(TEST_SECRET, '386', [Scope.ADMIN], 3600)}"}
    assert api.patch("/v1/admin/agencies/38-bv", json={"name": "X"}, headers=district).status_code == 403
    reader = {"Authorization": f"Bearer {mint(TEST_SECRET, '38', [Scope.READ], 3600)}"}
    assert api.patch("/v1/admin/agencies/38-bv", json={"name": "X"}, headers=reader).status_code == 403
