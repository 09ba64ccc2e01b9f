"""Restoring from a snapshot and the changelog's tail gives exactly the state a whole replay gives."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from dataclasses import replace
from typing import Any

import pytest
from pydantic_core import to_json

from services.aggregate import snapshots as snapshots_module
from services.aggregate.aggregator import Aggregator
from services.aggregate.entries import EntryFiles
from services.aggregate.routing import partition_for
from services.aggregate.snapshots import (
    Captured,
    InMemorySnapshotStore,
    Snapshot,
    ViewMarks,
    capture,
    compress,
    fingerprint,
)
from services.aggregate.state import InMemoryChangelog, encode_entry
from services.aggregate.view import InMemoryTotalsView
from shared.domain.rollup import Rollup
from shared.domain.totals_docs import to_stored
from tests.unit.test_aggregator import AT, CATALOG, PARTITIONS, Pipeline, report

PARTITION = partition_for("38", PARTITIONS)  # where the reports of province 38 are counted


def indicator(rid: str, value: int, rev: int = 1, unit: str = "14923", period: str = "2020-12") -> dict[str, Any]:
    """A report of a series with a stock field (its latest value, not a sum), so the snapshot
    carries stock values too."""
    r = report(rid, 0, rev=rev, unit=unit, period=period)
    r["kind"] = "indicator"
    r["body"] = {"indicator": "new_rural_communes", "value": value}
    return r


@pytest.fixture(params=["entries in memory", "entries in sqlite"])
def files(request: pytest.FixtureRequest, tmp_path: Any) -> Any:
    if request.param == "entries in memory":
        yield None
        return
    f = EntryFiles(tmp_path, cache_mb=1)
    yield f
    f.close()


def aggregator(p: Pipeline, files: Any, store: InMemorySnapshotStore | None, every: int = 4) -> Aggregator:
    return Aggregator(
        CATALOG,
        p.aggregator.tree,
        PARTITIONS,
        p.changelog,
        p.view,
        p._publish,
        p._forward,
        p._dead_letter,
        p.metrics,
        retry_pause=0,
        entries=files.open if files is not None else None,
        trust=p.aggregator.trust,
        snapshots=store,
        snapshot_every=every,
    )


def state_of(rollup: Rollup) -> dict[str, Any]:
    return {
        "entries": {k: rollup.entries[k] for k in sorted(rollup.entries)},
        "docs": {i: (d.parents, d.periods) for i, d in rollup.docs.items() if d.periods},
        "own": rollup.own,
    }


async def settle(agg: Aggregator) -> None:
    for state in agg.parts.values():
        if state.saving is not None:
            await state.saving


def wave(n: int, start: int = 0) -> list[dict[str, Any]]:
    """Reports, corrections, withdrawals and stock figures for province 38."""
    out: list[dict[str, Any]] = []
    for i in range(start, start + n):
        unit = ("14923", "14926", "14929")[i % 3]
        out.append(report(f"r{i}", 10 + i, unit=unit))
        out.append(indicator(f"i{i}", 100 + i, unit=unit))
        if i % 2:
            out.append(report(f"r{i}", 20 + i, rev=2, unit=unit))
            out.append(indicator(f"i{i}", 200 + i, rev=2, unit=unit))
        if i % 5 == 0:
            out.append(report(f"r{i}", 0, rev=3, unit=unit, withdrawn=True))
    return out


async def whole_replay(p: Pipeline, files: Any) -> dict[str, Any]:
    fresh = aggregator(p, files, None)
    await fresh.ensure_loaded([PARTITION])
    state = state_of(fresh.parts[PARTITION].rollup)
    fresh.revoke([PARTITION])
    return state


async def test_a_snapshot_and_the_tail_restore_what_the_whole_changelog_does(files: Any) -> None:
    p, store = Pipeline(), InMemorySnapshotStore()
    p.aggregator = agg = aggregator(p, files, store)
    await p.send(wave(12), partition=PARTITION)
    await p.apply()
    assert set(agg.parts) == {PARTITION}  # the province's own partition, nothing forwarded
    await agg.snapshot_due()
    await settle(agg)
    snap = store.snapshots[(p.changelog.topic, PARTITION)]
    assert snap.offset == len(p.changelog.records[PARTITION])  # everything appended so far
    await p.send(wave(5, start=8), partition=PARTITION)  # the tail: corrections of snapshotted reports too
    await p.apply()
    tail = len(p.changelog.records[PARTITION]) - snap.offset
    assert tail > 0

    restarted = aggregator(p, files, store)
    await restarted.ensure_loaded([PARTITION])
    replayed = p.metrics.restored_records.labels("snapshot")._value.get()
    assert replayed == tail
    expected = await whole_replay(p, files)
    assert state_of(restarted.parts[PARTITION].rollup) == expected
    assert state_of(agg.parts[PARTITION].rollup) == expected
    assert expected["docs"]["38|indicator.new_rural_communes|2020"][1]["2020-12"]  # stocks were in it


async def test_a_snapshot_is_taken_every_so_many_records_and_only_then(files: Any) -> None:
    p, store = Pipeline(), InMemorySnapshotStore()
    p.aggregator = agg = aggregator(p, files, store, every=1000)
    await p.send(wave(3), partition=PARTITION)
    await p.apply()
    await agg.snapshot_due()
    assert store.saves == 0
    agg.snapshot_every = 5
    await agg.snapshot_due()
    await settle(agg)
    assert store.saves == 1
    await agg.snapshot_due()  # nothing appended since
    await settle(agg)
    assert store.saves == 1


@pytest.mark.parametrize("change", ["partitions", "fingerprint", "offset past the end", "damaged"])
async def test_a_snapshot_that_does_not_fit_is_ignored_and_the_whole_changelog_replayed(
    files: Any, change: str
) -> None:
    p, store = Pipeline(), InMemorySnapshotStore()
    p.aggregator = agg = aggregator(p, files, store)
    await p.send(wave(6), partition=PARTITION)
    await p.apply()
    await agg.snapshot_due()
    await settle(agg)
    key = (p.changelog.topic, PARTITION)
    snap = store.snapshots[key]
    # a snapshot whose figures are wrong: used, it would show
    wrong = capture(Rollup(CATALOG, {} if files is None else files.open(PARTITION + 1)), ViewMarks({}, frozenset()))
    if change == "partitions":
        store.snapshots[key] = replace(snap, partitions=PARTITIONS + 2, payload=compress(wrong))
    elif change == "fingerprint":
        store.snapshots[key] = replace(snap, fingerprint="other", payload=compress(wrong))
    elif change == "offset past the end":
        store.snapshots[key] = replace(snap, offset=snap.offset + 100, payload=compress(wrong))
    else:
        store.damaged.add(key)
    restarted = aggregator(p, files, store)
    await restarted.ensure_loaded([PARTITION])
    assert p.metrics.restored_records.labels("snapshot")._value.get() == 0
    assert state_of(restarted.parts[PARTITION].rollup) == await whole_replay(p, files)


async def test_records_someone_else_appended_are_read_back_before_the_next_snapshot(files: Any) -> None:
    """A worker that still believed it owned the partition appended a higher revision after our
    restore: the snapshot's offset is past that record, so the snapshot must hold it."""
    p, store = Pipeline(), InMemorySnapshotStore()
    p.aggregator = agg = aggregator(p, files, store)
    await p.send(wave(4), partition=PARTITION)
    await p.apply()
    key = "14926/r1"
    entry = agg.parts[PARTITION].rollup.entries[key]
    foreign = replace(entry, revision=9, values={**entry.values, "members_attended": 777})
    await p.changelog.append([encode_entry(PARTITION, key, foreign)])
    await p.send(wave(3, start=10), partition=PARTITION)
    await p.apply()
    assert agg.parts[PARTITION].gap
    await agg.snapshot_due()
    await settle(agg)
    assert not agg.parts[PARTITION].gap
    assert agg.parts[PARTITION].rollup.entries[key].revision == 9
    restarted = aggregator(p, files, store)
    await restarted.ensure_loaded([PARTITION])
    assert p.metrics.restored_records.labels("snapshot")._value.get() == 0  # nothing after the snapshot
    assert state_of(restarted.parts[PARTITION].rollup) == await whole_replay(p, files)


async def test_an_append_that_failed_part_way_is_read_back_before_the_next_snapshot(files: Any) -> None:
    p, store = Pipeline(), InMemorySnapshotStore()
    p.aggregator = agg = aggregator(p, files, store)
    await p.send(wave(2), partition=PARTITION)
    await p.apply()
    p.changelog.fail_next = 1  # one record written, then an error: the retry writes it again
    await p.send(wave(3, start=5), partition=PARTITION)
    await p.apply()
    assert agg.parts[PARTITION].gap
    await agg.snapshot_due()
    await settle(agg)
    restarted = aggregator(p, files, store)
    await restarted.ensure_loaded([PARTITION])
    assert state_of(restarted.parts[PARTITION].rollup) == await whole_replay(p, files)


async def test_a_stored_snapshot_is_replaced_only_by_a_later_one() -> None:
    store = InMemorySnapshotStore()
    s = Snapshot("t", 0, 4, "f", 10, b"x")
    assert await store.save(s)
    assert not await store.save(replace(s, offset=10, payload=b"y"))
    assert not await store.save(replace(s, offset=3, payload=b"z"))
    assert await store.save(replace(s, offset=11, payload=b"w"))
    assert (await store.load("t", 0)) == replace(s, offset=11, payload=b"w")


async def test_readiness_waits_for_every_assigned_partition_to_be_restored(files: Any) -> None:
    p = Pipeline()
    p.aggregator = aggregator(p, files, None)
    await p.send(wave(2), partition=PARTITION)
    await p.apply()
    restarted = aggregator(p, files, None)
    assert not restarted.restoring
    restarted.assign([PARTITION, 0])
    assert restarted.restoring
    await asyncio.gather(*restarted._loading.values())
    assert not restarted.restoring


def test_the_fingerprint_is_the_same_in_every_process() -> None:
    """Workers are separate processes, each with its own hash seed: a snapshot saved by one must
    be usable by another."""
    code = (
        "from services.aggregate.snapshots import fingerprint; from shared.domain.catalog import load_catalog;"
        " print(fingerprint(load_catalog(), 8))"
    )
    seen = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for seed in ("1", "2", "3")
    }
    assert seen == {fingerprint(CATALOG, 8)}


async def test_a_partition_given_back_after_a_rebalance_keeps_its_state_brought_up_to_date(files: Any) -> None:
    """A rebalance revokes everything, then assigns: a partition that comes back is not restored
    again, but what another owner appended meanwhile is merged into it."""
    p, store = Pipeline(), InMemorySnapshotStore()
    p.aggregator = agg = aggregator(p, files, store, every=10**6)
    await p.send(wave(4), partition=PARTITION)
    await p.apply()
    kept = agg.parts[PARTITION].rollup
    agg.revoke([PARTITION])
    assert PARTITION not in agg.parts
    # another worker owned it for a moment and counted a correction
    key = "14926/r1"
    entry = kept.entries[key]
    foreign = replace(entry, revision=7, values={**entry.values, "members_attended": 555})
    await p.changelog.append([encode_entry(PARTITION, key, foreign)])
    agg.rebalanced([PARTITION])
    await agg.ensure_loaded([PARTITION])
    assert agg.parts[PARTITION].rollup is kept  # not restored again
    assert p.metrics.restored_records.labels("beginning")._value.get() == 0
    assert kept.entries[key].revision == 7
    assert state_of(kept) == await whole_replay(p, files)
    await p.send(wave(2, start=20), partition=PARTITION)
    await p.apply()
    assert state_of(agg.parts[PARTITION].rollup) == await whole_replay(p, files)


async def test_a_partition_not_given_back_has_its_kept_state_closed(files: Any) -> None:
    p = Pipeline()
    p.aggregator = agg = aggregator(p, files, None)
    await p.send(wave(2), partition=PARTITION)
    await p.apply()
    agg.revoke([PARTITION])
    agg.rebalanced([])
    assert not agg._kept
    await agg.ensure_loaded([PARTITION])  # given back later: restored from the changelog
    assert p.metrics.restored_records.labels("beginning")._value.get() > 0
    assert state_of(agg.parts[PARTITION].rollup) == await whole_replay(p, files)


class WatchedView(InMemoryTotalsView):
    """The fake view, saying what a restore read from it; its writes wait while ``held``."""

    def __init__(self) -> None:
        super().__init__()
        self.parts_loaded = 0
        self.ids_read: set[str] = set()
        self.held = False
        self.released = asyncio.Event()
        self.writing = asyncio.Event()

    async def load_part(self, part: int) -> dict[str, dict[str, Any]]:
        self.parts_loaded += 1
        return await super().load_part(part)

    async def read(self, ids: Any) -> dict[str, dict[str, Any]]:
        ids = list(ids)
        self.ids_read.update(ids)
        return await super().read(ids)

    async def write(self, docs: list[dict[str, Any]], deletes: list[tuple[str, int]]) -> None:
        self.writing.set()
        if self.held:
            await self.released.wait()
        await super().write(docs, deletes)


def periods_of_state(rollup: Rollup) -> dict[str, Any]:
    return {i: to_stored(d, 0, PARTITION, AT)["periods"] for i, d in rollup.docs.items() if d.periods}


def periods_streamed(p: Pipeline) -> dict[str, Any]:
    """Per document, the periods of its message with the highest version (as a follower keeps
    them); documents whose latest message has none left out."""
    latest: dict[str, dict[str, Any]] = {}
    for key, value in p.published:
        m = json.loads(value)
        if key.decode() not in latest or m["version"] >= latest[key.decode()]["version"]:
            latest[key.decode()] = m
    return {k: m["periods"] for k, m in latest.items() if m["periods"]}


@pytest.mark.parametrize("when", ["not published", "published, not written", "being written"])
async def test_documents_not_settled_in_the_view_when_the_snapshot_was_taken_are_repaired_by_its_next_owner(
    files: Any, when: str
) -> None:
    """The worker is killed after its snapshot, with documents it had changed in one of three
    stages: whoever restores from that snapshot, with nothing new to read, brings the view and
    the stream to the state without reading all the partition's documents."""
    view = WatchedView()
    p, store = Pipeline(view=view), InMemorySnapshotStore()
    p.aggregator = agg = aggregator(p, files, store, every=1)
    await p.send(wave(6), partition=PARTITION)
    await p.apply()  # published and written
    mark = len(p.topic[PARTITION])
    late = [report("late", 7, unit="14929"), report("r2", 0, rev=5, unit="14929", withdrawn=True)]
    await p.send(late, partition=PARTITION)
    await agg.handle(p.batch(PARTITION, mark))  # in the changelog, changed
    writing = None
    if when != "not published":
        await agg.publish_changes()
    if when == "being written":
        view.held = True
        view.writing.clear()
        writing = asyncio.ensure_future(agg.write_view())
        await view.writing.wait()
    await agg.snapshot_due()
    await settle(agg)
    if writing is not None:  # SIGKILL: the write never lands
        writing.cancel()
        view.held = False
    expected = periods_of_state(agg.parts[PARTITION].rollup)
    assert {i: d["periods"] for i, d in view.docs.items()} != expected  # the view is behind

    view.parts_loaded, view.ids_read = 0, set()
    restarted = aggregator(p, files, store)
    await restarted.ensure_loaded([PARTITION])
    assert p.metrics.restored_records.labels("snapshot")._value.get() == 0  # no tail
    await restarted.flush()
    assert {i: d["periods"] for i, d in view.docs.items()} == expected
    assert periods_streamed(p) == expected
    assert view.parts_loaded == 0
    assert len(view.ids_read) < len(expected)


async def test_a_restore_from_a_snapshot_compares_only_the_documents_the_tail_changed(files: Any) -> None:
    view = WatchedView()
    p, store = Pipeline(view=view), InMemorySnapshotStore()
    p.aggregator = agg = aggregator(p, files, store, every=1)
    await p.send(wave(8), partition=PARTITION)
    await p.apply()
    await agg.snapshot_due()  # everything written: nothing unsettled
    await settle(agg)
    mark = len(p.topic[PARTITION])
    await p.send([report("r1", 99, rev=4, unit="14926"), report("new", 5, unit="14929")], partition=PARTITION)
    await agg.handle(p.batch(PARTITION, mark))
    tail_changed = set(agg.parts[PARTITION].rollup.changed)
    await agg.flush()

    view.parts_loaded, view.ids_read = 0, set()
    restarted = aggregator(p, files, store)
    await restarted.ensure_loaded([PARTITION])
    assert p.metrics.restored_records.labels("snapshot")._value.get() == 2
    assert view.parts_loaded == 0
    assert view.ids_read == tail_changed
    assert not restarted.parts[PARTITION].rollup.changed  # the view holds them already
    assert state_of(restarted.parts[PARTITION].rollup) == await whole_replay(p, files)


async def test_a_restore_from_the_whole_changelog_compares_every_stored_document(files: Any) -> None:
    view = WatchedView()
    p = Pipeline(view=view)
    p.aggregator = aggregator(p, files, None)
    await p.send(wave(3), partition=PARTITION)
    await p.apply()
    view.parts_loaded = 0
    restarted = aggregator(p, files, None)
    await restarted.ensure_loaded([PARTITION])
    assert view.parts_loaded == 1


async def test_a_snapshot_of_the_previous_format_is_ignored(files: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Format 2 had no view marks: its snapshots must replay the whole changelog, not be misread."""
    p, store = Pipeline(), InMemorySnapshotStore()
    p.aggregator = agg = aggregator(p, files, store, every=10**6)
    await p.send(wave(5), partition=PARTITION)
    await p.apply()
    rollup = agg.parts[PARTITION].rollup
    image = rollup.entries.image() if files is not None else None  # type: ignore[attr-defined]
    old = to_json(rollup.derived()) if image is not None else None
    if old is None:
        entries = [(k, e.to_json()) for k, e in rollup.entries.items()]
        old = to_json({"entries": entries, "stocks": [], **rollup.derived()})
    with monkeypatch.context() as m:
        m.setattr(snapshots_module, "FORMAT", 2)
        old_fingerprint = fingerprint(CATALOG, PARTITIONS)
    assert old_fingerprint != fingerprint(CATALOG, PARTITIONS)
    offset = len(p.changelog.records[PARTITION])
    store.snapshots[(p.changelog.topic, PARTITION)] = Snapshot(
        p.changelog.topic, PARTITION, PARTITIONS, old_fingerprint, offset, compress(Captured(old, image))
    )
    restarted = aggregator(p, files, store)
    await restarted.ensure_loaded([PARTITION])
    assert p.metrics.restored_records.labels("snapshot")._value.get() == 0
    assert p.metrics.restored_records.labels("beginning")._value.get() == offset
    assert state_of(restarted.parts[PARTITION].rollup) == await whole_replay(p, files)


class CountedChangelog(InMemoryChangelog):
    def __init__(self) -> None:
        super().__init__()
        self.asked_ends = 0

    async def end_offsets(self, partitions: Any) -> dict[int, int]:
        self.asked_ends += 1
        return await super().end_offsets(partitions)


async def test_a_kept_partition_asks_for_the_changelog_s_end_once_when_given_back(files: Any) -> None:
    changelog = CountedChangelog()
    p = Pipeline(changelog=changelog)
    p.aggregator = agg = aggregator(p, files, None)
    await p.send(wave(2), partition=PARTITION)
    await p.apply()
    agg.revoke([PARTITION])
    changelog.asked_ends = 0
    agg.rebalanced([PARTITION])
    await agg.ensure_loaded([PARTITION])
    assert changelog.asked_ends == 1


async def test_a_quiet_worker_snapshots_a_partition_with_enough_records_since_its_last(files: Any) -> None:
    p, store = Pipeline(), InMemorySnapshotStore()
    p.aggregator = agg = aggregator(p, files, store, every=10 * 40)  # a quiet snapshot from 40 records
    await p.send(wave(4), partition=PARTITION)
    await p.apply()
    assert 0 < len(p.changelog.records[PARTITION]) < 40
    quiet = asyncio.ensure_future(agg.snapshot_when_quiet(quiet=0.01))
    await asyncio.sleep(0.1)
    quiet.cancel()
    assert store.saves == 0  # too few records
    await p.send(wave(12, start=10), partition=PARTITION)
    await p.apply()
    assert len(p.changelog.records[PARTITION]) >= 40
    agg._handling = True  # a batch under way: its reports may not be in the changelog yet
    quiet = asyncio.ensure_future(agg.snapshot_when_quiet(quiet=0.01))
    try:
        await asyncio.sleep(0.1)
        assert store.saves == 0
        agg._handling = False
        await asyncio.sleep(0.1)
        await settle(agg)
        assert store.saves == 1
        assert store.snapshots[(p.changelog.topic, PARTITION)].offset == len(p.changelog.records[PARTITION])
    finally:
        quiet.cancel()
    restarted = aggregator(p, files, store)
    await restarted.ensure_loaded([PARTITION])
    assert p.metrics.restored_records.labels("snapshot")._value.get() == 0
    assert state_of(restarted.parts[PARTITION].rollup) == await whole_replay(p, files)
