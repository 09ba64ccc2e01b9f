"""One contract, two adapters: the audit log, in memory and in MongoDB."""

import pytest

from shared.adapters.audit import InMemoryAuditLog, MongoAuditLog
from shared.adapters.mongo import AUDIT_LOG
from shared.domain.audit import Action, AuditEntry, AuditQuery
from tests.contract.conftest import MEMORY_AND_MONGODB, fresh_database

BA_THUOC = ("2025:14923", "2025:38", "VN")  # a 2025 commune of province 38
CANH_NANG = ("legacy:14923", "legacy:386", "legacy:38", "VN")  # the same code, in the old tree


def entry(at: float, scope=BA_THUOC, action=Action.SUBMIT, period="2025-09", **more) -> AuditEntry:
    return AuditEntry(
        at=at, actor="clerk1", action=action, unit=scope[0].split(":")[-1], scope=scope, period=period, **more
    )


@pytest.fixture(params=MEMORY_AND_MONGODB)
async def log(request):
    if request.param == "memory":
        yield InMemoryAuditLog()
        return
    async with fresh_database(request) as (client, database):
        audit = MongoAuditLog(client, database)
        await audit.ensure_indexes()
        yield audit


async def test_an_entry_reads_back_whole(log):
    written = entry(
        1_790_000_000.25,
        origin="10.0.0.7",
        subject="14923/r1",
        before={"figures": {"sessions": 3}},
        after={"figures": {"sessions": 4}},
        detail="revision 2",
        action=Action.REVISE,
    )
    entry_id = await log.append(written)
    page = await log.page(AuditQuery("2025:38"))
    assert page.items == [written] and page.next is None
    assert page.items[0].entry_id == entry_id


async def test_newest_first_paged_with_the_cursor(log):
    for i in range(7):
        await log.append(entry(1_790_000_000 + i, detail=f"n{i}"))
    seen, after = [], None
    while True:
        page = await log.page(AuditQuery("2025:14923"), after, size=3)
        seen += [e.detail for e in page.items]
        if page.next is None:
            break
        after = page.next
    assert seen == [f"n{i}" for i in reversed(range(7))]


async def test_a_batch_is_appended_in_one_call_in_order(log):
    ids = await log.append_many([entry(1_790_000_000 + i, detail=f"b{i}") for i in range(5)])
    assert len(set(ids)) == 5 and ids == sorted(ids)
    assert [e.detail for e in (await log.page(AuditQuery("VN"))).items] == [f"b{i}" for i in reversed(range(5))]
    assert await log.append_many([]) == []


async def test_scope_is_per_tree_a_code_reused_across_trees_is_two_units(log):
    await log.append(entry(1.0, BA_THUOC, detail="new"))
    await log.append(entry(2.0, CANH_NANG, detail="old"))
    assert [e.detail for e in (await log.page(AuditQuery("2025:14923"))).items] == ["new"]
    assert [e.detail for e in (await log.page(AuditQuery("legacy:386"))).items] == ["old"]
    both = AuditQuery("2025:38", also=("legacy:38",))
    assert [e.detail for e in (await log.page(both)).items] == ["old", "new"]
    assert (await log.page(AuditQuery("2025:39"))).items == []


async def test_filters_on_period_and_actions(log):
    await log.append(entry(1.0, period="2025-09", detail="sep"))
    await log.append(entry(2.0, period="2025-10", detail="oct"))
    await log.append(entry(3.0, action=Action.LOGIN, period=None, detail="login"))
    by_period = await log.page(AuditQuery("2025:38", period="2025-09"))
    assert [e.detail for e in by_period.items] == ["sep"]
    reports = await log.page(AuditQuery("2025:38", actions=frozenset({Action.SUBMIT})))
    assert [e.detail for e in reports.items] == ["oct", "sep"]


async def test_entries_in_the_same_microsecond_are_all_kept(log):
    await log.append_many([entry(5.0, detail=f"s{i}") for i in range(20)])
    assert len((await log.page(AuditQuery("VN"), size=50)).items) == 20


@pytest.mark.integration
async def test_the_mongodb_documents_carry_the_indexed_fields(request):
    async with fresh_database(request) as (client, database):
        log = MongoAuditLog(client, database)
        await log.ensure_indexes()
        await log.append(entry(1.0))
        doc = await client[database][AUDIT_LOG].find_one({})
        assert doc["scope"] == list(BA_THUOC) and doc["action"] == "report.submit" and doc["period"] == "2025-09"
        indexes = await client[database][AUDIT_LOG].index_information()
        keys = {tuple(k for k, _ in spec["key"]) for spec in indexes.values()}
        assert keys >= {("scope", "_id"), ("scope", "period", "_id")}
