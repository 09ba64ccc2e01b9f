"""Agencies registered at runtime, stored in MongoDB and merged into each service's OrgTree.

A document: ``_id`` (the code), ``name``, ``parent``, ``trees`` (the tree versions it is in;
absent: every version holding the parent) and ``closed_from`` (the first day it is closed, ISO;
absent or null: open). Renames and closings reach the other services at their next refresh."""

from __future__ import annotations

import asyncio
import logging
from datetime import date
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.errors import DuplicateKeyError

from shared.adapters.mongo import AGENCIES, access_collection
from shared.domain.hierarchy import HierarchyError, OrgTree, UnknownUnit

log = logging.getLogger(__name__)


class AgencyRegistry:
    def __init__(self, client: AsyncMongoClient[dict[str, Any]], database: str, tree: OrgTree) -> None:
        self._col = access_collection(client, database, AGENCIES)
        self.tree = tree
        self._lock = asyncio.Lock()

    async def lookup(self, code: str) -> bool:
        """Is ``code`` known? When not, look for it in the registry by ``_id`` (one indexed read),
        in case it was registered through another service a moment ago. A time-based refresh
        here once answered "unknown" for an agency registered half a second earlier."""
        if code in self.tree:
            return True
        doc = await self._col.find_one({"_id": code})
        if doc is None:
            return False
        async with self._lock:  # two lookups of the same new agency add it once
            if code not in self.tree:
                self._add(doc)
        return code in self.tree

    async def refresh(self) -> int:
        """Add agencies registered since the last refresh (by any service). Returns how many."""
        added = 0
        # Parents first: an agency's parent is never an agency, so one pass suffices.
        async for doc in self._col.find({}, sort=[("_id", 1)]):
            if doc["_id"] not in self.tree:
                added += self._add(doc)
            else:
                self._follow(doc)
        return added

    def _follow(self, doc: dict[str, Any]) -> None:
        """Take a rename or a closing made through another service."""
        code = doc["_id"]
        holder = self.tree if code in self.tree else next((t for t in self.tree.versions if code in t), None)
        if holder is None:
            return
        if holder.get(code).name != doc["name"]:
            self.tree.rename_agency(code, doc["name"])
        closed = date.fromisoformat(doc["closed_from"]) if doc.get("closed_from") else None
        if holder.closed_from(code) != closed:
            self.tree.close_agency(code, closed)

    async def rename(self, code: str, name: str) -> None:
        """Give the registered agency ``code`` a new name (UnknownUnit, HierarchyError when it
        is not a registered agency)."""
        self.tree.rename_agency(code, name)
        await self._col.update_one({"_id": code}, {"$set": {"name": name}})

    async def close(self, code: str, closed_from: date | None) -> None:
        """Close the registered agency ``code`` from the day ``closed_from``; None reopens it."""
        self.tree.close_agency(code, closed_from)
        value = closed_from.isoformat() if closed_from else None
        await self._col.update_one({"_id": code}, {"$set": {"closed_from": value}})

    def _add(self, doc: dict[str, Any]) -> bool:
        try:
            self.tree.add_agency(doc["_id"], doc["name"], doc["parent"], doc.get("trees"))
            self._follow(doc)
            return True
        except (HierarchyError, UnknownUnit) as exc:
            # A registry from another tree version or another province set: skip, say so.
            log.warning("agency not loaded", extra={"agency": doc["_id"], "reason": str(exc)})
            return False

    async def register(self, code: str, name: str, parent: str, trees: list[str] | None = None) -> bool:
        """Register an agency, in the tree versions ``trees`` (all that hold ``parent`` when None);
        False when it was already registered identically. A document without ``trees`` is in
        every version that holds its parent."""
        if trees is not None and not trees:
            raise HierarchyError(f"agency {code} would be in no tree")
        # validates parent and code, raises on conflict
        self.tree.add_agency(code, name, parent, trees)
        doc: dict[str, Any] = {"_id": code, "name": name, "parent": parent}
        if trees is not None:
            doc["trees"] = sorted(trees)
        try:
            await self._col.insert_one(doc)
        except DuplicateKeyError:
            existing = await self._col.find_one({"_id": code})
            if existing and (existing["name"], existing["parent"], existing.get("trees")) != (
                name,
                parent,
                doc.get("trees"),
            ):
                raise HierarchyError(f"agency {code} is already registered differently") from None
            return False
        return True

    async def refresh_forever(self, every_s: float = 10.0) -> None:
        """Pick up agencies registered through other services; run as a background task."""
        while True:
            await asyncio.sleep(every_s)
            try:
                await self.refresh()
            except Exception:
                log.warning("registry refresh failed", exc_info=True)
