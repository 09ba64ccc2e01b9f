"""One contract, two adapters: where the aggregator keeps its snapshots, in memory and in MongoDB."""

from dataclasses import replace

import pytest

from services.aggregate import snapshots as snapshots_module
from services.aggregate.snapshots import CHUNKS, InMemorySnapshotStore, MongoSnapshotStore, Snapshot
from tests.contract.conftest import MEMORY_AND_MONGODB, fresh_database

SNAP = Snapshot("reports.state", 3, 8, "f1", 120, bytes(range(256)) * 40)  # 10,240 bytes


@pytest.fixture(params=MEMORY_AND_MONGODB)
async def store(request, monkeypatch):
    monkeypatch.setattr(snapshots_module, "CHUNK_BYTES", 4096)  # so a snapshot spans several chunks
    if request.param == "memory":
        yield InMemorySnapshotStore()
        return
    async with fresh_database(request) as (client, database):
        s = MongoSnapshotStore(client, database)
        s.raw = client[database]  # for the test that damages a snapshot
        yield s


async def test_a_saved_snapshot_loads_back_whole(store):
    assert await store.load("reports.state", 3) is None
    assert await store.save(SNAP)
    assert await store.load("reports.state", 3) == SNAP
    assert await store.load("reports.state", 4) is None
    assert await store.load("other.state", 3) is None


async def test_only_a_snapshot_at_a_higher_offset_replaces_the_stored_one(store):
    assert await store.save(SNAP)
    assert not await store.save(replace(SNAP, payload=b"same offset"))
    assert not await store.save(replace(SNAP, offset=100, payload=b"older"))
    assert await store.load("reports.state", 3) == SNAP
    newer = replace(SNAP, offset=121, payload=b"newer" * 2000)
    assert await store.save(newer)
    assert await store.load("reports.state", 3) == newer


async def test_a_snapshot_with_a_chunk_missing_loads_as_none(store):
    assert await store.save(SNAP)
    if isinstance(store, InMemorySnapshotStore):
        store.damaged.add(("reports.state", 3))
    else:
        await store.raw[CHUNKS].delete_one({"n": 1})
    assert await store.load("reports.state", 3) is None


async def test_replaced_snapshots_leave_no_chunks_behind(store):
    if isinstance(store, InMemorySnapshotStore):
        pytest.skip("the fake keeps no chunks")
    for offset in (10, 20, 30):
        assert await store.save(replace(SNAP, offset=offset))
    assert await store.raw[CHUNKS].count_documents({}) == 3  # 10,240 bytes in chunks of 4,096
