"""Where the audit log is kept: a port (``AuditLog``), its MongoDB adapter and an in-memory fake
for unit tests; both pass tests/contract/test_audit_log_contract.py.

The MongoDB documents (collection ``audit_log``): ``_id`` the entry id, and the entry's fields
by name (``action`` its value, ``scope`` a list, ``before``/``after`` the figures as given).
Indexes (scope, _id) and (scope, period, _id) serve a reader's listing, all or one period.

Append-only: the port has no way to change or remove an entry. Entry ids order entries by time
(``entry_id``: the microsecond, then random hex), so a page is newest first and a cursor is the
last id of the page before.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import asdict, replace
from typing import Any, Protocol

from pymongo import DESCENDING, AsyncMongoClient

from shared.adapters.mongo import AUDIT_LOG, access_collection
from shared.domain.audit import Action, AuditEntry, AuditPage, AuditQuery

PAGE_SIZE = 50


def entry_id(at: float) -> str:
    """A new entry's id: sorts as its time does (to the microsecond), unique by its random tail."""
    return f"{int(at * 1_000_000):016x}-{secrets.token_hex(4)}"


class AuditLog(Protocol):
    async def append(self, entry: AuditEntry) -> str:
        """Adds ``entry``; returns its id."""
        ...

    async def append_many(self, entries: Sequence[AuditEntry]) -> list[str]:
        """Adds ``entries`` in one round trip (a batch of reports); returns their ids, in order."""
        ...

    async def page(self, query: AuditQuery, after: str | None = None, size: int = PAGE_SIZE) -> AuditPage:
        """The entries ``query`` selects, newest first, after the cursor ``after``."""
        ...


def selected(entry: AuditEntry, query: AuditQuery) -> bool:
    return (
        any(scope in entry.scope for scope in query.scopes)
        and (query.period is None or entry.period == query.period)
        and (query.actions is None or entry.action in query.actions)
    )


class InMemoryAuditLog:
    def __init__(self) -> None:
        self.entries: list[AuditEntry] = []

    async def append(self, entry: AuditEntry) -> str:
        stored = replace(entry, entry_id=entry_id(entry.at))
        self.entries.append(stored)
        return stored.entry_id

    async def append_many(self, entries: Sequence[AuditEntry]) -> list[str]:
        return [await self.append(entry) for entry in entries]

    async def page(self, query: AuditQuery, after: str | None = None, size: int = PAGE_SIZE) -> AuditPage:
        found = sorted(
            (e for e in self.entries if selected(e, query) and (after is None or e.entry_id < after)),
            key=lambda e: e.entry_id,
            reverse=True,
        )
        items = found[:size]
        return AuditPage(items, items[-1].entry_id if len(found) > size else None)


def _document(entry: AuditEntry) -> dict[str, Any]:
    fields = asdict(entry)
    del fields["entry_id"]
    return {"_id": entry_id(entry.at), **fields, "action": entry.action.value, "scope": list(entry.scope)}


def _entry(doc: dict[str, Any]) -> AuditEntry:
    return AuditEntry(
        at=float(doc["at"]),
        actor=str(doc["actor"]),
        action=Action(doc["action"]),
        unit=str(doc["unit"]),
        scope=tuple(doc.get("scope") or ()),
        origin=doc.get("origin"),
        period=doc.get("period"),
        subject=doc.get("subject"),
        before=doc.get("before"),
        after=doc.get("after"),
        detail=doc.get("detail"),
        entry_id=str(doc["_id"]),
    )


class MongoAuditLog:
    """Inserts only (no update or delete is ever sent), written at majority like the rest of
    what decides or records access (``access_collection``)."""

    def __init__(self, client: AsyncMongoClient[dict[str, Any]], database: str) -> None:
        self._col = access_collection(client, database, AUDIT_LOG)

    async def ensure_indexes(self) -> None:
        # multikey on scope: one index entry per code of an entry's scope, so a subtree's
        # listing is one equality (per tree), newest first by _id
        await self._col.create_index([("scope", 1), ("_id", DESCENDING)])
        await self._col.create_index([("scope", 1), ("period", 1), ("_id", DESCENDING)])

    async def append(self, entry: AuditEntry) -> str:
        doc = _document(entry)
        await self._col.insert_one(doc)
        return str(doc["_id"])

    async def append_many(self, entries: Sequence[AuditEntry]) -> list[str]:
        if not entries:
            return []
        docs = [_document(e) for e in entries]
        await self._col.insert_many(docs, ordered=False)
        return [str(d["_id"]) for d in docs]

    async def page(self, query: AuditQuery, after: str | None = None, size: int = PAGE_SIZE) -> AuditPage:
        scopes = query.scopes
        where: dict[str, Any] = {"scope": scopes[0] if len(scopes) == 1 else {"$in": list(scopes)}}
        if query.period is not None:
            where["period"] = query.period
        if query.actions is not None:
            where["action"] = {"$in": sorted(a.value for a in query.actions)}
        if after is not None:
            where["_id"] = {"$lt": after}
        cursor = self._col.find(where).sort([("_id", DESCENDING)]).limit(size + 1)
        docs = [d async for d in cursor]
        items = [_entry(d) for d in docs[:size]]
        return AuditPage(items, items[-1].entry_id if len(docs) > size else None)
