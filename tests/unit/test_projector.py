"""Exactly once in effect: redelivery, crashes between writes, and two workers on one partition."""

import asyncio
from datetime import UTC, datetime

import pytest

from services.aggregate.projector import Lru, Positioned, Projector
from services.aggregate.store import InMemoryTotalsStore
from shared.catalog import load_catalog
from shared.hierarchy import load_vietnam
from shared.rollup import Report

CATALOG = load_catalog()
TREE = load_vietnam(["38"])
AT = datetime(2020, 12, 26, tzinfo=UTC)


def msg(offset, rid, attended, rev=1, unit="14923", withdrawn=False, partition=0):
    values = (
        {}
        if withdrawn
        else {"bridge_points": 0, "delegates": 0, "members_attended": attended, "members_total": attended}
    )
    return Positioned(
        partition, offset, Report(rid, rev, unit, "study_session", "study_session", "2020-12", values, withdrawn, AT)
    )


STREAM = [
    msg(0, "a", 10),
    msg(1, "b", 20, unit="14926"),
    msg(2, "a", 15, rev=2),
    msg(3, "c", 5, unit="14929"),
    msg(4, "b", 20, unit="14926"),  # duplicate
    msg(5, "c", 0, rev=2, unit="14929", withdrawn=True),
    msg(6, "d", 7),
]
EXPECTED_PROVINCE = 15 + 20 + 7


def province(store):
    return store.totals["38|study_session|2020-12"]["sums"]["members_attended"]


def run(coro):
    return asyncio.run(coro)


def test_applying_a_stream_gives_the_hand_computed_total():
    store = InMemoryTotalsStore()
    run(Projector(store, TREE, CATALOG).apply(STREAM))
    assert province(store) == EXPECTED_PROVINCE
    assert store.totals["38|study_session|2020-12"]["units_reported"] == 2


def test_redelivering_everything_in_other_batch_sizes_changes_nothing():
    store = InMemoryTotalsStore()
    projector = Projector(store, TREE, CATALOG)
    run(projector.apply(STREAM))
    for size in (1, 2, 3):
        for i in range(0, len(STREAM), size):
            run(projector.apply(STREAM[i : i + size]))
    assert province(store) == EXPECTED_PROVINCE


class CrashAfterTotals(InMemoryTotalsStore):
    """Dies after the totals are written and before the ledgers are (the worst moment)."""

    crash = True

    async def write_ledgers(self, writes):
        if self.crash:
            raise RuntimeError("killed")
        await super().write_ledgers(writes)


def test_a_crash_between_totals_and_ledgers_is_repaired_by_replay():
    store = CrashAfterTotals()
    projector = Projector(store, TREE, CATALOG)
    with pytest.raises(RuntimeError, match="killed"):
        run(projector.apply(STREAM[:4]))
    store.crash = False
    # Kafka redelivers from the last committed offset, possibly in different batches.
    run(projector.apply(STREAM[:2]))
    run(projector.apply(STREAM[2:]))
    assert province(store) == EXPECTED_PROVINCE


def test_two_workers_racing_on_one_partition_do_not_count_twice():
    store = InMemoryTotalsStore()
    first, second = Projector(store, TREE, CATALOG), Projector(store, TREE, CATALOG)

    async def in_batches(projector, size):
        for i in range(0, len(STREAM), size):
            await projector.apply(STREAM[i : i + size])

    async def race():
        await asyncio.gather(in_batches(first, 7), in_batches(second, 3))

    run(race())
    assert province(store) == EXPECTED_PROVINCE


def test_partitions_write_the_same_province_document_independently():
    store = InMemoryTotalsStore()
    projector = Projector(store, TREE, CATALOG)
    run(projector.apply([msg(0, "a", 10)]))
    run(projector.apply([msg(0, "b", 20, unit="14926", partition=1)]))
    run(projector.apply([msg(0, "b", 20, unit="14926", partition=1)]))  # redelivered on partition 1
    assert province(store) == 30


def test_a_steady_stream_reads_each_document_once():
    store = InMemoryTotalsStore()
    projector = Projector(store, TREE, CATALOG)
    first = run(projector.apply(STREAM[:3]))
    assert first.reads > 0
    again = run(projector.apply([msg(7, "e", 3), msg(8, "a", 16, rev=3)]))
    assert again.reads == 0  # the unit's ledger and its documents were cached by the first batch
    assert province(store) == 20 + 16 + 3  # b, then a corrected to 16, and e


def test_a_document_changed_behind_the_cache_is_a_conflict_then_a_reread_not_a_wrong_sum():
    store = InMemoryTotalsStore()
    mine, other = Projector(store, TREE, CATALOG), Projector(store, TREE, CATALOG)
    run(mine.apply([msg(0, "a", 10)]))
    run(other.apply([msg(0, "b", 20, unit="14926", partition=1)]))  # same province document, other partition
    result = run(mine.apply([msg(1, "d", 7)]))
    assert result.attempts == 2
    assert province(store) == 37
    assert store.totals["38|study_session|2020-12"]["version"] == 3


def test_after_a_partition_comes_back_the_worker_forgets_what_it_cached():
    store = InMemoryTotalsStore()
    first, second = Projector(store, TREE, CATALOG), Projector(store, TREE, CATALOG)
    run(first.apply(STREAM[:3]))
    run(second.apply(STREAM[3:5]))  # the partition moved to another worker for a while
    first.forget()  # what the rebalance hook does when it comes back
    run(first.apply(STREAM[5:]))
    assert province(store) == EXPECTED_PROVINCE
    assert first.cached[0] > 0


def test_a_failed_write_forgets_the_cache():
    store = CrashAfterTotals()
    projector = Projector(store, TREE, CATALOG)
    with pytest.raises(RuntimeError, match="killed"):
        run(projector.apply(STREAM[:4]))
    assert projector.cached == (0, 0)


def test_one_batch_of_several_partitions_writes_each_document_once_with_each_watermark():
    store = InMemoryTotalsStore()
    batch = [msg(0, "a", 10), msg(0, "b", 20, unit="14926", partition=1), msg(1, "d", 7)]
    result = run(Projector(store, TREE, CATALOG).apply(batch))
    doc = store.totals["38|study_session|2020-12"]
    assert province(store) == 37 and doc["version"] == 1 and doc["wm"] == {"0": 1, "1": 0}
    assert "38|study_session|2020-12" in result.touched
    # redelivered in other groupings: nothing changes
    run(Projector(store, TREE, CATALOG).apply([batch[1]]))
    run(Projector(store, TREE, CATALOG).apply([batch[0], batch[2]]))
    assert province(store) == 37 and store.totals["38|study_session|2020-12"]["version"] == 1


def test_the_lru_forgets_the_least_recently_used_by_weight():
    lru: Lru[str, list[int]] = Lru(5, weight=len)
    lru.put("a", [1, 2])
    lru.put("b", [1, 2])
    assert lru.get("a") == [1, 2]  # now b is the least recently used
    lru.put("c", [1, 2])  # weight 6 > 5: b goes
    assert lru.get("b") is None and lru.weight == 4 and len(lru) == 2
    lru.put("a", [1, 2, 3, 4])  # replacing a value re-weighs it: 4 + 2 > 5, c goes
    assert lru.get("c") is None and lru.weight == 4
    lru.put("d", [1] * 6)  # heavier than the whole cache: not kept, and nothing else is either
    assert len(lru) == 0 and lru.weight == 0
    lru.put("e", [1])
    lru.pop("e")
    assert lru.weight == 0


def test_the_ledger_cache_is_bounded_by_report_entries_and_the_sums_stay_exact():
    """A ledger holds every report its unit sent: the cache counts those, so memory does not
    grow with the number of reports, and a ledger pushed out is read back, not lost."""
    units = ["14923", "14926", "14929"]
    stream = [msg(i, f"r{i}", i % 7 + 1, unit=units[i % 3]) for i in range(60)]
    stream += [msg(60 + i, f"r{i}", 100, rev=2, unit=units[i % 3]) for i in range(0, 60, 5)]  # corrections
    expected = sum(100 if i % 5 == 0 else i % 7 + 1 for i in range(60))

    bounded_store, unbounded_store = InMemoryTotalsStore(), InMemoryTotalsStore()
    bounded = Projector(bounded_store, TREE, CATALOG, cache_ledger_entries=25)
    unbounded = Projector(unbounded_store, TREE, CATALOG)
    reads = {"bounded": 0, "unbounded": 0}
    for start in range(0, len(stream), 4):
        reads["bounded"] += run(bounded.apply(stream[start : start + 4])).reads
        reads["unbounded"] += run(unbounded.apply(stream[start : start + 4])).reads
        assert bounded._ledgers.weight <= 25
    assert province(bounded_store) == province(unbounded_store) == expected
    assert bounded_store.totals == unbounded_store.totals
    assert reads["bounded"] > reads["unbounded"]  # evicted ledgers were read back
