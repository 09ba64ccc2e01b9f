"""Registering agencies (services/api/agencies.py): the names refused, the cap per unit, and the
tree versions an agency goes into, with an in-memory registry."""

import re

import pytest
from pydantic import ValidationError

from services.api.agencies import AgencyConflict, AgencyIn, AgencyRegistrar, RegistryUnavailable, TooManyAgencies
from shared.domain.auth import COUNTRY, Principal, Scope
from shared.domain.hierarchy import LEGACY, TREE_2025, HierarchyError, OrgTree, load_vietnam


class InMemoryRegistry:
    """Adds agencies to the tree as AgencyRegistry does, and remembers what it was asked."""

    def __init__(self, tree: OrgTree) -> None:
        self.tree = tree
        self.asked: list[tuple[str, str, str, list[str] | None]] = []
        self.known: dict[str, tuple[str, str]] = {}

    async def register(self, code, name, parent, trees=None):
        self.asked.append((code, name, parent, trees))
        if code in self.known:
            if self.known[code] != (name, parent):
                raise HierarchyError(f"agency {code} is already registered differently")
            return False
        self.tree.add_agency(code, name, parent, trees)
        self.known[code] = (name, parent)
        return True


def admin(unit: str) -> Principal:
    return Principal(token_id="t-" + unit, unit=unit, scopes=frozenset({Scope.ADMIN}), expires_at=2**40)


def agency(code: str, parent: str, name: str = "Bệnh viện") -> AgencyIn:
    return AgencyIn(code=code, name=name, parent=parent)


@pytest.fixture
def tree() -> OrgTree:
    return load_vietnam(["38"]).version_named(LEGACY)


async def test_an_agency_is_registered_once_and_again_identically_without_error(tree):
    registrar = AgencyRegistrar(InMemoryRegistry(tree), max_per_unit=5)
    assert await registrar.register(agency("38-bv", "38"), tree, admin("38")) is True
    assert await registrar.register(agency("38-bv", "38"), tree, admin("38")) is False
    assert tree.get("38-bv").parent == "38"


async def test_a_unit_takes_at_most_the_cap_and_a_repeat_of_a_registered_one_is_not_counted(tree):
    registrar = AgencyRegistrar(InMemoryRegistry(tree), max_per_unit=2)
    for code in ("386-a", "386-b"):
        await registrar.register(agency(code, "386"), tree, admin("386"))
    with pytest.raises(TooManyAgencies, match=r"unit 386 already has 2 agencies .*MAX_AGENCIES_PER_UNIT=2"):
        await registrar.register(agency("386-c", "386"), tree, admin("386"))
    assert await registrar.register(agency("386-a", "386"), tree, admin("386")) is False  # already there
    await registrar.register(agency("388-a", "388"), tree, admin("388"))  # another unit has its own cap


async def test_a_conflicting_registration_names_the_agency(tree):
    registrar = AgencyRegistrar(InMemoryRegistry(tree), max_per_unit=5)
    await registrar.register(agency("38-bv", "38"), tree, admin("38"))
    with pytest.raises(AgencyConflict, match="38-bv"):
        await registrar.register(agency("38-bv", "38", name="Trường"), tree, admin("38"))


async def test_without_a_registry_a_registration_is_refused_as_unavailable(tree):
    with pytest.raises(RegistryUnavailable):
        await AgencyRegistrar(None, max_per_unit=5).register(agency("38-bv", "38"), tree, admin("38"))


async def test_an_agency_goes_only_into_the_tree_versions_where_the_token_covers_its_parent():
    trees = load_vietnam(["38"])
    old = trees.version_named(LEGACY)
    registry = InMemoryRegistry(old)
    registrar = AgencyRegistrar(registry, max_per_unit=5)
    # 14923 is a commune of district 386 in the legacy tree and another commune in the 2025 tree
    assert "14923" in trees.version_named(TREE_2025)
    await registrar.register(agency("14923-bv", "14923"), old, admin("386"))
    assert registry.asked[-1][3] == [LEGACY]
    await registrar.register(agency("38-bv", "38"), old, admin(COUNTRY))
    assert sorted(registry.asked[-1][3]) == sorted([LEGACY, TREE_2025])


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("Bệnh\u202eviện", "bidirectional control characters (U+202E at position 4)"),
        ("Bệnh\u200bviện", "invisible format characters (U+200B at position 4)"),
        ("a<b>", "'<' or '>' (at position 1)"),
        ("---", "at least one letter or digit"),
    ],
)
def test_an_agency_name_that_could_hide_what_it_says_is_refused_naming_the_character(name, says):
    with pytest.raises(ValidationError, match=r"name\n.*" + re.escape(says)):
        agency("38-bv", "38", name=name)
