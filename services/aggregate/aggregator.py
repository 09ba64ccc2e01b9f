"""The aggregator: applies the reports of its partitions to its state and keeps the view fresh.

Per partition of ``reports`` it holds a :class:`shared.domain.rollup.Rollup` (every report's latest
revision, each unit's own figures, the totals of every unit and ancestor) for the provinces that
partition counts (routing.py), restored from the changelog when the partition is assigned
(state.py says why that is exact).

``handle`` decodes a batch (dead-lettering what is not a valid report), forwards any report that
arrived on another province's partition, applies the rest, and returns once the broker has the
forwarded reports, the dead letters and the changed entries in the changelog.

What changed is then published and written behind the agent, by two loops that never hold it up:
``publish_forever`` turns the documents changed since its last publication into whole documents
and publishes them on the totals topic (which the read API follows), and ``write_forever``
replaces the latest published form of each in MongoDB, one write at a time, no reads. The
database never gets ahead of the stream, and a slow database makes its writes bigger (and, past
UNWRITTEN_LIMIT documents behind, the publications wait for it).

After a partition is restored, its stored documents are compared with the state once, and any
that differ (a worker killed between its changelog append and its publication, or between
publishing and writing) are published and written again. So a crash leaves neither the view nor
the stream behind, and nothing is read from MongoDB after that. Restored from a snapshot, only
the documents that may differ are compared: those the snapshot names as not settled in MongoDB
when it was copied, and those the changelog's tail changed (snapshots.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from services.aggregate.decode import Rejected, Trust, decode_direct
from services.aggregate.metrics import AggregateMetrics
from services.aggregate.routing import forwarded, partition_for
from services.aggregate.snapshots import (
    Captured,
    Snapshot,
    SnapshotStore,
    ViewMarks,
    capture,
    compress,
    fingerprint,
    rebuild,
    view_marks,
)
from services.aggregate.snapshots import decode as decode_snapshot
from services.aggregate.state import Changelog, Record, decode_entry, encode_entry
from services.aggregate.view import TotalsView
from services.aggregate.worker import (
    DeadLetterSink,
    ForwardSink,
    RawMessage,
    RegistryRefresh,
    retrying,
    send_dead_letters,
)
from shared.adapters.approvals import CachedApprovals
from shared.adapters.kafka_batches import Spans
from shared.domain.approvals import kafka_lock, kafka_locked_message
from shared.domain.catalog import Catalog
from shared.domain.conferences import shared_depth
from shared.domain.hierarchy import Level, OrgTree
from shared.domain.rollup import Entry, Outcome, Report, Rollup, TotalsDoc, entry_key, figure_names
from shared.domain.stamps import STAMP_HEADER, stamp
from shared.domain.totals_docs import to_stored
from shared.domain.totals_stream import encode, totals_message

log = logging.getLogger(__name__)

# [(key, value), ...] -> awaitable that completes once the broker has every totals message
TotalsSink = Callable[[list[tuple[bytes, bytes]]], Awaitable[Any]]
# partition -> a fresh, empty mapping to keep that partition's entries in (entries.py)
EntriesFactory = Callable[[int], MutableMapping[str, Entry]]
# Published documents waiting for MongoDB: past this many, the next publication waits until a
# write takes them, so what is held for the database stays bounded (this many waiting, about as
# many being written) and a database slower than the reports sets the pace of publications (each
# then coalescing more), rather than the worker's memory growing.
UNWRITTEN_LIMIT = 5_000
# Documents in one publication at most: with the limit above, what the worker holds for the
# stream and the database stays bounded whatever the backlog (the rest wait, as ids, in the
# roll-up's set of changed documents, and coalesce there).
PUBLICATION_LIMIT = 5_000
# A publication waits at least this many times the processor time the previous one took to build
# its messages, so building them takes a bounded share of the worker's time: about a quarter while
# reports come as they are sent (publications often enough for fresh totals), about a tenth while
# the worker drains a backlog (its batches full), when publications coming less often coalesce more.
# docs/benchmarks.md has the figures these two were chosen from.
PAUSE_PER_BUILD = 3
PAUSE_PER_BUILD_IN_BACKLOG = 9


# the freshness histogram's last finite bound (metrics.py), in seconds
FRESHNESS_LAST_BOUND = 300.0
# documents read from MongoDB in one query when a restore compares some of them with the state
COMPARE_CHUNK = 1000
# A worker that has had no batch for this long snapshots each partition with at least
# snapshot_every // SNAPSHOT_QUIET_SHARE records since its last snapshot: a quiet worker has the
# time, and whoever takes the partition next replays a short tail instead of up to snapshot_every.
SNAPSHOT_QUIET_SECONDS = 5.0
SNAPSHOT_QUIET_SHARE = 10


class ReceiptTimes:
    """The receipt times of reports applied and not yet wholly published, for the freshness
    histogram: counts per hundredth of a second, so a backlog of a million reports holds a few
    thousand numbers, not a million datetimes (a publication rarely takes everything while a
    backlog drains). Past ``limit`` distinct times, those older than the histogram's last bound
    are observed at once: they fall in its last bucket whenever they are published."""

    RESOLUTION = 100  # per second; an age is at most 10 ms over the truth

    def __init__(self, histogram: Any, last_bound: float, limit: int = 50_000) -> None:
        self.histogram = histogram
        self.last_bound = last_bound
        self.limit = limit  # above last_bound * RESOLUTION, so recent times always fit
        self.counts: dict[int, int] = {}

    def add(self, at: datetime) -> None:
        key = int(at.timestamp() * self.RESOLUTION)
        self.counts[key] = self.counts.get(key, 0) + 1
        if len(self.counts) > self.limit:
            now = time.time()
            cutoff = (now - self.last_bound) * self.RESOLUTION
            for old in [k for k in self.counts if k < cutoff]:
                self._observe(now, old, self.counts.pop(old))

    def observe_all(self, visible: float) -> None:
        counts, self.counts = self.counts, {}
        for key, n in counts.items():
            self._observe(visible, key, n)

    def _observe(self, visible: float, key: int, n: int) -> None:
        age = max(0.0, visible - key / self.RESOLUTION)
        for _ in range(n):
            self.histogram.observe(age)


def _close(rollup: Rollup) -> None:
    close = getattr(rollup.entries, "close", None)
    if close is not None:
        close()


@dataclass
class PartitionState:
    rollup: Rollup
    versions: dict[str, int] = field(default_factory=dict)  # document id -> version last written
    # Every changelog record before this offset is in the state (snapshots.py's contract).
    covered: int = 0
    gap: bool = False  # someone else appended after ``covered``: read it back before a snapshot
    since_snapshot: int = 0  # records appended since the last snapshot (or the restore)
    saving: asyncio.Task[None] | None = None

    def appended(self, spans: Iterable[tuple[int, int]]) -> None:
        """Note where the broker put this partition's appended records."""
        for offset, n in sorted(spans):
            if offset == self.covered:
                self.covered += n
            elif offset > self.covered:
                self.gap = True  # a record we did not write sits before ``offset``
            self.since_snapshot += n


@dataclass
class Restored:
    """A partition's state as a restore left it, before its stored documents are compared."""

    rollup: Rollup
    covered: int  # every changelog record before it is in the state
    # from a snapshot: what it says of the view, and the documents the changelog's tail changed
    marks: ViewMarks | None = None
    tail_changed: set[str] = field(default_factory=set)
    replayed: int = 0  # changelog records read (after the snapshot, or all)


def next_version(previous: int) -> int:
    """Versions grow with every write of a document: the microseconds of the wall clock, or one
    more than the last version when the clock has not moved past it (or went back)."""
    return max(previous + 1, time.time_ns() // 1000)


class Aggregator:
    def __init__(
        self,
        catalog: Catalog,
        tree: OrgTree,
        partitions: int,
        changelog: Changelog,
        view: TotalsView,
        publish: TotalsSink,
        forward: ForwardSink,
        dead_letter: DeadLetterSink,
        metrics: AggregateMetrics,
        refresh_registry: RegistryRefresh | None = None,
        retry_pause: float = 0.5,
        entries: EntriesFactory | None = None,
        full_batch: int | None = None,
        *,
        trust: Trust,
        snapshots: SnapshotStore | None = None,
        snapshot_every: int = 10_000,
        approvals: CachedApprovals | None = None,
    ) -> None:
        self.catalog = catalog
        self.tree = tree
        self.partitions = partitions  # of ``reports``; the changelog has as many
        self.forward = forward
        self.refresh_registry = refresh_registry
        self._expected_levels = {k: {Level(x) for x in s.expected_levels} for k, s in catalog.series.items()}
        self.changelog = changelog
        self.view = view
        self.publish = publish
        self.dead_letter = dead_letter
        self.metrics = metrics
        self.retry_pause = retry_pause
        self.entries = entries  # where a partition's entries are kept (default: a dict in memory)
        self.full_batch = full_batch  # a batch this big means a backlog (the agent's batch_max)
        self.in_backlog = False
        self.trust = trust  # checks where a message comes from (decode.py); stamps what is forwarded
        self.snapshots = snapshots
        self.snapshot_every = snapshot_every  # changelog records of a partition between two snapshots
        # the approval lock on reports produced straight to Kafka (None: no lock, in tests of
        # other things); read through a cache of a few seconds, as ingest reads it
        self.approvals = approvals
        self._fingerprint = fingerprint(catalog, partitions)
        self.parts: dict[int, PartitionState] = {}
        self._kept: dict[int, PartitionState] = {}  # revoked, until the next assignment says
        self._loading: dict[int, asyncio.Task[None]] = {}
        self._publish_lock = asyncio.Lock()
        self._last_build_seconds = 0.0  # processor time the last publication took to build its messages
        self._write_lock = asyncio.Lock()
        # published documents not yet written to the view: id -> (version, stored form, or None
        # for a document to delete, partition); a later publication of a document replaces its
        # earlier one
        self._unwritten: dict[str, tuple[int, dict[str, Any] | None, int]] = {}
        # id -> partition of the documents being published, and being written, right now: with
        # the changed and the unwritten ones, those MongoDB may not hold as the state has them
        self._publishing: dict[str, int] = {}
        self._writing: dict[str, int] = {}
        self._unwritten_event = asyncio.Event()
        self._taken = asyncio.Event()  # set (and replaced) each time a write takes what waits
        # receipt times of the reports applied since everything was last published
        self._received = ReceiptTimes(metrics.freshness, FRESHNESS_LAST_BOUND)
        self.pending = 0  # documents changed since the last publication
        self._handling = False  # a batch is being handled: no snapshot but the agent's own
        self._handled_at = time.monotonic()  # when the last batch was handled
        self._dirty = asyncio.Event()  # set when something changed that no publication has taken yet

    # ------------------------------------------------------------------ partitions

    def assign(self, partitions: Iterable[int]) -> None:
        """Start restoring newly assigned partitions (``handle`` waits for them)."""
        for p in partitions:
            if p not in self.parts and p not in self._loading:
                self._loading[p] = asyncio.ensure_future(self._load(p))

    def rebalanced(self, partitions: Iterable[int]) -> None:
        """The group's new assignment for this worker: the state of a partition revoked by the
        rebalance and given back is kept (brought up to date in ``_load``); the others' is closed."""
        mine = set(partitions)
        for p in [p for p in self._kept if p not in mine]:
            _close(self._kept.pop(p).rollup)
        self.assign(mine)

    def revoke(self, partitions: Iterable[int]) -> None:
        """Stop applying revoked partitions. Their state is kept until the next assignment, which
        often gives them back (a rebalance revokes everything first); whoever else gets one
        restores it from its snapshot and the changelog."""
        for p in partitions:
            state = self.parts.pop(p, None)
            if state is not None:
                self._kept[p] = state
                self.metrics.partition_restore_seconds.remove(str(p))
            task = self._loading.pop(p, None)
            if task is not None:
                task.cancel()
        self.metrics.partitions_owned.set(len(self.parts))

    def close(self) -> None:
        self.revoke(list(self.parts))
        self.rebalanced([])

    async def ensure_loaded(self, partitions: Iterable[int]) -> None:
        self.assign(partitions)
        for p in set(partitions):
            task = self._loading.get(p)
            if task is not None:
                await asyncio.wait({task})  # a load cancelled by a revocation is not our error

    @property
    def restoring(self) -> bool:
        """Whether a partition assigned to this worker is still being restored."""
        return bool(self._loading)

    async def _load(self, partition: int) -> None:
        started = time.perf_counter()
        try:
            kept = self._kept.pop(partition, None)
            if kept is not None and await self._resume(partition, kept):
                self.parts[partition] = kept
                self.metrics.partition_restore_seconds.labels(str(partition)).set(time.perf_counter() - started)
                self.metrics.partitions_owned.set(len(self.parts))
                return
            restored = await retrying(self.metrics, "restore", lambda: self._restore(partition), self.retry_pause)
            rollup = restored.rollup
            # what was replayed counts towards the next snapshot, which spares the next owner it
            state = PartitionState(rollup, covered=restored.covered, since_snapshot=restored.replayed)
            compared = await self._compare_view(partition, state, restored)
            self.parts[partition] = state
            self.pending += len(rollup.changed)
            self.metrics.unpublished.set(self.pending)
            if rollup.changed:
                self._dirty.set()
            log.info(
                "partition restored",
                extra={
                    "partition": partition,
                    "reports": len(rollup.entries),
                    "documents": len(rollup.docs),
                    "compared": compared,
                    "to_rewrite": len(rollup.changed),
                    "seconds": round(time.perf_counter() - started, 3),
                },
            )
            self.metrics.restore_seconds.observe(time.perf_counter() - started)
            self.metrics.partition_restore_seconds.labels(str(partition)).set(time.perf_counter() - started)
            self.metrics.partitions_owned.set(len(self.parts))
        finally:
            if self._loading.get(partition) is asyncio.current_task():
                del self._loading[partition]

    async def _resume(self, partition: int, state: PartitionState) -> bool:
        """Bring a kept state up to date: what others appended to the changelog meanwhile is
        merged (as a restore would). False, with the state closed, when the changelog is not the
        one it covered (it ends before what the state holds)."""
        try:
            end = (await self.changelog.end_offsets([partition]))[partition]
            if end >= state.covered:
                await self._catch_up(partition, state, end)
                return True
        except Exception:  # a restore from scratch retries what failed here
            log.warning("kept state not resumed", extra={"partition": partition}, exc_info=True)
        _close(state.rollup)
        return False

    async def _restore(self, partition: int) -> Restored:
        """The partition's state from its latest usable snapshot and the changelog after it (or
        the whole changelog), and the offset up to which it covers the changelog."""
        end = (await self.changelog.end_offsets([partition]))[partition]
        snapshot = await self._usable_snapshot(partition, end)
        entries = self.entries(partition) if self.entries is not None else None
        # an entry file keeps the stocks' figures too (entries.py); else they stay in memory
        stocks = getattr(entries, "stocks", None)
        marks = None
        try:
            if snapshot is not None:
                decoded = await asyncio.to_thread(decode_snapshot, snapshot.payload)  # megabytes: off the loop
                rollup = rebuild(self.catalog, decoded, entries, stocks)
                marks = view_marks(decoded)
            else:
                rollup = Rollup(self.catalog, entries, stocks)
            start = snapshot.offset if snapshot is not None else 0
            replayed = 0
            async for key, value in self.changelog.read(partition, start, end):
                rollup.restore(*decode_entry(key, value))
                replayed += 1
        except BaseException:
            if entries is not None:
                _close(Rollup(self.catalog, entries))
            raise
        self.metrics.restored_records.labels("snapshot" if snapshot else "beginning").inc(replayed)
        return Restored(rollup, end, marks, rollup.take_changed(), replayed)

    async def _usable_snapshot(self, partition: int, end: int) -> Snapshot | None:
        if self.snapshots is None:
            return None
        snapshot = await self.snapshots.load(self.changelog.topic, partition)
        if snapshot is None:
            return None
        if (snapshot.partitions, snapshot.fingerprint) != (self.partitions, self._fingerprint) or snapshot.offset > end:
            log.info(
                "snapshot not usable: restoring from the changelog's beginning",
                extra={"partition": partition, "offset": snapshot.offset, "end": end},
            )
            return None
        return snapshot

    # ------------------------------------------------------------------ snapshots

    async def snapshot_due(self) -> None:
        """Snapshot each partition that had ``snapshot_every`` records appended since its last
        one. Called between two batches (nothing is applied meanwhile): the state is copied at
        once, compressed and saved behind."""
        if self.snapshots is None:
            return
        for partition, state in list(self.parts.items()):
            if state.since_snapshot < self.snapshot_every or (state.saving is not None and not state.saving.done()):
                continue
            if state.gap:
                await self._catch_up(partition, state)
                if self.parts.get(partition) is not state:
                    continue  # revoked meanwhile
            self._snapshot(partition, state)

    async def snapshot_when_quiet(self, quiet: float = SNAPSHOT_QUIET_SECONDS) -> None:
        """Snapshot, once the agent has handled no batch for ``quiet`` seconds, each partition
        with at least snapshot_every // SNAPSHOT_QUIET_SHARE records appended since its last
        snapshot (and none appended by anyone else: the agent's own snapshots read those back
        first). Never while a batch is being handled: a batch's reports are in the state before
        its records are in the changelog."""
        if self.snapshots is None:
            return
        least = max(1, self.snapshot_every // SNAPSHOT_QUIET_SHARE)
        while True:
            await asyncio.sleep(quiet / 5)
            if self._handling or self._loading or time.monotonic() - self._handled_at < quiet:
                continue  # applying, or restoring (which a snapshot's copy would hold up)
            for partition, state in list(self.parts.items()):
                if state.since_snapshot >= least and not state.gap:
                    self._snapshot(partition, state)

    def _snapshot(self, partition: int, state: PartitionState) -> None:
        """Copy the partition's state now (no await) and save it behind, unless a save of it is
        still under way."""
        if state.saving is not None and not state.saving.done():
            return
        started = time.perf_counter()
        data = capture(state.rollup, self._view_marks(partition, state))
        self.metrics.snapshot_capture_seconds.observe(time.perf_counter() - started)
        state.since_snapshot = 0
        state.saving = asyncio.ensure_future(self._save(partition, state.covered, data))

    def _view_marks(self, partition: int, state: PartitionState) -> ViewMarks:
        """What the view holds of the partition now: which of its documents MongoDB may not hold
        as the state has them (changed and not yet published, being published, published and
        not yet written, being written), and the version last given to each."""
        unsettled = set(state.rollup.changed)
        for ids in (self._publishing, self._writing):
            unsettled.update(i for i, p in ids.items() if p == partition)
        unsettled.update(i for i, (_, _, p) in self._unwritten.items() if p == partition)
        return ViewMarks(dict(state.versions), frozenset(unsettled))

    async def _catch_up(self, partition: int, state: PartitionState, end: int | None = None) -> None:
        """Merge what others appended to the partition's changelog since ``covered`` (a worker
        that still believed it owned the partition, or our own retried appends), up to ``end``
        (the changelog's end when not given): merging by revision, what the state already holds
        changes nothing."""
        if end is None:
            end = (await self.changelog.end_offsets([partition]))[partition]
        before = len(state.rollup.changed)
        async for key, value in self.changelog.read(partition, state.covered, end):
            state.rollup.restore(*decode_entry(key, value))
        self.pending += len(state.rollup.changed) - before
        if state.rollup.changed:
            self._dirty.set()
        state.covered, state.gap = end, False

    async def _save(self, partition: int, offset: int, data: Captured) -> None:
        assert self.snapshots is not None
        try:
            payload = await asyncio.to_thread(compress, data)
            snapshot = Snapshot(self.changelog.topic, partition, self.partitions, self._fingerprint, offset, payload)
            saved = await self.snapshots.save(snapshot)
        except asyncio.CancelledError:
            raise
        except Exception:  # the next one will do: a snapshot only saves time
            log.warning("snapshot not saved", extra={"partition": partition}, exc_info=True)
            self.metrics.snapshots.labels("failed").inc()
            return
        self.metrics.snapshots.labels("saved" if saved else "superseded").inc()
        if saved:
            self.metrics.snapshot_bytes.observe(len(payload))

    async def _compare_view(self, partition: int, state: PartitionState, restored: Restored) -> int:
        """Compare the restored partition's stored documents with its state (all of them, or,
        after a snapshot, those it names as unsettled and those the tail changed: every other
        one MongoDB holds as the snapshot does) and mark those that differ; returns how many
        were compared."""
        if restored.marks is None:
            stored = await retrying(self.metrics, "database", lambda: self.view.load_part(partition), self.retry_pause)
            ids: set[str] = set(state.rollup.docs) | set(stored)
        else:
            state.versions = dict(restored.marks.versions)
            ids = set(restored.marks.unsettled) | restored.tail_changed
            stored = await retrying(self.metrics, "database", lambda: self._read_view(partition, ids), self.retry_pause)
        self._reconcile(partition, state, stored, ids)
        return len(ids)

    async def _read_view(self, partition: int, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The stored documents of the partition among ``ids``."""
        wanted = sorted(ids)
        stored: dict[str, dict[str, Any]] = {}
        for start in range(0, len(wanted), COMPARE_CHUNK):
            stored.update(await self.view.read(wanted[start : start + COMPARE_CHUNK]))
        return {i: doc for i, doc in stored.items() if doc.get("part") == partition}

    def _reconcile(
        self, partition: int, state: PartitionState, stored: dict[str, dict[str, Any]], ids: Iterable[str]
    ) -> None:
        """Mark for rewriting each of ``ids`` whose stored form (in ``stored``, absent when not
        stored) differs from the state; the version of each stored one is taken when higher."""
        rollup = state.rollup
        now = datetime.now(UTC)
        for doc_id in ids:
            have = stored.get(doc_id)
            if have is not None:
                state.versions[doc_id] = max(state.versions.get(doc_id, 0), int(have.get("version", 0)))
            doc = rollup.docs.get(doc_id)
            if doc is not None:
                want = to_stored(doc, 0, partition, now)
                if have is None or have.get("periods") != want["periods"] or have.get("parents") != want["parents"]:
                    rollup.changed.add(doc_id)
            elif have is not None:  # its figures were all withdrawn before the last publication
                spec = self.catalog.series.get(have["series"])
                names = figure_names(spec) if spec is not None else ()
                empty = TotalsDoc(have["unit"], have["series"], have["span"], tuple(have.get("parents", ())), names)
                rollup.docs[doc_id] = empty
                rollup.changed.add(doc_id)

    # ------------------------------------------------------------------ applying

    async def handle(self, messages: Sequence[RawMessage]) -> None:
        """Apply a batch; returns once the broker has what it appended, forwarded or
        dead-lettered."""
        self._handling = True
        try:
            await self._handle(messages)
        finally:
            self._handling = False
            self._handled_at = time.monotonic()

    async def _handle(self, messages: Sequence[RawMessage]) -> None:
        self.in_backlog = self.full_batch is not None and len(messages) >= self.full_batch
        await self.ensure_loaded({m.partition for m in messages})
        records = []
        moved: list[tuple[int, bytes | None, bytes, list[tuple[str, bytes]]]] = []
        rejected: list[tuple[RawMessage, Rejected]] = []
        outcomes: dict[str, int] = {}
        for m, report, direct in await self._decoded(messages):
            state = self.parts.get(m.partition)
            if state is None:  # revoked while we waited: its new owner reads it again
                continue
            if isinstance(report, Rejected):
                rejected.append((m, report))
                continue
            tree = self.tree.for_period(report.period)  # the tree valid at the period's end
            path = tree.path(report.unit)
            target = partition_for(path[-1], self.partitions)
            if target != m.partition:
                # checked here (token, receipt time): stamped, so its province's worker trusts it
                envelope = forwarded(m.value or b"", m.timestamp_ms, m.source)
                moved.append((target, m.key, envelope, [(STAMP_HEADER, stamp(self.trust.stamp_key, envelope))]))
                outcomes["forwarded"] = outcomes.get("forwarded", 0) + 1
                continue
            if direct and (locked := await self._locked(state, report)) is not None:
                rejected.append((m, locked))
                continue
            expected = tree.get(report.unit).level in self._expected_levels[report.series]
            before = len(state.rollup.changed)
            # a report naming the conference it joined: its conference figures stop below the organiser
            depth = shared_depth(path, tree.path(report.joined)) if report.joined else 0
            applied = state.rollup.apply(report, path, expected, depth)
            self.pending += len(state.rollup.changed) - before
            outcomes[applied.outcome.value] = outcomes.get(applied.outcome.value, 0) + 1
            if applied.outcome == Outcome.REJECTED:
                rejected.append((m, Rejected("rejected", applied.reason)))
            elif applied.entry is not None:
                records.append(encode_entry(m.partition, entry_key(report.unit, report.report_id), applied.entry))
                self._received.add(report.received_at)
        if self.pending:
            self._dirty.set()
        self.metrics.unpublished.set(self.pending)
        if moved:
            await retrying(self.metrics, "forward", lambda: self.forward(moved), self.retry_pause)
        if records:
            spans = await self._append(records)
            for p, runs in spans.items():
                state = self.parts.get(p)
                if state is not None:
                    state.appended(runs)
        await send_dead_letters(self.dead_letter, self.metrics, rejected, self.retry_pause)
        for outcome, n in outcomes.items():
            if outcome != Outcome.REJECTED:
                self.metrics.reports.labels(outcome).inc(n)

    async def _decoded(self, messages: Sequence[RawMessage]) -> list[tuple[RawMessage, Report | Rejected, bool]]:
        """The messages of the partitions still ours, decoded (decode.py), with whether each was
        produced straight to Kafka. A unit not in the registry makes it read again, once a batch
        (an agency registered moments ago elsewhere); the approvals of the batch's direct
        reports are then read at once (``_locked`` finds them in the cache)."""
        out: list[tuple[RawMessage, Report | Rejected, bool]] = []
        refreshed = False
        for m in messages:
            if m.partition not in self.parts:
                continue
            report, direct = decode_direct(m.value, m.timestamp_ms, self.catalog, self.tree, m.origin, self.trust)
            if isinstance(report, Rejected) and report.reason == "unknown_unit" and not refreshed:
                if self.refresh_registry is not None:
                    refreshed = True
                    await retrying(self.metrics, "registry", self.refresh_registry, self.retry_pause)
                    report, direct = decode_direct(
                        m.value, m.timestamp_ms, self.catalog, self.tree, m.origin, self.trust
                    )
            out.append((m, report, direct))
        approvals = self.approvals
        pairs = {(r.unit, r.series) for _, r, direct in out if direct and isinstance(r, Report)}
        if approvals is not None and pairs:
            await retrying(self.metrics, "approvals", lambda: approvals.prefetch(pairs), self.retry_pause)
        return out

    async def _locked(self, state: PartitionState, report: Report) -> Rejected | None:
        """Why a report produced straight to Kafka is refused by an approval made before the
        broker appended it (shared/domain/approvals.py), else None: one cached read of its
        (unit, series)'s approvals (read for the whole batch by ``_decoded``); the entry is read
        only for a locked report, which stays a duplicate (or a stale revision) when its
        revision is not newer than the one counted. Approvals that cannot be read are waited
        for, never skipped."""
        if self.approvals is None:
            return None
        approvals = self.approvals

        async def standing() -> Any:
            return await approvals.standing(report.unit, report.series)

        approval = kafka_lock(
            await retrying(self.metrics, "approvals", standing, self.retry_pause), report.period, report.received_at
        )
        if approval is None:
            return None
        counted = state.rollup.entries.get(entry_key(report.unit, report.report_id))
        if counted is not None and report.revision <= counted.revision:
            return None  # the roll-up answers duplicate (or stale): nothing changes
        return Rejected("approved", kafka_locked_message(approval, report.received_at))

    async def _append(self, records: list[Record]) -> Spans:
        """Append to the changelog until it succeeds. A failed attempt may have written some
        records, which the next one writes again: their partitions then hold records of ours we
        were not told of, read back before their next snapshot."""

        async def attempt() -> Spans:
            try:
                return await self.changelog.append(records)
            except Exception:
                for p in {p for p, _, _ in records}:
                    if p in self.parts:
                        self.parts[p].gap = True
                raise

        spans: Spans = await retrying(self.metrics, "changelog", attempt, self.retry_pause)
        return spans

    # ------------------------------------------------------------------ publishing and writing

    async def publish_forever(self, interval: float) -> None:
        """Publish what changed, one publication at a time, each starting once something changed
        and ``interval`` has passed since the previous one started, or PAUSE_PER_BUILD times the
        processor time that one spent building its messages (PAUSE_PER_BUILD_IN_BACKLOG while the
        agent's batches come full), whichever is longer (so building them takes a bounded share
        of the worker's time: at a light load publications come
        every ``interval``, under a backlog they come less often and each coalesces more, a
        province's documents going out once per publication, not once per batch). The database
        is written behind, by :meth:`write_forever`, and holds up the stream only when more than
        UNWRITTEN_LIMIT published documents wait for it. The first publication comes ``interval``
        after the start, so a huge interval means none at all (a test's worker that must die with
        its view behind)."""
        started = time.perf_counter()
        while True:
            per_build = PAUSE_PER_BUILD_IN_BACKLOG if self.in_backlog else PAUSE_PER_BUILD
            # a backlog lasts while full batches come: without a batch until the next publication,
            # what is left is published at the lighter pace (a drained backlog's tail included)
            self.in_backlog = False
            pause = max(interval, per_build * self._last_build_seconds)
            await asyncio.sleep(max(0.0, pause - (time.perf_counter() - started)))
            await self._dirty.wait()
            while len(self._unwritten) >= UNWRITTEN_LIMIT:  # the database is behind: it sets the pace
                await self._taken.wait()
            self._dirty.clear()
            started = time.perf_counter()
            try:
                await self.publish_changes()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug: say so, keep the worker going (publishing retries I/O itself)
                log.exception("publishing failed")

    async def write_forever(self, interval: float) -> None:
        """Write what was published to MongoDB, one bulk write at a time and at most one per
        ``interval``, each taking the latest published form of every document published since
        the previous one began: the slower the database, or the longer the interval, the more each
        write coalesces (a province's documents written once per write). Readers do not wait for
        it: the API serves what was published (services/api/cache.py)."""
        started = time.perf_counter()
        while True:
            await asyncio.sleep(max(0.0, interval - (time.perf_counter() - started)))
            await self._unwritten_event.wait()
            self._unwritten_event.clear()
            started = time.perf_counter()
            try:
                await self.write_view()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug: say so, keep the worker going (the write retries I/O itself)
                log.exception("writing the view failed")

    async def backpressure(self, limit: int) -> None:
        """Wait for the publication in progress when more than ``limit`` documents have changed
        since it began, so what waits to be published stays bounded."""
        if self.pending >= limit and self._publish_lock.locked():
            async with self._publish_lock:
                pass

    async def flush(self) -> int:
        """Publish everything that changed and write it to the view; returns the documents
        written."""
        while await self.publish_changes():
            pass
        return await self.write_view()

    async def publish_changes(self) -> int:
        """Publish the documents changed since they were last published (at most
        PUBLICATION_LIMIT; the rest wait for the next publication) on the totals stream and queue
        them for the view; returns the documents published."""
        async with self._publish_lock:
            started, building = time.perf_counter(), time.thread_time()
            now = datetime.now(UTC)
            messages: list[tuple[bytes, bytes]] = []
            published: dict[str, tuple[int, dict[str, Any] | None, int]] = {}
            # Everything up to the first await happens at once: each document is published as it
            # is at one moment.
            for partition, state in list(self.parts.items()):
                rollup = state.rollup
                for doc_id in rollup.take_changed(PUBLICATION_LIMIT - len(messages)):
                    doc = rollup.docs[doc_id]
                    version = next_version(state.versions.get(doc_id, 0))
                    state.versions[doc_id] = version
                    stored = to_stored(doc, version, partition, now)
                    messages.append(encode(totals_message(stored)))
                    if doc.periods:
                        published[doc_id] = (version, stored, partition)
                    else:
                        published[doc_id] = (version, None, partition)  # all its figures were withdrawn
                        del rollup.docs[doc_id]
            self.pending = sum(len(state.rollup.changed) for state in self.parts.values())
            self.metrics.unpublished.set(self.pending)
            everything = not self.pending
            if not everything:
                self._dirty.set()  # more to publish next time
            # processor time, not wall time: on a busy machine waiting for a core is not building
            self._last_build_seconds = time.thread_time() - building
            if not messages:
                return 0
            # The stream first, MongoDB after: a crash between the two leaves MongoDB behind,
            # which the next owner's comparison after restoring sees and repairs (a stream behind
            # MongoDB it could not). So only what the broker has acknowledged is queued for writing.
            self._publishing = {doc_id: p for doc_id, (_, _, p) in published.items()}
            try:
                await retrying(self.metrics, "publish", lambda: self.publish(messages), self.retry_pause)
                self._unwritten.update(published)
            finally:
                self._publishing = {}
            self._unwritten_event.set()
            self.metrics.unwritten.set(len(self._unwritten))
            self.metrics.flush_seconds.observe(time.perf_counter() - started)
            self.metrics.flush_size.observe(len(messages))
            if everything:  # every report applied so far is now wholly published
                self._received.observe_all(time.time())
            return len(messages)

    async def write_view(self) -> int:
        """Write the latest published form of every document published since the last write
        (unordered bulk writes, each document guarded by its version); returns how many."""
        async with self._write_lock:
            batch, self._unwritten = self._unwritten, {}
            self._taken.set()  # wake a publication waiting for room, then re-arm
            self._taken = asyncio.Event()
            if not batch:
                return 0
            started = time.perf_counter()
            docs = [stored for _, stored, _ in batch.values() if stored is not None]
            deletes = [(doc_id, version) for doc_id, (version, stored, _) in batch.items() if stored is None]
            self._writing = {doc_id: p for doc_id, (_, _, p) in batch.items()}
            try:
                await retrying(self.metrics, "database", lambda: self.view.write(docs, deletes), self.retry_pause)
            finally:
                self._writing = {}
            self.metrics.unwritten.set(len(self._unwritten))
            self.metrics.write_seconds.observe(time.perf_counter() - started)
            self.metrics.write_size.observe(len(batch))
            return len(batch)
