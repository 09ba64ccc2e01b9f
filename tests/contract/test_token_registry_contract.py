"""One contract, two adapters: the machine tokens issued from the admin pages, in memory and in
MongoDB (shared/adapters/tokens.py)."""

import pytest

from shared.adapters.tokens import InMemoryTokenRegistry, IssuedToken, MongoTokenRegistry, TokenExists, new_token_id
from tests.contract.conftest import MEMORY_AND_MONGODB, fresh_database

DISTRICT = ("legacy:386", "legacy:38", "VN")
PROVINCE = ("2025:38", "VN")


@pytest.fixture(params=MEMORY_AND_MONGODB)
async def registry(request):
    if request.param == "memory":
        yield InMemoryTokenRegistry()
        return
    async with fresh_database(request) as (client, database):
        yield MongoTokenRegistry(client, database)


def issued(
    at: float, unit: str = "386", scope: tuple[str, ...] = DISTRICT, label: str = "Hệ thống huyện"
) -> IssuedToken:
    return IssuedToken(
        id=new_token_id(at),
        label=label,
        unit=unit,
        scopes=frozenset({"submit", "read"}),
        issued_by="admin38",
        issued_at=at,
        expires_at=int(at) + 86_400,
        scope=scope,
    )


async def test_a_token_is_kept_as_issued_and_an_unknown_id_is_none(registry):
    token = issued(1_760_000_000.25)
    await registry.add(token)
    assert await registry.get(token.id) == token
    assert await registry.get("0" * 19) is None


async def test_an_id_is_registered_once(registry):
    token = issued(1_760_000_000.0)
    await registry.add(token)
    with pytest.raises(TokenExists):
        await registry.add(IssuedToken(**{**token.__dict__, "label": "another"}))
    assert (await registry.get(token.id)).label == "Hệ thống huyện"


async def test_a_revocation_keeps_its_first_time(registry):
    token = issued(1_760_000_000.0)
    await registry.add(token)
    assert (await registry.revoke(token.id, 1_760_000_100.5)).revoked_at == 1_760_000_100.5
    assert (await registry.revoke(token.id, 1_760_000_200.0)).revoked_at == 1_760_000_100.5
    assert (await registry.get(token.id)).revoked_at == 1_760_000_100.5
    assert await registry.revoke("0" * 19, 1.0) is None


async def test_a_listing_holds_the_scope_newest_first_a_page_at_a_time(registry):
    district = [issued(1_760_000_000.0 + i) for i in range(5)]
    province = issued(1_760_000_010.0, unit="38", scope=PROVINCE)
    for token in [*district, province]:
        await registry.add(token)
    first = await registry.page("legacy:386", size=3)
    assert [t.id for t in first.items] == [t.id for t in reversed(district)][:3]
    rest = await registry.page("legacy:386", after=first.next, size=3)
    assert [t.id for t in rest.items] == [district[1].id, district[0].id] and rest.next is None
    assert [t.id for t in (await registry.page("VN")).items] == [province.id, *(t.id for t in reversed(district))]
    assert [t.id for t in (await registry.page("2025:38")).items] == [province.id]
    assert (await registry.page("legacy:388")).items == []


def test_ids_sort_by_the_time_they_were_made():
    ids = [new_token_id(t) for t in (1_000.0, 1_000.001, 2_000_000_000.0)]
    assert ids == sorted(ids) and len({len(i) for i in ids}) == 1
