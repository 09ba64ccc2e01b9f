"""One contract, two adapters: the targets, in memory and in MongoDB (shared/adapters/targets.py)."""

from decimal import Decimal

import pytest

from shared.adapters.targets import InMemoryTargetStore, MongoTargetStore
from shared.domain.targets import Target
from tests.contract.conftest import MEMORY_AND_MONGODB, fresh_database

AT = 1_765_000_000.5
PATHS = {
    "19555": ("19555", "467", "45", "VN"),
    "19558": ("19558", "467", "45", "VN"),
    "467": ("467", "45", "VN"),
    "45": ("45", "VN"),
    "14923": ("14923", "386", "38", "VN"),
}


@pytest.fixture(params=MEMORY_AND_MONGODB)
async def store(request):
    if request.param == "memory":
        yield InMemoryTargetStore()
        return
    async with fresh_database(request) as (client, database):
        mongo = MongoTargetStore(client, database)
        await mongo.ensure_indexes()
        yield mongo


def target(unit="467", metric="indicator.hospital_beds.value", period="2020-2025", low="120", high=None, by="huyen467"):
    return Target(unit, metric, period, Decimal(low), Decimal(high or low), by, AT, path=PATHS[unit])


async def test_a_target_is_kept_exactly_and_read_back(store):
    made = target(metric="indicator.doctors_per_10k.rate", low="9.96")
    assert await store.put(made) is None
    found = await store.get("467", "indicator.doctors_per_10k.rate", "2020-2025")
    assert found == made and found.path == made.path
    assert found.low == Decimal("9.96") and found.high == Decimal("9.96")
    assert await store.get("467", "indicator.doctors_per_10k.rate", "2024") is None
    assert await store.get("467", "indicator.hospital_beds.value", "2020-2025") is None


async def test_setting_again_replaces_and_returns_the_target_replaced(store):
    await store.put(target(low="450", high="500"))
    replaced = await store.put(target(low="460", high="500", by="tinh45"))
    assert (replaced.low, replaced.high, replaced.set_by) == (Decimal(450), Decimal(500), "huyen467")
    now = await store.get("467", "indicator.hospital_beds.value", "2020-2025")
    assert (now.low, now.set_by) == (Decimal(460), "tinh45")


async def test_a_removal_returns_what_it_removed_once(store):
    await store.put(target())
    removed = await store.remove("467", "indicator.hospital_beds.value", "2020-2025")
    assert removed is not None and removed.low == Decimal(120)
    assert await store.remove("467", "indicator.hospital_beds.value", "2020-2025") is None
    assert await store.get("467", "indicator.hospital_beds.value", "2020-2025") is None


async def test_a_listing_holds_the_subtree_of_one_period_by_unit_and_metric(store):
    for made in (
        target("19558", metric="indicator.new_party_members.value", period="2024", low="9"),
        target("19555", metric="indicator.new_party_members.value", period="2024", low="10"),
        target("19555", metric="indicator.new_rural_communes.value", period="2024", low="1"),
        target("467", metric="indicator.new_party_members.value", period="2024", low="90", high="100"),
        target("467", metric="indicator.new_party_members.value", period="2023", low="90", high="100"),
        target("45", metric="indicator.new_party_members.value", period="2024", low="900"),
        target("14923", metric="indicator.new_party_members.value", period="2024", low="5"),
    ):
        await store.put(made)
    listed = [(t.unit, t.metric) for t in await store.listing("467", "2024")]
    assert listed == [
        ("19555", "indicator.new_party_members.value"),
        ("19555", "indicator.new_rural_communes.value"),
        ("19558", "indicator.new_party_members.value"),
        ("467", "indicator.new_party_members.value"),
    ]
    assert len(await store.listing("45", "2024")) == 5
    assert len(await store.listing("VN", "2024")) == 6
    assert [t.unit for t in await store.listing("19555", "2023")] == []
    assert await store.listing("19561", "2024") == []
