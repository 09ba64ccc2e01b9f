"""One contract, two adapters: the account store (shared/adapters/accounts.py), in memory and on
the real MongoDB-compatible server."""

from collections.abc import AsyncIterator

import pytest

from shared.adapters.accounts import AccountExists, AccountStore, InMemoryAccountStore, MongoAccountStore, StaleAccount
from shared.domain.accounts import Account, Role
from tests.contract.conftest import MEMORY_AND_MONGODB, fresh_database


@pytest.fixture(params=MEMORY_AND_MONGODB)
async def store(request: pytest.FixtureRequest) -> AsyncIterator[AccountStore]:
    if request.param == "memory":
        yield InMemoryAccountStore()
        return
    async with fresh_database(request) as (client, database):
        yield MongoAccountStore(client, database)
        await client.drop_database(database)


def account(username: str, unit: str = "38", scope: tuple[str, ...] = ("2025:38", "VN"), **fields: object) -> Account:
    return Account(
        username,
        f"Tên {username}",
        unit,
        frozenset({Role.CLERK}),
        scope=scope,
        created_at=1000.5,
        **fields,  # type: ignore[arg-type]
    )


async def test_an_account_reads_back_as_written_and_a_taken_username_is_refused(store: AccountStore) -> None:
    written = account(
        "clerk.a",
        password_hash="$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
        created_by="admin.38",
        email="a@donvi.gov.vn",
    )
    await store.create(written)
    got = await store.get("clerk.a")
    assert got == written and got is not None and got.scope == written.scope
    assert await store.get("clerk.b") is None
    with pytest.raises(AccountExists):
        await store.create(account("clerk.a", unit="386"))
    assert await store.get("clerk.a") == written


async def test_an_update_is_stored_only_over_the_version_before(store: AccountStore) -> None:
    first = account("clerk.a")
    await store.create(first)
    second = first.changed(disabled=True, roles=frozenset({Role.VIEWER, Role.REVIEWER}))
    await store.update(second)
    assert await store.get("clerk.a") == second and second.version == 2
    with pytest.raises(StaleAccount):  # an admin who read version 1 changes it too
        await store.update(first.changed(display_name="Other"))
    with pytest.raises(StaleAccount):  # nothing to update
        await store.update(account("nobody").changed(disabled=True))
    assert await store.get("clerk.a") == second
    assert await store.get("nobody") is None


async def test_an_openid_identity_opens_one_account(store: AccountStore) -> None:
    await store.create(account("a.person", oidc_subject="https://idp.example sub-1"))
    await store.create(account("b.person"))  # no identity: several accounts may have none
    await store.create(account("c.person"))
    found = await store.by_oidc("https://idp.example sub-1")
    assert found is not None and found.username == "a.person"
    assert await store.by_oidc("https://idp.example sub-2") is None
    with pytest.raises(AccountExists):
        await store.create(account("d.person", oidc_subject="https://idp.example sub-1"))
    b = await store.get("b.person")
    assert b is not None
    with pytest.raises(AccountExists):
        await store.update(b.changed(oidc_subject="https://idp.example sub-1"))
    await store.update(b.changed(oidc_subject="https://idp.example sub-2"))
    found = await store.by_oidc("https://idp.example sub-2")
    assert found is not None and found.username == "b.person"


async def test_a_scope_pages_its_accounts_by_username(store: AccountStore) -> None:
    legacy = ("legacy:14923", "legacy:386", "legacy:38", "2025:14923", "2025:38", "VN")
    for name in ["p.05", "p.01", "p.03", "p.02", "p.04"]:
        await store.create(account(name, unit="14923", scope=legacy))
    await store.create(account("q.other", unit="40", scope=("2025:40", "VN")))
    first = await store.page("2025:38", size=2)
    assert [a.username for a in first.items] == ["p.01", "p.02"] and first.next == "p.02"
    second = await store.page("2025:38", first.next, size=2)
    assert [a.username for a in second.items] == ["p.03", "p.04"] and second.next == "p.04"
    last = await store.page("2025:38", second.next, size=2)
    assert [a.username for a in last.items] == ["p.05"] and last.next is None
    assert [a.username for a in (await store.page("legacy:386")).items] == ["p.01", "p.02", "p.03", "p.04", "p.05"]
    assert [a.username for a in (await store.page("VN", size=10)).items][-1] == "q.other"
    assert (await store.page("2025:39")).items == []
    exact = await store.page("2025:38", size=5)
    assert len(exact.items) == 5 and exact.next is None
