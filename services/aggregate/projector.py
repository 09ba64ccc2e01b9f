"""Applies a batch of reports from one Kafka partition to the totals, exactly once in effect.

Order of writes, and why it makes redelivery harmless:

1. Get the ledgers of the batch's units. A message at or below its ledger's watermark was fully
   applied before (its totals were written before its ledger), so it is skipped.
   A batch may hold messages of several partitions (all that one worker took at once); each
   partition has its own watermarks, and each document gets one write for all of them.
2. Apply the rest to copies of the ledgers (shared.rollup) and collect the deltas, coalesced:
   one write per changed totals document per batch, however many reports touched it.
3. Get the totals documents and leave out, per document, the deltas it already holds (its
   watermark for the message's partition); write the rest, each conditional on the document's version.
   A conflict (another worker wrote in between) re-reads those documents and recomputes.
4. Only then write the ledgers. A crash between 3 and 4 replays the batch: the ledgers are as
   before, the deltas come out the same, and the watermarks keep the written ones from counting
   twice.

Kafka offsets are committed after the batch (faust acks the events when the agent moves on);
committing is only an optimisation: the watermarks, not the committed offset, decide.

The projector keeps what it last read or wrote in two bounded caches (ledgers, counted by their
report entries; totals, by documents), so a steady stream costs writes only, not a read before
every write. A cached document is exactly what the database held at some version: the version
check in step 3 turns a stale one into a conflict and a re-read, never into a wrong sum. A
cached ledger is the ledger after some offset of this partition; it is only valid while this
worker owns the partition without a gap, so the worker calls ``forget()`` on every rebalance,
and any failed write forgets everything.
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from services.aggregate.store import LedgerWrite, StoredLedger, TotalsStore, TotalWrite
from shared.catalog import Catalog
from shared.hierarchy import OrgTree
from shared.rollup import LedgerEntry, Outcome, Report, TotalKey, UnitLedger, apply_report, without_zeros

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 20
DEFAULT_CACHE_DOCUMENTS = 50_000
# A ledger holds one entry per report its unit ever sent, so the ledger cache is bounded by
# entries, not ledgers: the worker's memory then follows this figure and the totals documents
# (the hierarchy), not the number of reports. About 450 bytes an entry (bench/ measures it).
DEFAULT_CACHE_LEDGER_ENTRIES = 200_000

K = TypeVar("K")
V = TypeVar("V")


class ConflictPersisted(RuntimeError):
    """Another writer kept changing the same documents; the batch was not applied."""


class Lru(Generic[K, V]):
    """A dict that forgets its least recently used entries once their total weight passes
    ``capacity``. Each entry weighs ``weight(value)``, 1 unless told otherwise."""

    def __init__(self, capacity: int, weight: Callable[[V], int] | None = None) -> None:
        self.capacity = capacity
        self._weigh = weight or (lambda _: 1)
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self.weight = 0

    def get(self, key: K) -> V | None:
        item = self._items.get(key)
        if item is None:
            return None
        self._items.move_to_end(key)
        return item[0]

    def put(self, key: K, value: V) -> None:
        self.pop(key)
        w = self._weigh(value)
        self._items[key] = (value, w)
        self.weight += w
        while self.weight > self.capacity:
            _, (_, evicted) = self._items.popitem(last=False)
            self.weight -= evicted

    def pop(self, key: K) -> None:
        item = self._items.pop(key, None)
        if item is not None:
            self.weight -= item[1]

    def clear(self) -> None:
        self._items.clear()
        self.weight = 0

    def __len__(self) -> int:
        return len(self._items)


@dataclass(frozen=True)
class Positioned:
    partition: int
    offset: int
    report: Report


@dataclass
class BatchResult:
    outcomes: Counter[str] = field(default_factory=Counter)
    written: list[TotalKey] = field(default_factory=list)
    # every document the batch changed, now or in an earlier attempt, as stored after it
    touched: dict[str, dict[str, Any]] = field(default_factory=dict)
    rejected: list[tuple[Positioned, str]] = field(default_factory=list)
    attempts: int = 1
    reads: int = 0  # documents read from the database (cache misses and conflicts)


ABSENT: dict[str, Any] = {}  # cached "no such document yet"


def _after_write(doc: dict[str, Any], write: TotalWrite) -> dict[str, Any]:
    """The document as the database holds it after ``write`` matched ``doc``."""
    if doc:
        # a copy deep enough for what a write changes: the counters, the sums, the watermarks
        out = dict(doc)
        out["sums"] = dict(doc.get("sums") or {})
        out["wm"] = dict(doc.get("wm") or {})
    else:
        out = {
            "_id": write.key.id,
            "unit": write.key.unit,
            "series": write.key.series,
            "period": write.key.period,
            "parents": list(write.parents),
        }
    for name, value in write.inc.items():
        target = out
        *path, leaf = name.split(".")
        for part in path:
            target = target.setdefault(part, {})
        target[leaf] = target.get(leaf, 0) + value
    out["version"] = out.get("version", 0) + 1
    marks = out.setdefault("wm", {})
    for partition, offset in write.watermarks.items():
        marks[str(partition)] = offset
    return out


class Projector:
    def __init__(
        self,
        store: TotalsStore,
        tree: OrgTree,
        catalog: Catalog,
        cache_documents: int = DEFAULT_CACHE_DOCUMENTS,
        cache_ledger_entries: int = DEFAULT_CACHE_LEDGER_ENTRIES,
    ) -> None:
        self.store = store
        self.tree = tree
        self.catalog = catalog
        self._totals: Lru[str, dict[str, Any]] = Lru(cache_documents)
        self._ledgers: Lru[tuple[str, int], StoredLedger] = Lru(
            cache_ledger_entries, weight=lambda s: 1 + len(s.ledger.entries)
        )
        self._generation = 0

    def forget(self) -> None:
        """Drop both caches (partitions were revoked or assigned, or a write failed)."""
        self._generation += 1
        self._totals.clear()
        self._ledgers.clear()

    @property
    def cached(self) -> tuple[int, int]:
        return len(self._ledgers), len(self._totals)

    async def apply(self, messages: list[Positioned]) -> BatchResult:
        """Apply messages of any partitions (in offset order within each) as one batch."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                result = await self._try_apply(messages)
            except BaseException:
                self.forget()  # a write may or may not have happened: trust nothing cached
                raise
            if result is not None:
                result.attempts = attempt
                return result
            log.info("write conflict, recomputing batch", extra={"attempt": attempt})
        raise ConflictPersisted(f"batch still conflicting after {MAX_ATTEMPTS} attempts")

    async def _ledgers_for(
        self, wanted: Iterable[tuple[str, int]], result: BatchResult
    ) -> dict[tuple[str, int], StoredLedger]:
        """Ledgers by (unit, partition): a unit's messages normally all come from one partition,
        but its ledger keeps a watermark per partition in case the topic is repartitioned."""
        out: dict[tuple[str, int], StoredLedger] = {}
        missing: dict[int, list[str]] = {}
        for key in dict.fromkeys(wanted):
            cached = self._ledgers.get(key)
            if cached is None:
                missing.setdefault(key[1], []).append(key[0])
            else:
                out[key] = cached
        for partition, units in missing.items():
            loaded = await self.store.load_ledgers(units, partition)
            result.reads += len(units)
            for unit, stored in loaded.items():
                self._ledgers.put((unit, partition), stored)
                out[(unit, partition)] = stored
        return out

    async def _totals_for(self, ids: Iterable[str], result: BatchResult) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        missing = []
        for i in ids:
            cached = self._totals.get(i)
            if cached is None:
                missing.append(i)
            else:
                out[i] = cached
        if missing:
            loaded = await self.store.read_totals(missing)
            result.reads += len(missing)
            for i in missing:
                doc = loaded.get(i, ABSENT)
                self._totals.put(i, doc)
                out[i] = doc
        return out

    async def _try_apply(self, messages: list[Positioned]) -> BatchResult | None:
        generation = self._generation
        result = BatchResult()
        stored = await self._ledgers_for(((m.report.unit, m.partition) for m in messages), result)
        # copies: the cached ledgers change only once the batch is written
        ledgers = {k: UnitLedger(k[0], dict(s.ledger.entries)) for k, s in stored.items()}
        # per document: (partition, offset, delta) of each message that changes it
        deltas: dict[TotalKey, list[tuple[int, int, dict[str, int]]]] = {}
        changed: dict[tuple[str, int], tuple[int, dict[str, LedgerEntry]]] = {}

        for m in messages:
            key = (m.report.unit, m.partition)
            mark = stored[key].watermark
            if mark is not None and m.offset <= mark:
                result.outcomes["replayed"] += 1
                continue
            applied = apply_report(ledgers[key], m.report, self.catalog, self.tree)
            result.outcomes[applied.outcome.value] += 1
            if applied.outcome == Outcome.REJECTED:
                result.rejected.append((m, applied.reason))
                continue
            if applied.changed_entry is not None:
                _, entries = changed.get(key, (m.offset, {}))
                entries[m.report.report_id] = applied.changed_entry
                changed[key] = (m.offset, entries)
            for total_key, inc in applied.deltas.items():
                deltas.setdefault(total_key, []).append((m.partition, m.offset, inc))

        docs = await self._totals_for((k.id for k in deltas), result)
        writes: list[TotalWrite] = []
        for total_key, items in deltas.items():
            doc = docs[total_key.id]
            marks = doc.get("wm") or {}
            total: dict[str, int] = {}
            watermarks: dict[int, int] = {}
            for partition, offset, inc in items:
                mark = marks.get(str(partition))
                if mark is not None and offset <= mark:
                    continue  # this document already holds it
                watermarks[partition] = max(offset, watermarks.get(partition, offset))
                for name, value in inc.items():
                    total[name] = total.get(name, 0) + value
            total = without_zeros(total)
            if not total:
                continue
            writes.append(
                TotalWrite(
                    key=total_key,
                    parents=tuple(self.tree.path(total_key.unit)),
                    expected_version=doc.get("version"),
                    watermarks=watermarks,
                    inc=total,
                )
            )
        conflicts = await self.store.write_totals(writes)
        for w in writes:
            if w.key.id in conflicts:
                self._totals.pop(w.key.id)
                continue
            docs[w.key.id] = _after_write(docs[w.key.id], w)
            if generation == self._generation:
                self._totals.put(w.key.id, docs[w.key.id])
        if conflicts:
            return None
        ledger_writes = [LedgerWrite(u, p, offset, entries) for (u, p), (offset, entries) in changed.items()]
        await self.store.write_ledgers(ledger_writes)
        if generation == self._generation:
            for lw in ledger_writes:
                key = (lw.unit, lw.partition)
                self._ledgers.put(key, StoredLedger(ledgers[key], lw.new_watermark))
        result.written = [w.key for w in writes]
        result.touched = {k.id: docs[k.id] for k in deltas if docs[k.id] is not ABSENT}
        return result
