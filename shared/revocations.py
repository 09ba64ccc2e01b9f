"""Revoked token ids, in MongoDB (``revoked_tokens``), with an in-memory fake.

Checked on every authenticated request through a short cache, so a revocation takes effect
within ``ttl_s`` seconds in every service.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from pymongo import AsyncMongoClient

REVOKED = "revoked_tokens"


class Revocations(Protocol):
    async def is_revoked(self, token_id: str) -> bool: ...

    async def revoke(self, token_id: str, reason: str) -> None: ...


class MongoRevocations:
    def __init__(self, client: AsyncMongoClient[dict[str, Any]], database: str, ttl_s: float = 5.0) -> None:
        self._col = client[database][REVOKED]
        self._ttl = ttl_s
        self._cache: set[str] = set()
        self._loaded_at = float("-inf")

    async def is_revoked(self, token_id: str) -> bool:
        if time.monotonic() - self._loaded_at > self._ttl:
            self._cache = {d["_id"] async for d in self._col.find({}, projection={"_id": 1})}
            self._loaded_at = time.monotonic()
        return token_id in self._cache

    async def revoke(self, token_id: str, reason: str) -> None:
        await self._col.update_one({"_id": token_id}, {"$set": {"reason": reason, "at": time.time()}}, upsert=True)
        self._cache.add(token_id)


class InMemoryRevocations:
    def __init__(self) -> None:
        self.revoked: dict[str, str] = {}

    async def is_revoked(self, token_id: str) -> bool:
        return token_id in self.revoked

    async def revoke(self, token_id: str, reason: str) -> None:
        self.revoked[token_id] = reason
