"""The placement guard against a real MongoDB: recorded on a first start, checked on every other."""

import pytest
from pymongo import MongoClient

from services.aggregate.placement import PLACEMENTS, PlacementMismatch, check_placement, record_placement
from shared.domain.partitions import fingerprint
from tests.contract.conftest import fresh_database

pytestmark = pytest.mark.integration


@pytest.fixture
async def db(request):
    async with fresh_database(request) as (client, database):
        yield client, database


async def test_the_first_start_on_an_empty_changelog_records_the_placement(db):
    client, database = db
    await check_placement(client, database, "reports", 8, changelog_empty=True)
    doc = await client[database][PLACEMENTS].find_one({"_id": "reports"})
    assert (doc["fingerprint"], doc["partitions"]) == (fingerprint(8), 8)
    await check_placement(client, database, "reports", 8, changelog_empty=False)  # and it passes after


async def test_state_from_before_the_placement_was_recorded_is_refused(db):
    client, database = db
    with pytest.raises(PlacementMismatch, match=r"tools\.partitions grow --to 8"):
        await check_placement(client, database, "reports", 8, changelog_empty=False)
    assert await client[database][PLACEMENTS].count_documents({}) == 0


async def test_another_count_is_refused_until_the_tool_records_the_move(db, request):
    client, database = db
    await check_placement(client, database, "reports", 4, changelog_empty=True)
    with pytest.raises(PlacementMismatch, match="placed for 4 partitions"):
        await check_placement(client, database, "reports", 6, changelog_empty=False)
    sync: MongoClient = MongoClient(request.getfixturevalue("infra")["MONGODB_URI"])
    try:
        record_placement(sync, database, "reports", 6)
    finally:
        sync.close()
    await check_placement(client, database, "reports", 6, changelog_empty=False)
