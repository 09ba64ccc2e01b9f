"""One contract, two adapters: the in-memory fake must behave like the MongoDB store."""

import uuid

import pytest

from services.aggregate.store import InMemoryTotalsStore, LedgerWrite, MongoTotalsStore, TotalWrite
from shared.mongo import make_client
from shared.rollup import LedgerEntry, TotalKey

KEY = TotalKey("38", "study_session", "2020-12")


@pytest.fixture(params=["memory", pytest.param("mongodb", marks=pytest.mark.integration)])
async def store(request):
    if request.param == "memory":
        yield InMemoryTotalsStore()
        return
    infra = request.getfixturevalue("infra")
    client = make_client(infra["MONGODB_URI"], "contract-test")
    yield MongoTotalsStore(client, f"contract_{uuid.uuid4().hex[:8]}")
    await client.close()


def write(expected, new, inc):
    return TotalWrite(KEY, ("38",), expected, new, inc)


async def test_a_first_write_creates_the_document_with_its_watermark(store):
    assert (await store.write_totals(0, [write(None, 5, {"sums.members_attended": 7, "reports": 1})])) == 0
    doc = (await store.read_totals([KEY.id]))[KEY.id]
    assert doc["sums"]["members_attended"] == 7 and doc["reports"] == 1
    assert doc["unit"] == "38" and doc["series"] == "study_session" and doc["period"] == "2020-12"
    assert (await store.load_watermarks([KEY.id], 0)) == {KEY.id: 5}


async def test_a_write_expecting_a_stale_watermark_is_a_conflict_and_changes_nothing(store):
    (await store.write_totals(0, [write(None, 5, {"reports": 1})]))
    assert (await store.write_totals(0, [write(None, 9, {"reports": 1})])) == 1
    assert (await store.write_totals(0, [write(3, 9, {"reports": 1})])) == 1
    assert (await store.read_totals([KEY.id]))[KEY.id]["reports"] == 1


async def test_watermarks_are_kept_per_partition(store):
    (await store.write_totals(0, [write(None, 5, {"reports": 1})]))
    assert (await store.write_totals(1, [write(None, 2, {"reports": 1})])) == 0
    assert (await store.write_totals(0, [write(5, 6, {"reports": -1})])) == 0
    assert (await store.read_totals([KEY.id]))[KEY.id]["reports"] == 1
    assert (await store.load_watermarks([KEY.id], 1)) == {KEY.id: 2}
    assert (await store.load_watermarks([KEY.id, "nope"], 3)) == {KEY.id: None}


async def test_ledgers_only_move_forward(store):
    entry = LedgerEntry(2, "study_session", "study_session", "2020-12", {"members_attended": 3}, False, True)
    (await store.write_ledgers(0, [LedgerWrite("14923", 10, {"r1": entry})]))
    older = LedgerEntry(1, "study_session", "study_session", "2020-12", {"members_attended": 9}, False, True)
    (await store.write_ledgers(0, [LedgerWrite("14923", 4, {"r1": older})]))
    stored = await store.load_ledgers(["14923", "14926"], 0)
    assert stored["14923"].watermark == 10
    assert stored["14923"].ledger.entries["r1"] == entry
    assert stored["14926"].watermark is None and stored["14926"].ledger.entries == {}
