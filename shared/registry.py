"""Agencies registered at runtime, stored in MongoDB and merged into each service's OrgTree."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.errors import DuplicateKeyError

from shared.hierarchy import HierarchyError, OrgTree, UnknownUnit
from shared.mongo import AGENCIES

log = logging.getLogger(__name__)


class AgencyRegistry:
    def __init__(self, client: AsyncMongoClient[dict[str, Any]], database: str, tree: OrgTree) -> None:
        self._col = client[database][AGENCIES]
        self.tree = tree
        self._lock = asyncio.Lock()
        self._refreshed_at = float("-inf")

    async def lookup(self, code: str, min_interval_s: float = 1.0) -> bool:
        """Is ``code`` known? When not, refresh once (at most every ``min_interval_s``, shared by
        concurrent callers) in case it was registered through another service a moment ago."""
        if code in self.tree:
            return True
        async with self._lock:
            if code not in self.tree and time.monotonic() - self._refreshed_at >= min_interval_s:
                await self.refresh()
        return code in self.tree

    async def refresh(self) -> int:
        """Add agencies registered since the last refresh (by any service). Returns how many."""
        self._refreshed_at = time.monotonic()
        added = 0
        # Parents first: an agency's parent is never an agency, so one pass suffices.
        async for doc in self._col.find({}, sort=[("_id", 1)]):
            if doc["_id"] in self.tree:
                continue
            try:
                self.tree.add_agency(doc["_id"], doc["name"], doc["parent"])
                added += 1
            except (HierarchyError, UnknownUnit) as exc:
                # A registry from another tree version or another province set: skip, say so.
                log.warning("agency not loaded", extra={"agency": doc["_id"], "reason": str(exc)})
        return added

    async def register(self, code: str, name: str, parent: str) -> bool:
        """Register an agency; False when it was already registered identically."""
        self.tree.add_agency(code, name, parent)  # validates parent and code; raises on conflict
        try:
            await self._col.insert_one({"_id": code, "name": name, "parent": parent})
        except DuplicateKeyError:
            existing = await self._col.find_one({"_id": code})
            if existing and (existing["name"], existing["parent"]) != (name, parent):
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
