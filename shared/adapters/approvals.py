"""Where approvals are kept: a port (``ApprovalStore``), its MongoDB adapter and an in-memory fake;
both pass tests/contract/test_approval_store_contract.py. ``CachedApprovals`` is ingest's and the
aggregator's view of the store, read through a short cache.

The MongoDB documents (collection ``approvals``, written and read like everything that decides
access: ``access_collection``): ``_id`` ``<unit>/<series>/<period>``, and the approval's fields by
name (``path`` a list). An approval is added only when none stands for its id (the unique
``_id``), and removed only when it is still the one the remover read (its ``nonce``): two
approvers racing get one approval, and an unapproval decided on an approval that was replaced
meanwhile removes nothing.

**The outbox of the approvals stream** (shared/domain/approvals.py). The document is its own
outbox: an approval is written with ``published: false``, and an unapproval does not delete the
document but turns it, in the same single-document update, into ``approved: false`` with who
unapproved and when, ``published: false`` again; a later approval of the id replaces it. So a
state change and its "to publish" mark are one write, and nothing is lost however the process
or Kafka fails after it. ``publish_pending`` (run every few seconds) publishes each unpublished
state, waits for the broker, then marks it published only if the document still holds that
state (same nonce, same ``approved``); otherwise it marks the document unpublished again. Hence
the last message of every id is its current state, even with several publishers at once: a
publisher whose message of an older state lands after a newer one finds the document changed
and has the newer state published again. Documents written before this rule have no
``approved`` field and count as approved, and no ``published`` field: they are published once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import asdict
from typing import Any, Protocol

from pydantic_core import to_json
from pymongo import AsyncMongoClient
from pymongo.errors import DuplicateKeyError

from shared.adapters.mongo import access_collection
from shared.domain.approvals import (
    AlreadyApproved,
    Approval,
    ApprovalState,
    Unapproval,
    approval_id,
    approval_message,
)

log = logging.getLogger(__name__)

APPROVALS = "approvals"
CACHE_SECONDS = 5.0  # ingest sees an approval or an unapproval at most this long after it is made
CACHE_ENTRIES = 100_000  # (unit, series, period) answers kept; past this the cache starts afresh
OF_UNITS_CHUNK = 1000  # units in one query of ``of_units``
PUBLISH_EVERY_SECONDS = 2.0  # how often unpublished approval states are looked for
PUBLISH_LIMIT = 500  # states published at once at most; the rest the next time
STANDING = {"approved": {"$ne": False}}  # an approval that stands (older documents lack the field)
# [(key, value), ...] -> awaitable that completes once the broker has every message
ApprovalSink = Callable[[list[tuple[bytes, bytes]]], Awaitable[Any]]


class ApprovalStore(Protocol):
    async def add(self, approval: Approval) -> None:
        """Keeps ``approval`` (to be published); :class:`AlreadyApproved` (naming the standing
        one) when its (unit, series, period) is approved already."""

    async def get(self, unit: str, series: str, period: str) -> Approval | None: ...

    async def remove(self, approval: Approval, by: str = "", at: float | None = None) -> bool:
        """Undoes ``approval`` if it still stands as read (same nonce), recording the
        unapproval by ``by`` at ``at`` (now by default) to be published; whether it did."""
        ...

    async def listing(self, unit: str, period: str) -> list[Approval]:
        """The approvals of ``period`` for ``unit`` and every unit under it, by unit then series."""
        ...

    async def of_unit(self, unit: str, series: str) -> list[Approval]:
        """Every approval of (unit, series), whatever its period, by period."""
        ...

    async def of_units(self, pairs: Collection[tuple[str, str]]) -> dict[tuple[str, str], list[Approval]]:
        """``of_unit`` of many (unit, series) at once: those with an approval, each by period."""
        ...

    async def unpublished(self, limit: int) -> list[ApprovalState]:
        """Up to ``limit`` states (approvals and unapprovals) not yet published."""
        ...

    async def mark_published(self, state: ApprovalState) -> bool:
        """Marks ``state``, just published, as published if its id still holds it; otherwise
        marks the id's current state unpublished again. Whether ``state`` was still current."""
        ...


def _sorted(approvals: Sequence[Approval]) -> list[Approval]:
    return sorted(approvals, key=lambda a: (a.unit, a.series))


def _nonce(state: ApprovalState) -> str:
    return state.approval.nonce if isinstance(state, Unapproval) else state.nonce


def same_state(a: ApprovalState, b: ApprovalState) -> bool:
    """Whether two states are the same (Approval's equality leaves out its nonce)."""
    return type(a) is type(b) and _nonce(a) == _nonce(b)


class InMemoryApprovalStore:
    def __init__(self) -> None:
        self.approvals: dict[str, Approval] = {}  # those that stand
        self.unapprovals: dict[str, Unapproval] = {}  # the last undone of each id none stands for
        self.pending: set[str] = set()  # ids whose current state is not published

    async def add(self, approval: Approval) -> None:
        standing = self.approvals.get(approval.id)
        if standing is not None:
            raise AlreadyApproved(standing)
        self.approvals[approval.id] = approval
        self.unapprovals.pop(approval.id, None)
        self.pending.add(approval.id)

    async def get(self, unit: str, series: str, period: str) -> Approval | None:
        return self.approvals.get(approval_id(unit, series, period))

    async def remove(self, approval: Approval, by: str = "", at: float | None = None) -> bool:
        standing = self.approvals.get(approval.id)
        if standing is None or standing.nonce != approval.nonce:
            return False
        del self.approvals[approval.id]
        self.unapprovals[approval.id] = Unapproval(standing, by, time.time() if at is None else at)
        self.pending.add(approval.id)
        return True

    async def listing(self, unit: str, period: str) -> list[Approval]:
        return _sorted([a for a in self.approvals.values() if a.period == period and unit in a.path])

    async def of_unit(self, unit: str, series: str) -> list[Approval]:
        return sorted(
            (a for a in self.approvals.values() if (a.unit, a.series) == (unit, series)), key=lambda a: a.period
        )

    async def of_units(self, pairs: Collection[tuple[str, str]]) -> dict[tuple[str, str], list[Approval]]:
        found: dict[tuple[str, str], list[Approval]] = {}
        for a in sorted(self.approvals.values(), key=lambda a: a.period):
            if (a.unit, a.series) in pairs:
                found.setdefault((a.unit, a.series), []).append(a)
        return found

    def _current(self, id_: str) -> ApprovalState | None:
        return self.approvals.get(id_) or self.unapprovals.get(id_)

    async def unpublished(self, limit: int) -> list[ApprovalState]:
        states = (self._current(i) for i in sorted(self.pending))
        return [s for s in states if s is not None][:limit]

    async def mark_published(self, state: ApprovalState) -> bool:
        current = self._current(state.id)
        if current is not None and same_state(current, state):
            self.pending.discard(state.id)
            return True
        self.pending.add(state.id)
        return False


def _document(approval: Approval) -> dict[str, Any]:
    return {"_id": approval.id, **asdict(approval), "path": list(approval.path), "approved": True, "published": False}


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


def _state(doc: dict[str, Any]) -> ApprovalState:
    if doc.get("approved", True):
        return _approval(doc)
    return Unapproval(_approval(doc), str(doc.get("unapproved_by", "")), float(doc["unapproved_at"]))


class MongoApprovalStore:
    def __init__(self, client: AsyncMongoClient[dict[str, Any]], database: str) -> None:
        self._col = access_collection(client, database, APPROVALS)

    async def ensure_indexes(self) -> None:
        # multikey on path: a subtree's listing for a period is one equality on each
        await self._col.create_index([("path", 1), ("period", 1)])
        # the aggregator's lock on the Kafka path reads a (unit, series)'s approvals at once
        await self._col.create_index([("unit", 1), ("series", 1)])
        await self._col.create_index([("published", 1)])  # the outbox: what is left to publish

    async def add(self, approval: Approval) -> None:
        try:
            await self._col.insert_one(_document(approval))
        except DuplicateKeyError:
            # an id unapproved before holds its unapproval: a new approval takes its place
            replaced = await self._col.replace_one({"_id": approval.id, "approved": False}, _document(approval))
            if replaced.matched_count == 1:
                return
            standing = await self.get(approval.unit, approval.series, approval.period)
            if standing is None:  # unapproved in between: the caller may try again
                raise
            raise AlreadyApproved(standing) from None

    async def get(self, unit: str, series: str, period: str) -> Approval | None:
        doc = await self._col.find_one({"_id": approval_id(unit, series, period), **STANDING})
        return _approval(doc) if doc is not None else None

    async def remove(self, approval: Approval, by: str = "", at: float | None = None) -> bool:
        undone = {"approved": False, "published": False, "unapproved_by": by}
        undone["unapproved_at"] = time.time() if at is None else at
        result = await self._col.update_one({"_id": approval.id, "nonce": approval.nonce, **STANDING}, {"$set": undone})
        return result.matched_count == 1

    async def listing(self, unit: str, period: str) -> list[Approval]:
        found = self._col.find({"path": unit, "period": period, **STANDING})
        return _sorted([_approval(d) async for d in found])

    async def of_unit(self, unit: str, series: str) -> list[Approval]:
        found = [_approval(d) async for d in self._col.find({"unit": unit, "series": series, **STANDING})]
        return sorted(found, key=lambda a: a.period)

    async def of_units(self, pairs: Collection[tuple[str, str]]) -> dict[tuple[str, str], list[Approval]]:
        wanted = set(pairs)
        out: dict[tuple[str, str], list[Approval]] = {}
        units = sorted({unit for unit, _ in wanted})
        for start in range(0, len(units), OF_UNITS_CHUNK):
            query = {"unit": {"$in": units[start : start + OF_UNITS_CHUNK]}, **STANDING}
            async for doc in self._col.find(query):
                approval = _approval(doc)
                if (approval.unit, approval.series) in wanted:
                    out.setdefault((approval.unit, approval.series), []).append(approval)
        return {pair: sorted(found, key=lambda a: a.period) for pair, found in out.items()}

    async def unpublished(self, limit: int) -> list[ApprovalState]:
        # a document written before the stream has no ``published`` field: it is published too
        return [_state(d) async for d in self._col.find({"published": {"$ne": True}}).limit(limit)]

    async def mark_published(self, state: ApprovalState) -> bool:
        held = STANDING if isinstance(state, Approval) else {"approved": False}
        done = await self._col.update_one(
            {"_id": state.id, "nonce": _nonce(state), **held}, {"$set": {"published": True}}
        )
        if done.matched_count == 1:
            return True
        await self._col.update_one({"_id": state.id}, {"$set": {"published": False}})
        return False


async def publish_pending(store: ApprovalStore, send: ApprovalSink, limit: int = PUBLISH_LIMIT) -> int:
    """Publishes what the store has not (the outbox above) and marks it; how many it sent."""
    states = await store.unpublished(limit)
    if not states:
        return 0
    await send([(s.id.encode(), to_json(approval_message(s))) for s in states])
    for state in states:
        await store.mark_published(state)
    return len(states)


async def publish_forever(store: ApprovalStore, send: ApprovalSink, every_s: float = PUBLISH_EVERY_SECONDS) -> None:
    """``publish_pending`` every ``every_s``; what Kafka or MongoDB failed to take stays
    unpublished and is sent again the next time."""
    while True:
        try:
            while await publish_pending(store, send) == PUBLISH_LIMIT:
                pass  # more are waiting
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("approvals not published; trying again", exc_info=True)
        await asyncio.sleep(every_s)


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

    async def prefetch(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Reads, in one query, ``standing`` of every (unit, series) of ``pairs`` that the cache
        does not hold fresh: the aggregator asks once per batch, so a batch of many units costs
        one read, not one per unit."""
        now = time.monotonic()
        missing = {p for p in pairs if (hit := self._of_unit.get(p)) is None or now - hit[0] > self._ttl}
        if not missing:
            return
        found = await self.store.of_units(missing)
        if len(self._of_unit) + len(missing) > self._max:
            self._of_unit.clear()
        for pair in missing:
            self._of_unit[pair] = (now, tuple(found.get(pair, ())))
