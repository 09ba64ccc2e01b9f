"""One contract, two adapters: ingest's submission log, in memory and in MongoDB (whose adapter
coalesces concurrent calls into shared round trips)."""

import asyncio

import pytest

from services.ingest.submissions import InMemorySubmissionLog, MongoSubmissionLog
from tests.contract.conftest import MEMORY_AND_MONGODB, fresh_database


@pytest.fixture(params=MEMORY_AND_MONGODB)
async def log(request):
    if request.param == "memory":
        yield InMemorySubmissionLog()
        return
    async with fresh_database(request) as (client, database):
        yield MongoSubmissionLog(client, database)


async def test_an_unknown_report_is_none(log):
    assert await log.get("14923", "r-unknown") is None


async def test_revisions_accumulate_under_one_unit_and_series(log):
    await log.record("r1", "14923", "study_session", 1, "d1")
    await log.record("r1", "14923", "study_session", 2, "d2")
    got = await log.get("14923", "r1")
    assert (got.report_id, got.unit, got.series, got.revisions) == ("r1", "14923", "study_session", {1: "d1", 2: "d2"})


async def test_a_report_id_is_the_units_own_two_units_using_it_have_two_reports(log):
    await log.record("r1", "14923", "study_session", 1, "a")
    await log.record("r1", "14926", "reflection", 1, "b")
    await log.record("r1", "14926", "reflection", 2, "c")
    mine, theirs = await asyncio.gather(log.get("14923", "r1"), log.get("14926", "r1"))
    assert (mine.unit, mine.series, mine.revisions) == ("14923", "study_session", {1: "a"})
    assert (theirs.unit, theirs.series, theirs.revisions) == ("14926", "reflection", {1: "b", 2: "c"})
    assert await log.get("14929", "r1") is None


async def test_concurrent_calls_each_get_their_own_answer(log):
    ids = [f"c{i}" for i in range(300)]
    await asyncio.gather(*(log.record(r, f"{i:05d}", "study_session", 1, f"d{i}") for i, r in enumerate(ids)))
    units = [f"{i:05d}" for i in range(300)]
    got = await asyncio.gather(
        *(log.get(u, r) for u, r in [*zip(units, ids, strict=True), ("14923", "missing"), (units[7], ids[7])])
    )
    assert [g.unit for g in got[:300]] == [f"{i:05d}" for i in range(300)]
    assert got[300] is None and got[301].revisions == {1: "d7"}


async def test_the_same_report_looked_up_twice_at_once(log):
    await log.record("twice", "14923", "study_session", 1, "d")
    a, b = await asyncio.gather(log.get("14923", "twice"), log.get("14923", "twice"))
    assert a.revisions == b.revisions == {1: "d"}
