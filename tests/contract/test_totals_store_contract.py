"""One contract, two adapters: the in-memory fake must behave like the MongoDB store."""

import pytest

from services.aggregate.store import InMemoryTotalsStore, LedgerWrite, MongoTotalsStore, TotalWrite
from shared.rollup import LedgerEntry, TotalKey
from tests.contract.conftest import MEMORY_AND_MONGODB, fresh_database

KEY = TotalKey("38", "study_session", "2020-12")


@pytest.fixture(params=MEMORY_AND_MONGODB)
async def store(request):
    if request.param == "memory":
        yield InMemoryTotalsStore()
        return
    async with fresh_database(request) as (client, database):
        yield MongoTotalsStore(client, database)


def write(expected, new, inc, partition=0):
    return TotalWrite(KEY, ("38",), expected, {partition: new}, inc)


async def test_a_first_write_creates_the_document_with_its_watermark_and_version(store):
    assert (await store.write_totals([write(None, 5, {"sums.members_attended": 7, "reports": 1})])) == set()
    doc = (await store.read_totals([KEY.id]))[KEY.id]
    assert doc["sums"]["members_attended"] == 7 and doc["reports"] == 1
    assert doc["unit"] == "38" and doc["series"] == "study_session" and doc["period"] == "2020-12"
    assert doc["wm"] == {"0": 5} and doc["version"] == 1
    assert (await store.read_versions([KEY.id, "nope"])) == {KEY.id: 1}


async def test_a_write_expecting_another_version_is_a_conflict_and_changes_nothing(store):
    (await store.write_totals([write(None, 5, {"reports": 1})]))
    assert (await store.write_totals([write(None, 9, {"reports": 1})])) == {KEY.id}
    assert (await store.write_totals([write(3, 9, {"reports": 1})])) == {KEY.id}
    doc = (await store.read_totals([KEY.id]))[KEY.id]
    assert doc["reports"] == 1 and doc["version"] == 1 and doc["wm"] == {"0": 5}


async def test_in_a_bulk_only_the_conflicting_writes_fail(store):
    other = TotalKey("38", "study_session", "2021-01")
    (await store.write_totals([write(None, 5, {"reports": 1})]))
    conflicts = await store.write_totals(
        [write(7, 6, {"reports": 1}), TotalWrite(other, ("38",), None, {0: 6}, {"reports": 4})]
    )
    assert conflicts == {KEY.id}
    docs = await store.read_totals([KEY.id, other.id])
    assert docs[KEY.id]["reports"] == 1 and docs[other.id]["reports"] == 4


async def test_watermarks_are_kept_per_partition_and_versions_count_every_write(store):
    (await store.write_totals([write(None, 5, {"reports": 1})]))
    assert (await store.write_totals([write(1, 2, {"reports": 1}, partition=1)])) == set()
    assert (await store.write_totals([write(2, 6, {"reports": -1})])) == set()
    doc = (await store.read_totals([KEY.id]))[KEY.id]
    assert doc["reports"] == 1 and doc["version"] == 3 and doc["wm"] == {"0": 6, "1": 2}


async def test_ledgers_only_move_forward(store):
    entry = LedgerEntry(2, "study_session", "study_session", "2020-12", {"members_attended": 3}, False, True)
    (await store.write_ledgers([LedgerWrite("14923", 0, 10, {"r1": entry})]))
    older = LedgerEntry(1, "study_session", "study_session", "2020-12", {"members_attended": 9}, False, True)
    (await store.write_ledgers([LedgerWrite("14923", 0, 4, {"r1": older})]))
    stored = await store.load_ledgers(["14923", "14926"], 0)
    assert stored["14923"].watermark == 10
    assert stored["14923"].ledger.entries["r1"] == entry
    assert stored["14926"].watermark is None and stored["14926"].ledger.entries == {}
