"""The aggregator's reads of the revoked token ids go to MongoDB each time (services/aggregate/app.py
_follow_revocations), not through the list's cache, whose age limit would let a read be skipped."""

from __future__ import annotations

import asyncio

from services.aggregate.app import _follow_revocations
from services.aggregate.decode import Trust
from shared.adapters.revocations import MongoRevocations
from tests.conftest import TEST_SECRET


class FakeRevoked:
    def __init__(self) -> None:
        self.ids: set[str] = set()
        self.reads = 0

    def find(self, *args, **kwargs):
        self.reads += 1
        ids = list(self.ids)

        async def docs():
            for i in ids:
                yield {"_id": i}

        return docs()


class FakeClient:
    def __init__(self, col: FakeRevoked) -> None:
        self.col = col

    def __getitem__(self, name):
        return FakeDatabase({"revoked_tokens": self.col})


class FakeDatabase(dict):
    def get_collection(self, name, **options):  # the access collections' concerns: not faked
        return self[name]


async def test_a_fresh_snapshot_reads_the_database_even_within_the_caches_age_limit():
    col = FakeRevoked()
    revocations = MongoRevocations(FakeClient(col), "db", ttl_s=3600)
    assert await revocations.snapshot() == frozenset()
    col.ids.add("t1")
    assert await revocations.snapshot() == frozenset()  # the cached list, younger than ttl_s
    assert await revocations.snapshot(fresh=True) == {"t1"}
    assert col.reads == 2


async def test_the_aggregator_follows_revocations_with_a_read_every_interval():
    col = FakeRevoked()
    revocations = MongoRevocations(FakeClient(col), "db", ttl_s=3600)
    trust = Trust.from_secret(TEST_SECRET)
    trust.revoked = await revocations.snapshot()
    col.ids.add("t1")
    follower = asyncio.create_task(_follow_revocations(revocations, trust, 0.001))
    try:
        for _ in range(5000):  # reads at the interval; the cache's age limit (an hour) would hold t1 back
            if "t1" in trust.revoked:
                break
            await asyncio.sleep(0.001)
    finally:
        follower.cancel()
    assert "t1" in trust.revoked and col.reads >= 2
