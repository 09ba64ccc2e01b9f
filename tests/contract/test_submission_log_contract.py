"""One contract, two adapters: ingest's submission log, in memory and in MongoDB (whose adapter
coalesces concurrent calls into shared round trips)."""

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import pytest

from services.ingest.submissions import InMemorySubmissionLog, MongoSubmissionLog, scope_of
from shared.adapters.mongo import SUBMISSIONS
from shared.domain.hierarchy import LEGACY, TREE_2025, load_vietnam
from shared.domain.paging import BadCursor
from tests.contract.conftest import MEMORY_AND_MONGODB, fresh_database

TREE = load_vietnam(["38"])
OLD, NEW = TREE.version_named(LEGACY), TREE.version_named(TREE_2025)
# 14923 is Thị trấn Cành Nàng under district 386 in the old tree, Xã Bá Thước under province 38 in
# the 2025 tree: the same code, two units
CANH_NANG = ["legacy:14923", "legacy:386", "legacy:38"]
BA_THUOC = ["2025:14923", "2025:38"]


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
    await log.record("r1", "14923", "study_session", 1, "d1", CANH_NANG)
    await log.record("r1", "14923", "study_session", 2, "d2", CANH_NANG)
    got = await log.get("14923", "r1")
    assert (got.report_id, got.unit, got.series, got.revisions) == ("r1", "14923", "study_session", {1: "d1", 2: "d2"})
    assert got.scope == tuple(CANH_NANG)


async def test_a_report_id_is_the_units_own_two_units_using_it_have_two_reports(log):
    await log.record("r1", "14923", "study_session", 1, "a", CANH_NANG)
    await log.record("r1", "14926", "reflection", 1, "b", ["legacy:14926", "legacy:386", "legacy:38"])
    await log.record("r1", "14926", "reflection", 2, "c", ["legacy:14926", "legacy:386", "legacy:38"])
    mine, theirs = await asyncio.gather(log.get("14923", "r1"), log.get("14926", "r1"))
    assert (mine.unit, mine.series, mine.revisions) == ("14923", "study_session", {1: "a"})
    assert (theirs.unit, theirs.series, theirs.revisions) == ("14926", "reflection", {1: "b", 2: "c"})
    assert await log.get("14929", "r1") is None


async def test_concurrent_calls_each_get_their_own_answer(log):
    ids = [f"c{i}" for i in range(300)]
    await asyncio.gather(
        *(log.record(r, f"{i:05d}", "study_session", 1, f"d{i}", [f"legacy:{i:05d}"]) for i, r in enumerate(ids))
    )
    units = [f"{i:05d}" for i in range(300)]
    got = await asyncio.gather(
        *(log.get(u, r) for u, r in [*zip(units, ids, strict=True), ("14923", "missing"), (units[7], ids[7])])
    )
    assert [g.unit for g in got[:300]] == [f"{i:05d}" for i in range(300)]
    assert got[300] is None and got[301].revisions == {1: "d7"} and got[301].scope == ("legacy:00007",)


async def test_the_same_report_looked_up_twice_at_once(log):
    await log.record("twice", "14923", "study_session", 1, "d", CANH_NANG)
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
        await ticking_log.record(f"r{i}", "14923", "study_session", 1, f"d{i}", CANH_NANG)
    await ticking_log.record("r2", "14923", "study_session", 2, "d2b", CANH_NANG)  # a revision makes it the newest
    pages = await _all_pages(ticking_log, {"unit": "14923"}, 3)
    assert pages == [
        [("14923", "r2"), ("14923", "r6"), ("14923", "r5")],
        [("14923", "r4"), ("14923", "r3"), ("14923", "r1")],
        [("14923", "r0")],
    ]
    first = (await ticking_log.page({"unit": {"$in": ["14923"]}}, None, 3)).items[0]
    assert first.revisions == {1: "d2", 2: "d2b"} and first.series == "study_session"


async def test_a_listing_holds_only_the_units_and_series_asked_for_or_every_report(ticking_log):
    await ticking_log.record("a", "14923", "study_session", 1, "x", CANH_NANG)
    await ticking_log.record("b", "14926", "study_session", 1, "x", ["legacy:14926", "legacy:386", "legacy:38"])
    await ticking_log.record("c", "14929", "reflection", 1, "x", ["legacy:14929", "legacy:386", "legacy:38"])
    await ticking_log.record("d", "14923", "reflection@2025", 1, "x", BA_THUOC)
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
        await log.record(rid, "14923", "study_session", 1, "x", CANH_NANG)
    assert await _all_pages(log, None, 3) == [[("14923", "c"), ("14923", "b"), ("14923", "a")]]
    assert await _all_pages(log, None, 2) == [[("14923", "c"), ("14923", "b")], [("14923", "a")]]


@pytest.mark.parametrize("cursor", ["", "not-a-cursor", "W10", "WyJ4IiwgMV0", "!!!"])
async def test_a_cursor_the_log_did_not_give_is_refused(log, cursor):
    with pytest.raises(BadCursor):
        await log.page(None, cursor, 10)


async def test_a_report_keeps_the_scope_of_its_first_record(ticking_log):
    await ticking_log.record("r", "14923", "study_session", 1, "x", CANH_NANG)
    await ticking_log.record("r", "14923", "study_session", 2, "y", ["legacy:elsewhere"])
    [listed] = (await ticking_log.page({"scope": "legacy:386"}, None, 50)).items
    assert listed.scope == tuple(CANH_NANG) and listed.revisions == {1: "x", 2: "y"}
    assert (await ticking_log.get("14923", "r")).scope == tuple(CANH_NANG)
    assert (await ticking_log.page({"scope": "legacy:elsewhere"}, None, 50)).items == []


async def _canh_nang_and_ba_thuoc(log):
    """Reports of the two units that share code 14923, and of a sibling in each tree."""
    await log.record("old-1", "14923", "study_session", 1, "x", CANH_NANG)
    await log.record("new-1", "14923", "study_session@2025", 1, "x", BA_THUOC)
    await log.record("old-2", "14926", "study_session", 1, "x", scope_of(OLD, "14926"))
    await log.record("new-2", "14758", "study_session@2025", 1, "x", scope_of(NEW, "14758"))  # Phường Hàm Rồng
    await log.record("old-3", "14923", "reflection", 1, "x", CANH_NANG)


async def test_a_listing_by_scope_holds_the_subtrees_reports_newest_first_a_page_at_a_time(ticking_log):
    await _canh_nang_and_ba_thuoc(ticking_log)
    district = {"$or": [{"scope": "legacy:386"}]}
    assert await _all_pages(ticking_log, district, 2) == [
        [("14923", "old-3"), ("14926", "old-2")],
        [("14923", "old-1")],
    ]
    province = {"$or": [{"scope": "legacy:38"}, {"scope": "2025:38"}]}
    assert await _all_pages(ticking_log, province, 50) == [
        [("14923", "old-3"), ("14758", "new-2"), ("14926", "old-2"), ("14923", "new-1"), ("14923", "old-1")]
    ]
    assert await _all_pages(ticking_log, {"scope": {"$in": ["2025:14758", "legacy:14926"]}}, 50) == [
        [("14758", "new-2"), ("14926", "old-2")]
    ]
    assert await _all_pages(ticking_log, {"scope": "legacy:14758"}, 50) == [[]]


async def test_a_code_reused_across_trees_lists_only_its_own_trees_reports(ticking_log):
    await _canh_nang_and_ba_thuoc(ticking_log)
    # the old district 386's token: Cành Nàng's reports, never Bá Thước's (code 14923 too)
    assert await _all_pages(ticking_log, {"$or": [{"scope": "legacy:386"}]}, 50) == [
        [("14923", "old-3"), ("14926", "old-2"), ("14923", "old-1")]
    ]
    assert await _all_pages(ticking_log, {"$or": [{"scope": "legacy:14923"}]}, 50) == [
        [("14923", "old-3"), ("14923", "old-1")]
    ]
    assert await _all_pages(ticking_log, {"$or": [{"scope": "2025:14923"}]}, 50) == [[("14923", "new-1")]]
    assert await _all_pages(ticking_log, {"scope": "2025:386"}, 50) == [[]]  # no such unit: no leak


async def test_a_filter_on_another_field_is_refused_in_memory_as_a_mistake():
    log = InMemorySubmissionLog()
    await log.record("r", "14923", "study_session", 1, "x", CANH_NANG)
    with pytest.raises(ValueError, match="unit, series and scope"):
        await log.page({"report_id": "r"})


@pytest.mark.integration
async def test_reports_recorded_without_a_scope_get_one_at_start_up_in_the_tree_their_series_names(request, caplog):
    async with fresh_database(request) as (client, database):
        col = client[database][SUBMISSIONS]
        tree = load_vietnam(["38"])
        tree.add_agency("386-hospital", "Bệnh viện Bá Thước", "386", [LEGACY])  # under the old district
        old = {"revisions": {"1": "x"}, "updated": datetime(2026, 11, 1, tzinfo=UTC)}
        await col.insert_many(
            [
                {"_id": "14923/a", "unit": "14923", "report_id": "a", "series": "study_session", **old},
                {"_id": "14923/b", "unit": "14923", "report_id": "b", "series": "study_session@2025", **old},
                {"_id": "386-hospital/c", "unit": "386-hospital", "report_id": "c", "series": "reflection", **old},
                {"_id": "386/d", "unit": "386", "report_id": "d", "series": "study_session@2025", **old},
                {"_id": "99999/e", "unit": "99999", "report_id": "e", "series": "study_session", **old},
                {"_id": "14923/f", "unit": "14923", "report_id": "f", "series": "study_session@2099", **old},
                {"_id": "g", "report_id": "g", "series": "study_session", **old},  # before units were kept
                {"_id": "14926/h", "unit": "14926", "report_id": "h", "series": "reflection", "scope": ["kept"], **old},
            ]
        )
        log = MongoSubmissionLog(client, database)
        await log.ensure_indexes()
        with caplog.at_level(logging.WARNING, logger="services.ingest.submissions"):
            assert await log.backfill_scope(tree, chunk=2) == 3
        scopes = {d["_id"]: d.get("scope") async for d in col.find({})}
        assert scopes == {
            "14923/a": CANH_NANG,
            "14923/b": BA_THUOC,
            "386-hospital/c": ["legacy:386-hospital", "legacy:386", "legacy:38"],
            "386/d": None,  # district 386 is not a unit of the 2025 tree
            "99999/e": None,
            "14923/f": None,  # a tree this ingest does not know
            "g": None,
            "14926/h": ["kept"],  # a scope already given is never rewritten
        }
        [warning] = [r for r in caplog.records if "without a scope" in r.getMessage()]
        assert warning.reports == 4 and "2025:386" in warning.units and "legacy:99999" in warning.units
        assert await log.backfill_scope(tree, chunk=2) == 0  # again: nothing left to give
        assert [(s.unit, s.report_id) for s in (await log.page({"scope": "legacy:386"})).items] == [
            ("386-hospital", "c"),
            ("14923", "a"),
        ]


async def test_each_revisions_body_is_kept_and_read_back(log):
    first, second = {"report_id": "r1", "revision": 1, "body": {"sessions": 3}}, {"revision": 2, "body": {"x": "ạ"}}
    await log.record("r1", "14923", "study_session", 1, "d1", CANH_NANG, body=first)
    await log.record("r1", "14923", "study_session", 2, "d2", CANH_NANG, body=second)
    got = await log.get("14923", "r1")
    assert got.bodies == {1: first, 2: second}
    assert got.latest_body() == (2, second) and got.latest_body(before=2) == (1, first)
    assert got.latest_body(before=1) is None


async def test_a_revision_recorded_without_a_body_keeps_the_others(log):
    await log.record("r1", "14923", "study_session", 1, "d1", CANH_NANG, body={"n": 1})
    await log.record("r1", "14923", "study_session", 2, "d2", CANH_NANG)
    got = await log.get("14923", "r1")
    assert got.revisions == {1: "d1", 2: "d2"} and got.bodies == {1: {"n": 1}}
    assert got.latest_body() == (1, {"n": 1})
