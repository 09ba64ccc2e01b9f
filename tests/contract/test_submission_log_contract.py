"""One contract, two adapters: ingest's submission log, in memory and in MongoDB (whose adapter
coalesces concurrent calls into shared round trips)."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from services.ingest.submissions import BadCursor, InMemorySubmissionLog, MongoSubmissionLog
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


class Ticks:
    """A clock that moves one second on each reading, so the order of records is their order."""

    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture(params=MEMORY_AND_MONGODB)
async def ticking_log(request):
    if request.param == "memory":
        yield InMemorySubmissionLog(clock=Ticks())
        return
    async with fresh_database(request) as (client, database):
        log = MongoSubmissionLog(client, database, clock=Ticks())
        await log.ensure_indexes()
        yield log


async def _all_pages(log, units, size):
    pages, after = [], None
    while True:
        page = await log.page(units, after, size)
        pages.append([(s.unit, s.report_id) for s in page.items])
        if page.next is None:
            return pages
        after = page.next


async def test_a_listing_pages_newest_first_and_each_report_once(ticking_log):
    for i in range(7):
        await ticking_log.record(f"r{i}", "14923", "study_session", 1, f"d{i}")
    await ticking_log.record("r2", "14923", "study_session", 2, "d2b")  # a revision makes it the newest
    pages = await _all_pages(ticking_log, {"unit": "14923"}, 3)
    assert pages == [
        [("14923", "r2"), ("14923", "r6"), ("14923", "r5")],
        [("14923", "r4"), ("14923", "r3"), ("14923", "r1")],
        [("14923", "r0")],
    ]
    first = (await ticking_log.page({"unit": {"$in": ["14923"]}}, None, 3)).items[0]
    assert first.revisions == {1: "d2", 2: "d2b"} and first.series == "study_session"


async def test_a_listing_holds_only_the_units_and_series_asked_for_or_every_report(ticking_log):
    await ticking_log.record("a", "14923", "study_session", 1, "x")
    await ticking_log.record("b", "14926", "study_session", 1, "x")
    await ticking_log.record("c", "14929", "reflection", 1, "x")
    await ticking_log.record("d", "14923", "reflection@2025", 1, "x")
    units = {"unit": {"$in": ["14923", "14929"]}}
    assert await _all_pages(ticking_log, units, 50) == [[("14923", "d"), ("14929", "c"), ("14923", "a")]]
    either = {
        "$or": [
            {"unit": {"$in": ["14923"]}, "series": {"$in": ["study_session"]}},
            {"unit": {"$in": ["14923", "14929"]}, "series": {"$in": ["reflection@2025"]}},
        ]
    }
    assert await _all_pages(ticking_log, either, 1) == [[("14923", "d")], [("14923", "a")]]
    everything = [[("14923", "d"), ("14929", "c")], [("14926", "b"), ("14923", "a")]]
    assert await _all_pages(ticking_log, None, 2) == await _all_pages(ticking_log, {}, 2) == everything
    assert await _all_pages(ticking_log, {"unit": {"$in": []}}, 50) == [[]]


async def test_a_page_of_exactly_the_rest_is_the_last_and_reports_recorded_at_once_are_ordered_by_key(request):
    log = InMemorySubmissionLog(clock=lambda: datetime(2026, 12, 1, tzinfo=UTC))
    for rid in ("b", "a", "c"):
        await log.record(rid, "14923", "study_session", 1, "x")
    assert await _all_pages(log, None, 3) == [[("14923", "c"), ("14923", "b"), ("14923", "a")]]
    assert await _all_pages(log, None, 2) == [[("14923", "c"), ("14923", "b")], [("14923", "a")]]


@pytest.mark.parametrize("cursor", ["", "not-a-cursor", "W10", "WyJ4IiwgMV0", "!!!"])
async def test_a_cursor_the_log_did_not_give_is_refused(log, cursor):
    with pytest.raises(BadCursor):
        await log.page(None, cursor, 10)
