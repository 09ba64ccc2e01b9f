"""The aggregator's port to its database, with the MongoDB adapter and an in-memory fake.

Idempotency lives here, in the shape of the writes. Every totals document and every ledger
records, per Kafka partition, the offset of the last message whose effect it holds (``wm.<p>``,
a watermark), and every totals document carries a ``version`` that each write increments:

* a totals write is conditional on the version the writer last saw (compare-and-set). If any
  other write came in between, it matches nothing and the writer re-reads that document;
* a redelivered message whose offset is at or below a document's watermark is not added again;
* so two workers that briefly both think they own a partition (a rebalance, a worker killed
  with SIGKILL and replaced) cannot both add the same delta.

Every write and read names documents by ``_id``, the one thing every MongoDB-compatible server
indexes. Both adapters pass tests/contract/test_totals_store_contract.py.
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
    expected_version: int | None  # the version the writer last saw; None: no document yet
    watermarks: dict[int, int]  # partition -> offset of the last message whose delta is in inc
    inc: dict[str, int]


@dataclass(frozen=True)
class LedgerWrite:
    unit: str
    partition: int
    new_watermark: int
    entries: dict[str, LedgerEntry] = field(default_factory=dict)


class TotalsStore(Protocol):
    async def load_ledgers(self, units: Iterable[str], partition: int) -> dict[str, StoredLedger]: ...

    async def write_totals(self, writes: list[TotalWrite]) -> set[str]:
        """Apply the writes whose document still has the expected version; return the ids of
        those that did not (conflicts). Those that matched are applied whatever happens to the
        others."""
        ...

    async def write_ledgers(self, writes: list[LedgerWrite]) -> None:
        """Store ledger entries unless the ledger already holds a later offset."""
        ...

    async def read_totals(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]: ...

    async def read_versions(self, ids: Iterable[str]) -> dict[str, int]: ...


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

    async def write_totals(self, writes: list[TotalWrite]) -> set[str]:
        if not writes:
            return set()
        ops = []
        for w in writes:
            guard: dict[str, Any] = {"version": w.expected_version}
            if w.expected_version is None:
                guard = {"version": {"$exists": False}}
            ops.append(
                UpdateOne(
                    {"_id": w.key.id, **guard},
                    {
                        # version: bumped by every write, so stream consumers can order changes
                        "$inc": {**w.inc, "version": 1},
                        "$set": {f"wm.{p}": offset for p, offset in w.watermarks.items()},
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
            if any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise
            conflicts = {writes[e["index"]].key.id for e in errors}
            result_details = exc.details
            matched = result_details.get("nMatched", 0) + len(result_details.get("upserted", []))
        else:
            conflicts = set()
            matched = result.matched_count + result.upserted_count
        if matched + len(conflicts) == len(writes):
            return conflicts
        # Not every write is accounted for (a server that reports a failed guard differently):
        # ask for the versions. A write taken for a conflict by mistake is only re-read and
        # skipped by its watermark.
        versions = await self.read_versions([w.key.id for w in writes])
        return conflicts | {w.key.id for w in writes if versions.get(w.key.id) != (w.expected_version or 0) + 1}

    async def write_ledgers(self, writes: list[LedgerWrite]) -> None:
        if not writes:
            return
        ops = [
            UpdateOne(
                {
                    "_id": w.unit,
                    "$or": [{f"wm.{w.partition}": {"$exists": False}}, {f"wm.{w.partition}": {"$lt": w.new_watermark}}],
                },
                {
                    "$set": {
                        f"wm.{w.partition}": w.new_watermark,
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

    async def read_versions(self, ids: Iterable[str]) -> dict[str, int]:
        found = self._totals.find({"_id": {"$in": list(ids)}}, projection={"version": 1})
        return {d["_id"]: int(d.get("version", 0)) async for d in found}


class InMemoryTotalsStore:
    """The fake: dictionaries with the same conditional-write semantics as MongoTotalsStore."""

    def __init__(self) -> None:
        self.totals: dict[str, dict[str, Any]] = {}
        self.ledgers: dict[str, dict[str, Any]] = {}

    async def load_ledgers(self, units: Iterable[str], partition: int) -> dict[str, StoredLedger]:
        wanted = list(dict.fromkeys(units))
        return {u: _ledger_from_doc(u, copy.deepcopy(self.ledgers.get(u)), partition) for u in wanted}

    async def write_totals(self, writes: list[TotalWrite]) -> set[str]:
        conflicts = set()
        for w in writes:
            doc = self.totals.get(w.key.id)
            current = None if doc is None else doc.get("version")
            if current != w.expected_version:
                conflicts.add(w.key.id)
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
            for partition, offset in w.watermarks.items():
                doc.setdefault("wm", {})[str(partition)] = offset
        return conflicts

    async def write_ledgers(self, writes: list[LedgerWrite]) -> None:
        for w in writes:
            p = str(w.partition)
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

    async def read_versions(self, ids: Iterable[str]) -> dict[str, int]:
        return {i: int(self.totals[i].get("version", 0)) for i in ids if i in self.totals}
