"""One contract, two adapters: the web's read side of the submission log (services/api/web/listing.py),
in memory and on the real server's copy of ingest's collection."""

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from services.api.web.listing import (
    EVERYTHING,
    NOTHING,
    InMemorySubmissionListing,
    MongoSubmissionListing,
    Reach,
    SubmissionListing,
    reach_of,
)
from services.ingest.submissions import MongoSubmissionLog
from shared.adapters.mongo import SUBMISSIONS
from shared.domain.auth import Scope, mint, verify
from shared.domain.hierarchy import load_vietnam
from shared.domain.paging import BadCursor
from tests.conftest import TEST_SECRET
from tests.contract.conftest import MEMORY_AND_MONGODB, fresh_database

# 14923 is Thị trấn Cành Nàng under district 386 in the old tree, Xã Bá Thước under province 38 in
# the 2025 tree: the same code, two units
CANH_NANG = ["legacy:14923", "legacy:386", "legacy:38"]
BA_THUOC = ["2025:14923", "2025:38"]
START = datetime(2026, 12, 1, tzinfo=UTC)

Add = Callable[..., Awaitable[None]]


@dataclass
class Log:
    listing: SubmissionListing
    add: Add  # (unit, report_id, series, revisions, updated, scope, key=None): a report as ingest records it


@pytest.fixture(params=MEMORY_AND_MONGODB)
async def log(request: pytest.FixtureRequest) -> AsyncIterator[Log]:
    if request.param == "memory":
        fake = InMemorySubmissionListing()

        async def add_to_fake(*args: object, **kwargs: object) -> None:
            fake.add(*args, **kwargs)  # type: ignore[arg-type]

        yield Log(fake, add_to_fake)
        return
    async with fresh_database(request) as (client, database):
        col = client[database][SUBMISSIONS]

        async def insert(
            unit: str,
            report_id: str,
            series: str,
            revisions: Sequence[int],
            updated: datetime,
            scope: Sequence[str],
            key: str | None = None,
        ) -> None:
            doc = {
                "_id": key or f"{unit}/{report_id}",
                "report_id": report_id,
                "series": series,
                "revisions": {str(r): f"digest-{r}" for r in revisions},
                "updated": updated,
                "scope": list(scope),
            }
            await col.insert_one(doc | ({"unit": unit} if unit else {}))

        yield Log(MongoSubmissionListing(client, database), insert)


async def all_pages(listing: SubmissionListing, reach: Reach, size: int) -> list[list[tuple[str, str]]]:
    pages, after = [], None
    while True:
        page = await listing.page(reach, after, size)
        pages.append([(r.unit, r.report_id) for r in page.items])
        if page.next is None:
            return pages
        after = page.next


async def test_pages_come_newest_first_each_report_once_ties_by_key_in_reverse(log: Log) -> None:
    for i in range(5):
        await log.add("14923", f"r{i}", "study_session", [1], START + timedelta(seconds=i), CANH_NANG)
    for rid in ("b", "a", "c"):  # recorded at the same moment as r0: ordered by key, "14926/c" first
        await log.add("14926", rid, "study_session", [1], START, ["legacy:14926", "legacy:386", "legacy:38"])
    assert await all_pages(log.listing, EVERYTHING, 3) == [
        [("14923", "r4"), ("14923", "r3"), ("14923", "r2")],
        [("14923", "r1"), ("14926", "c"), ("14926", "b")],
        [("14926", "a"), ("14923", "r0")],
    ]
    assert await all_pages(log.listing, EVERYTHING, 4) == [  # a page of exactly the rest is the last
        [("14923", "r4"), ("14923", "r3"), ("14923", "r2"), ("14923", "r1")],
        [("14926", "c"), ("14926", "b"), ("14926", "a"), ("14923", "r0")],
    ]


async def test_a_report_is_listed_with_its_series_and_its_revisions_in_order(log: Log) -> None:
    await log.add("14923", "r", "indicator.hospital_beds@2025", [3, 1, 2], START, BA_THUOC)
    [listed] = (await log.listing.page(EVERYTHING)).items
    assert (listed.report_id, listed.unit, listed.series, listed.revisions) == (
        "r",
        "14923",
        "indicator.hospital_beds@2025",
        (1, 2, 3),
    )


async def _both_14923s(log: Log) -> None:
    """Reports of the two units that share code 14923, and of a sibling in each tree."""
    await log.add("14923", "old-1", "study_session", [1], START + timedelta(seconds=1), CANH_NANG)
    await log.add("14923", "new-1", "study_session@2025", [1], START + timedelta(seconds=2), BA_THUOC)
    await log.add(
        "14926",
        "old-2",
        "study_session",
        [1],
        START + timedelta(seconds=3),
        ["legacy:14926", "legacy:386", "legacy:38"],
    )
    await log.add("14758", "new-2", "study_session@2025", [1], START + timedelta(seconds=4), ["2025:14758", "2025:38"])


async def test_a_reach_lists_the_reports_whose_scope_holds_one_of_its_codes(log: Log) -> None:
    await _both_14923s(log)
    district = Reach(("legacy:386",))
    assert await all_pages(log.listing, district, 1) == [[("14926", "old-2")], [("14923", "old-1")]]
    province = Reach(("legacy:38", "2025:38"))
    assert await all_pages(log.listing, province, 50) == [
        [("14758", "new-2"), ("14926", "old-2"), ("14923", "new-1"), ("14923", "old-1")]
    ]


async def test_a_code_reused_across_trees_lists_only_its_own_trees_reports(log: Log) -> None:
    await _both_14923s(log)
    assert await all_pages(log.listing, Reach(("legacy:14923",)), 50) == [[("14923", "old-1")]]
    assert await all_pages(log.listing, Reach(("2025:14923",)), 50) == [[("14923", "new-1")]]
    assert await all_pages(log.listing, Reach(("2025:386",)), 50) == [[]]  # no such unit: no leak


async def test_nothing_lists_nothing_and_everything_every_report(log: Log) -> None:
    await _both_14923s(log)
    await log.add("", "g", "study_session", [1], START, [], key="g")  # recorded before units were kept
    assert await all_pages(log.listing, NOTHING, 50) == [[]]
    assert await all_pages(log.listing, EVERYTHING, 2) == [
        [("14758", "new-2"), ("14926", "old-2")],
        [("14923", "new-1"), ("14923", "old-1")],
        [("", "g")],
    ]


async def test_the_reach_of_a_token_is_its_unit_in_every_tree_that_holds_it(log: Log) -> None:
    await _both_14923s(log)
    tree = load_vietnam(["38"])

    def reach(unit: str) -> Reach:
        return reach_of(tree, verify(TEST_SECRET, mint(TEST_SECRET, unit, [Scope.READ], 60)))

    assert await all_pages(log.listing, reach("386"), 50) == [[("14926", "old-2"), ("14923", "old-1")]]
    assert await all_pages(log.listing, reach("14923"), 50) == [[("14923", "new-1"), ("14923", "old-1")]]
    assert await all_pages(log.listing, reach("99999"), 50) == [[]]


@pytest.mark.parametrize("cursor", ["", "not-a-cursor", "W10", "WyJ4IiwgMV0", "!!!"])
async def test_a_cursor_the_listing_did_not_give_is_refused(log: Log, cursor: str) -> None:
    with pytest.raises(BadCursor):
        await log.listing.page(EVERYTHING, cursor, 10)


@pytest.mark.integration
async def test_the_mongodb_listing_reads_what_ingests_log_writes(request: pytest.FixtureRequest) -> None:
    async with fresh_database(request) as (client, database):
        moments = iter([START + timedelta(seconds=i) for i in range(10)])
        written = MongoSubmissionLog(client, database, clock=lambda: next(moments))
        await written.record("r1", "14923", "study_session", 1, "d1", CANH_NANG)
        await written.record("r2", "14923", "study_session@2025", 1, "d2", BA_THUOC)
        await written.record("r1", "14923", "study_session", 2, "d1b", CANH_NANG)  # r1 is the newest again
        listing = MongoSubmissionListing(client, database)
        page = await listing.page(Reach(("legacy:38", "2025:38")), None, 1)
        assert [(r.unit, r.report_id, r.series, r.revisions) for r in page.items] == [
            ("14923", "r1", "study_session", (1, 2))
        ]
        assert page.next is not None
        rest = await listing.page(Reach(("legacy:38", "2025:38")), page.next, 1)
        assert [(r.report_id, r.series) for r in rest.items] == [("r2", "study_session@2025")] and rest.next is None


async def test_one_report_is_read_with_its_bodies() -> None:
    fake = InMemorySubmissionListing()
    fake.add("14923", "r1", "study_session", [1, 2], START, CANH_NANG, bodies={1: {"n": 1}, 2: {"n": 2}})
    got = await fake.report("14923", "r1")
    assert got is not None and got.bodies == {1: {"n": 1}, 2: {"n": 2}} and got.revisions == (1, 2)
    assert got.within(Reach(("legacy:386",))) and not got.within(Reach(("2025:38",)))
    assert await fake.report("14926", "r1") is None


@pytest.mark.integration
async def test_the_mongodb_listing_reads_the_bodies_ingest_keeps(request: pytest.FixtureRequest) -> None:
    async with fresh_database(request) as (client, database):
        written = MongoSubmissionLog(client, database)
        await written.record("r1", "14923", "study_session@2025", 1, "d1", BA_THUOC, body={"body": {"n": 1}})
        await written.record("r1", "14923", "study_session@2025", 2, "d2", BA_THUOC, body={"body": {"n": 2}})
        # a document written before ingest kept bodies
        await client[database][SUBMISSIONS].insert_one(
            {"_id": "14926/old", "unit": "14926", "report_id": "old", "series": "s", "revisions": {"1": "x"}}
        )
        listing = MongoSubmissionListing(client, database)
        got = await listing.report("14923", "r1")
        assert got is not None and got.bodies == {1: {"body": {"n": 1}}, 2: {"body": {"n": 2}}}
        assert got.scope == tuple(BA_THUOC) and got.series == "study_session@2025"
        old = await listing.report("14926", "old")
        assert old is not None and old.bodies == {} and old.revisions == (1,)
        assert await listing.report("14923", "missing") is None
