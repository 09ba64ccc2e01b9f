"""The aggregator's port to the serving view in MongoDB, with the adapter and an in-memory fake.

The view is written, never read to compute: the totals live in the aggregator's state (see
state.py), and a flush replaces whole documents. Each document belongs to one partition of the
``reports`` topic (field ``part``), so one worker writes it; a write only lands on a document with
a lower version, so a worker that lost its partition a moment ago cannot overwrite what the new
owner wrote. Both adapters pass tests/contract/test_totals_view_contract.py.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any, Protocol

from pymongo import AsyncMongoClient, DeleteOne, ReplaceOne
from pymongo.errors import BulkWriteError

from shared.adapters.mongo import TOTALS

DUPLICATE_KEY = 11000
WRITE_CHUNK = 1000


class TotalsView(Protocol):
    async def load_part(self, part: int) -> dict[str, dict[str, Any]]:
        """Every stored document of one partition, by id."""
        ...

    async def write(self, docs: list[dict[str, Any]], deletes: list[tuple[str, int]]) -> None:
        """Replace each of ``docs`` unless the stored one has a version at or above its own;
        delete each (id, version) unless the stored one has a version at or above it."""
        ...

    async def read(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]: ...


class MongoTotalsView:
    def __init__(self, client: AsyncMongoClient[dict[str, Any]], database: str) -> None:
        self._col = client[database][TOTALS]

    async def load_part(self, part: int) -> dict[str, dict[str, Any]]:
        return {d["_id"]: d async for d in self._col.find({"part": part})}

    async def write(self, docs: list[dict[str, Any]], deletes: list[tuple[str, int]]) -> None:
        ops: list[Any] = [ReplaceOne({"_id": d["_id"], "version": {"$lt": d["version"]}}, d, upsert=True) for d in docs]
        ops += [DeleteOne({"_id": i, "version": {"$lt": v}}) for i, v in deletes]
        # In bulk writes of at most WRITE_CHUNK operations: one of tens of thousands of documents
        # is a message of tens of megabytes, which a JVM server allocates as one humongous object
        # (mongo-java-server's heap went into 2-second full collections over those).
        for start in range(0, len(ops), WRITE_CHUNK):
            try:
                await self._col.bulk_write(ops[start : start + WRITE_CHUNK], ordered=False)
            except BulkWriteError as exc:
                # A duplicate key: the stored document is newer (the upsert found no older one to
                # replace and could not insert). Exactly what the guard is for; anything else is not.
                if any(e.get("code") != DUPLICATE_KEY for e in exc.details.get("writeErrors", [])):
                    raise

    async def read(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        return {d["_id"]: d async for d in self._col.find({"_id": {"$in": list(ids)}})}


class InMemoryTotalsView:
    """The fake: a dictionary with the same version guard."""

    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {}

    async def load_part(self, part: int) -> dict[str, dict[str, Any]]:
        return {i: copy.deepcopy(d) for i, d in self.docs.items() if d.get("part") == part}

    async def write(self, docs: list[dict[str, Any]], deletes: list[tuple[str, int]]) -> None:
        for d in docs:
            current = self.docs.get(d["_id"])
            if current is None or current["version"] < d["version"]:
                self.docs[d["_id"]] = copy.deepcopy(d)
        for i, v in deletes:
            current = self.docs.get(i)
            if current is not None and current["version"] < v:
                del self.docs[i]

    async def read(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        return {i: copy.deepcopy(self.docs[i]) for i in ids if i in self.docs}
