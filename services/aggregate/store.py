"""The aggregator's port to its database, with the MongoDB adapter and an in-memory fake.

Idempotency lives here, in the shape of the writes. Every totals document and every ledger
records, per Kafka partition, the offset of the last message whose effect it holds (``wm.<p>``,
a watermark). A write is conditional on the watermark the writer read, so:

* a redelivered message whose offset is at or below a document's watermark is not added again;
* two workers that briefly both think they own a partition (a rebalance, a worker killed with
  SIGKILL and replaced) cannot both add the same delta: the second write finds a watermark it did
  not read, matches nothing, and its batch is recomputed from fresh reads.

Both adapters pass tests/contract/test_totals_store_contract.py.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from pymongo import AsyncMongoClient, UpdateOne
from pymongo.errors import BulkWriteError

from shared.mongo import LEDGERS, TOTALS
from shared.rollup import LedgerEntry, TotalKey, UnitLedger

DUPLICATE_KEY = 11000


@dataclass(frozen=True)
class StoredLedger:
    ledger: UnitLedger
    watermark: int | None  # offset of the last message of this partition it holds


@dataclass(frozen=True)
class TotalWrite:
    key: TotalKey
    parents: tuple[str, ...]  # the unit and its ancestors, for subtree queries
    expected_watermark: int | None  # what the writer read; None: no document or no mark yet
    new_watermark: int
    inc: dict[str, int]


@dataclass(frozen=True)
class LedgerWrite:
    unit: str
    new_watermark: int
    entries: dict[str, LedgerEntry] = field(default_factory=dict)


class TotalsStore(Protocol):
    async def load_ledgers(self, units: Iterable[str], partition: int) -> dict[str, StoredLedger]: ...

    async def load_watermarks(self, ids: Iterable[str], partition: int) -> dict[str, int | None]: ...

    async def write_totals(self, partition: int, writes: list[TotalWrite]) -> int:
        """Apply the writes whose document still has the expected watermark; return how many did
        not (conflicts). Those that matched are applied whatever happens to the others."""
        ...

    async def write_ledgers(self, partition: int, writes: list[LedgerWrite]) -> None:
        """Store ledger entries unless the ledger already holds a later offset."""
        ...

    async def read_totals(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]: ...


def _ledger_from_doc(unit: str, doc: dict[str, Any] | None, partition: int) -> StoredLedger:
    if doc is None:
        return StoredLedger(UnitLedger(unit), None)
    entries = {rid: LedgerEntry.from_doc(e) for rid, e in (doc.get("reports") or {}).items()}
    wm = (doc.get("wm") or {}).get(str(partition))
    return StoredLedger(UnitLedger(unit, entries), None if wm is None else int(wm))


class MongoTotalsStore:
    def __init__(self, client: AsyncMongoClient[dict[str, Any]], database: str) -> None:
        db = client[database]
        self._totals = db[TOTALS]
        self._ledgers = db[LEDGERS]

    async def load_ledgers(self, units: Iterable[str], partition: int) -> dict[str, StoredLedger]:
        wanted = list(dict.fromkeys(units))
        found = {d["_id"]: d async for d in self._ledgers.find({"_id": {"$in": wanted}})}
        return {u: _ledger_from_doc(u, found.get(u), partition) for u in wanted}

    async def load_watermarks(self, ids: Iterable[str], partition: int) -> dict[str, int | None]:
        key = f"wm.{partition}"
        out: dict[str, int | None] = {}
        async for d in self._totals.find({"_id": {"$in": list(ids)}}, projection={key: 1}):
            wm = (d.get("wm") or {}).get(str(partition))
            out[d["_id"]] = None if wm is None else int(wm)
        return out

    async def write_totals(self, partition: int, writes: list[TotalWrite]) -> int:
        if not writes:
            return 0
        key = f"wm.{partition}"
        ops = []
        for w in writes:
            guard: dict[str, Any] = (
                {key: {"$exists": False}} if w.expected_watermark is None else {key: w.expected_watermark}
            )
            ops.append(
                UpdateOne(
                    {"_id": w.key.id, **guard},
                    {
                        # version: bumped by every write, so stream consumers can order changes
                        "$inc": {**w.inc, "version": 1},
                        "$set": {key: w.new_watermark},
                        "$setOnInsert": {
                            "unit": w.key.unit,
                            "series": w.key.series,
                            "period": w.key.period,
                            "parents": list(w.parents),
                        },
                    },
                    upsert=True,  # a document that exists but fails the guard: duplicate key
                )
            )
        try:
            result = await self._totals.bulk_write(ops, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            other = [e for e in errors if e.get("code") != DUPLICATE_KEY]
            if other:
                raise
            return len(errors)
        return len(writes) - (result.matched_count + result.upserted_count)

    async def write_ledgers(self, partition: int, writes: list[LedgerWrite]) -> None:
        if not writes:
            return
        key = f"wm.{partition}"
        ops = [
            UpdateOne(
                {
                    "_id": w.unit,
                    "$or": [{key: {"$exists": False}}, {key: {"$lt": w.new_watermark}}],
                },
                {
                    "$set": {
                        key: w.new_watermark,
                        **{f"reports.{rid}": e.to_doc() for rid, e in w.entries.items()},
                    }
                },
                upsert=True,
            )
            for w in writes
        ]
        try:
            await self._ledgers.bulk_write(ops, ordered=False)
        except BulkWriteError as exc:
            # A duplicate key here means another worker already stored a later state: fine.
            if any(e.get("code") != DUPLICATE_KEY for e in exc.details.get("writeErrors", [])):
                raise

    async def read_totals(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        return {d["_id"]: d async for d in self._totals.find({"_id": {"$in": list(ids)}})}


class InMemoryTotalsStore:
    """The fake: dictionaries with the same conditional-write semantics as MongoTotalsStore."""

    def __init__(self) -> None:
        self.totals: dict[str, dict[str, Any]] = {}
        self.ledgers: dict[str, dict[str, Any]] = {}

    async def load_ledgers(self, units: Iterable[str], partition: int) -> dict[str, StoredLedger]:
        wanted = list(dict.fromkeys(units))
        return {u: _ledger_from_doc(u, copy.deepcopy(self.ledgers.get(u)), partition) for u in wanted}

    async def load_watermarks(self, ids: Iterable[str], partition: int) -> dict[str, int | None]:
        out: dict[str, int | None] = {}
        for i in ids:
            if i in self.totals:
                out[i] = self.totals[i].get("wm", {}).get(str(partition))
        return out

    async def write_totals(self, partition: int, writes: list[TotalWrite]) -> int:
        conflicts = 0
        p = str(partition)
        for w in writes:
            doc = self.totals.get(w.key.id)
            current = None if doc is None else doc.get("wm", {}).get(p)
            if current != w.expected_watermark:
                conflicts += 1
                continue
            if doc is None:
                doc = self.totals[w.key.id] = {
                    "_id": w.key.id,
                    "unit": w.key.unit,
                    "series": w.key.series,
                    "period": w.key.period,
                    "parents": list(w.parents),
                }
            for name, value in {**w.inc, "version": 1}.items():
                target = doc
                *path, leaf = name.split(".")
                for part in path:
                    target = target.setdefault(part, {})
                target[leaf] = target.get(leaf, 0) + value
            doc.setdefault("wm", {})[p] = w.new_watermark
        return conflicts

    async def write_ledgers(self, partition: int, writes: list[LedgerWrite]) -> None:
        p = str(partition)
        for w in writes:
            doc = self.ledgers.setdefault(w.unit, {"_id": w.unit})
            current = doc.get("wm", {}).get(p)
            if current is not None and current >= w.new_watermark:
                continue
            doc.setdefault("wm", {})[p] = w.new_watermark
            reports = doc.setdefault("reports", {})
            for rid, e in w.entries.items():
                reports[rid] = e.to_doc()

    async def read_totals(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        return {i: copy.deepcopy(self.totals[i]) for i in ids if i in self.totals}
