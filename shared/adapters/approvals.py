"""Where approvals are kept: a port (``ApprovalStore``), its MongoDB adapter and an in-memory fake;
both pass tests/contract/test_approval_store_contract.py. ``CachedApprovals`` is ingest's and the
aggregator's view of the store, read through a short cache.

The MongoDB documents (collection ``approvals``, written and read like everything that decides
access: ``access_collection``): ``_id`` ``<unit>/<series>/<period>``, and the approval's fields by
name (``path`` a list). An approval is added only when none stands for its id (the unique
``_id``), and removed only when it is still the one the remover read (its ``nonce``): two
approvers racing get one approval, and an unapproval decided on an approval that was replaced
meanwhile removes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any, Protocol

from pymongo import AsyncMongoClient
from pymongo.errors import DuplicateKeyError

from shared.adapters.mongo import access_collection
from shared.domain.approvals import AlreadyApproved, Approval, approval_id

APPROVALS = "approvals"
CACHE_SECONDS = 5.0  # ingest sees an approval or an unapproval at most this long after it is made
CACHE_ENTRIES = 100_000  # (unit, series, period) answers kept; past this the cache starts afresh


class ApprovalStore(Protocol):
    async def add(self, approval: Approval) -> None:
        """Keeps ``approval``; :class:`AlreadyApproved` (naming the standing one) when its
        (unit, series, period) is approved already."""

    async def get(self, unit: str, series: str, period: str) -> Approval | None: ...

    async def remove(self, approval: Approval) -> bool:
        """Removes ``approval`` if it still stands as read (same nonce); whether it did."""
        ...

    async def listing(self, unit: str, period: str) -> list[Approval]:
        """The approvals of ``period`` for ``unit`` and every unit under it, by unit then series."""
        ...

    async def of_unit(self, unit: str, series: str) -> list[Approval]:
        """Every approval of (unit, series), whatever its period, by period."""
        ...


def _sorted(approvals: Sequence[Approval]) -> list[Approval]:
    return sorted(approvals, key=lambda a: (a.unit, a.series))


class InMemoryApprovalStore:
    def __init__(self) -> None:
        self.approvals: dict[str, Approval] = {}

    async def add(self, approval: Approval) -> None:
        standing = self.approvals.get(approval.id)
        if standing is not None:
            raise AlreadyApproved(standing)
        self.approvals[approval.id] = approval

    async def get(self, unit: str, series: str, period: str) -> Approval | None:
        return self.approvals.get(approval_id(unit, series, period))

    async def remove(self, approval: Approval) -> bool:
        standing = self.approvals.get(approval.id)
        if standing is None or standing.nonce != approval.nonce:
            return False
        del self.approvals[approval.id]
        return True

    async def listing(self, unit: str, period: str) -> list[Approval]:
        return _sorted([a for a in self.approvals.values() if a.period == period and unit in a.path])

    async def of_unit(self, unit: str, series: str) -> list[Approval]:
        return sorted(
            (a for a in self.approvals.values() if (a.unit, a.series) == (unit, series)), key=lambda a: a.period
        )


def _document(approval: Approval) -> dict[str, Any]:
    return {"_id": approval.id, **asdict(approval), "path": list(approval.path)}


def _approval(doc: dict[str, Any]) -> Approval:
    return Approval(
        unit=str(doc["unit"]),
        series=str(doc["series"]),
        period=str(doc["period"]),
        level=str(doc["level"]),
        approver=str(doc["approver"]),
        at=float(doc["at"]),
        path=tuple(doc.get("path") or ()),
        nonce=str(doc["nonce"]),
    )


class MongoApprovalStore:
    def __init__(self, client: AsyncMongoClient[dict[str, Any]], database: str) -> None:
        self._col = access_collection(client, database, APPROVALS)

    async def ensure_indexes(self) -> None:
        # multikey on path: a subtree's listing for a period is one equality on each
        await self._col.create_index([("path", 1), ("period", 1)])
        # the aggregator's lock on the Kafka path reads a (unit, series)'s approvals at once
        await self._col.create_index([("unit", 1), ("series", 1)])

    async def add(self, approval: Approval) -> None:
        try:
            await self._col.insert_one(_document(approval))
        except DuplicateKeyError:
            standing = await self.get(approval.unit, approval.series, approval.period)
            if standing is None:  # unapproved in between: the caller may try again
                raise
            raise AlreadyApproved(standing) from None

    async def get(self, unit: str, series: str, period: str) -> Approval | None:
        doc = await self._col.find_one({"_id": approval_id(unit, series, period)})
        return _approval(doc) if doc is not None else None

    async def remove(self, approval: Approval) -> bool:
        result = await self._col.delete_one({"_id": approval.id, "nonce": approval.nonce})
        return result.deleted_count == 1

    async def listing(self, unit: str, period: str) -> list[Approval]:
        return _sorted([_approval(d) async for d in self._col.find({"path": unit, "period": period})])

    async def of_unit(self, unit: str, series: str) -> list[Approval]:
        found = [_approval(d) async for d in self._col.find({"unit": unit, "series": series})]
        return sorted(found, key=lambda a: a.period)


class CachedApprovals:
    """``get`` through a cache of ``ttl_s`` seconds per (unit, series, period), for ingest, which
    asks on every report: an approval locks, and an unapproval unlocks, within ``ttl_s``. A
    failure of the store is raised (the caller refuses the report as unavailable): a lock is
    never skipped because the store did not answer."""

    def __init__(self, store: ApprovalStore, ttl_s: float = CACHE_SECONDS, max_entries: int = CACHE_ENTRIES) -> None:
        self.store = store
        self._ttl = ttl_s
        self._max = max_entries
        self._cache: dict[str, tuple[float, Approval | None]] = {}
        self._of_unit: dict[tuple[str, str], tuple[float, tuple[Approval, ...]]] = {}

    async def get(self, unit: str, series: str, period: str) -> Approval | None:
        key = approval_id(unit, series, period)
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] <= self._ttl:
            return hit[1]
        found = await self.store.get(unit, series, period)
        if len(self._cache) >= self._max:
            self._cache.clear()
        self._cache[key] = (now, found)
        return found

    async def first(self, unit: str, series: str, periods: Sequence[str]) -> Approval | None:
        """The first approval standing among ``periods`` for (unit, series), else None."""
        for period in periods:
            found = await self.get(unit, series, period)
            if found is not None:
                return found
        return None

    async def standing(self, unit: str, series: str) -> tuple[Approval, ...]:
        """Every approval of (unit, series), through the same kind of cache: one store read per
        (unit, series) every ``ttl_s`` at most, whatever the periods asked about. The
        aggregator's lock on the Kafka path (shared.domain.approvals.kafka_lock) reads this."""
        key = (unit, series)
        now = time.monotonic()
        hit = self._of_unit.get(key)
        if hit is not None and now - hit[0] <= self._ttl:
            return hit[1]
        found = tuple(await self.store.of_unit(unit, series))
        if len(self._of_unit) >= self._max:
            self._of_unit.clear()
        self._of_unit[key] = (now, found)
        return found
