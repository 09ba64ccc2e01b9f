"""Applies a batch of reports from one Kafka partition to the totals, exactly once in effect.

Order of writes, and why it makes redelivery harmless:

1. Read the ledgers of the batch's units. A message at or below its ledger's watermark was fully
   applied before (its totals were written before its ledger), so it is skipped.
2. Apply the rest to the ledgers in memory (shared.rollup) and collect the deltas, coalesced:
   one write per changed totals document per batch, however many reports touched it.
3. Read the totals' watermarks and leave out, per document, the deltas it already holds; write
   the rest, each conditional on the watermark read. A conflict (another worker wrote in between)
   recomputes the batch from fresh reads.
4. Only then write the ledgers. A crash between 3 and 4 replays the batch: the ledgers are as
   before, the deltas come out the same, and the watermarks keep the written ones from counting
   twice.

Kafka offsets are committed after the batch (faust acks the events when the agent moves on);
committing is only an optimisation: the watermarks, not the committed offset, decide.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

from services.aggregate.store import LedgerWrite, TotalsStore, TotalWrite
from shared.catalog import Catalog
from shared.hierarchy import OrgTree
from shared.rollup import LedgerEntry, Outcome, Report, TotalKey, UnitLedger, apply_report, without_zeros

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 20


class ConflictPersisted(RuntimeError):
    """Another writer kept changing the same documents; the batch was not applied."""


@dataclass(frozen=True)
class Positioned:
    offset: int
    report: Report


@dataclass
class BatchResult:
    outcomes: Counter[str] = field(default_factory=Counter)
    written: list[TotalKey] = field(default_factory=list)
    touched: list[TotalKey] = field(default_factory=list)  # written now or by an earlier attempt
    rejected: list[tuple[Positioned, str]] = field(default_factory=list)
    attempts: int = 1


class Projector:
    def __init__(self, store: TotalsStore, tree: OrgTree, catalog: Catalog) -> None:
        self.store = store
        self.tree = tree
        self.catalog = catalog

    async def apply(self, partition: int, messages: list[Positioned]) -> BatchResult:
        for attempt in range(1, MAX_ATTEMPTS + 1):
            result = await self._try_apply(partition, messages)
            if result is not None:
                result.attempts = attempt
                return result
            log.info("write conflict, recomputing batch", extra={"partition": partition, "attempt": attempt})
        raise ConflictPersisted(f"partition {partition}: batch still conflicting after {MAX_ATTEMPTS} attempts")

    async def _try_apply(self, partition: int, messages: list[Positioned]) -> BatchResult | None:
        result = BatchResult()
        stored = await self.store.load_ledgers((m.report.unit for m in messages), partition)
        ledgers: dict[str, UnitLedger] = {u: s.ledger for u, s in stored.items()}
        deltas: dict[TotalKey, list[tuple[int, dict[str, int]]]] = {}
        changed: dict[str, tuple[int, dict[str, LedgerEntry]]] = {}

        for m in messages:
            unit = m.report.unit
            mark = stored[unit].watermark
            if mark is not None and m.offset <= mark:
                result.outcomes["replayed"] += 1
                continue
            applied = apply_report(ledgers[unit], m.report, self.catalog, self.tree)
            result.outcomes[applied.outcome.value] += 1
            if applied.outcome == Outcome.REJECTED:
                result.rejected.append((m, applied.reason))
                continue
            if applied.changed_entry is not None:
                _, entries = changed.get(unit, (m.offset, {}))
                entries[m.report.report_id] = applied.changed_entry
                changed[unit] = (m.offset, entries)
            for key, inc in applied.deltas.items():
                deltas.setdefault(key, []).append((m.offset, inc))

        marks = await self.store.load_watermarks((k.id for k in deltas), partition)
        writes: list[TotalWrite] = []
        for key, items in deltas.items():
            mark = marks.get(key.id)
            fresh = [(o, inc) for o, inc in items if mark is None or o > mark]
            if not fresh:
                continue
            total: dict[str, int] = {}
            for _, inc in fresh:
                for name, value in inc.items():
                    total[name] = total.get(name, 0) + value
            total = without_zeros(total)
            if not total:
                continue
            writes.append(
                TotalWrite(
                    key=key,
                    parents=tuple(self.tree.path(key.unit)),
                    expected_watermark=mark,
                    new_watermark=max(o for o, _ in fresh),
                    inc=total,
                )
            )
        conflicts = await self.store.write_totals(partition, writes)
        if conflicts:
            return None
        await self.store.write_ledgers(
            partition,
            [LedgerWrite(unit, offset, entries) for unit, (offset, entries) in changed.items()],
        )
        result.written = [w.key for w in writes]
        result.touched = list(deltas)
        return result
