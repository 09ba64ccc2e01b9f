"""Revoked token ids, in MongoDB (``revoked_tokens``), with an in-memory fake.

Checked on every authenticated request through a short cache, so a revocation takes effect
within ``ttl_s`` seconds in every service. One refresh at a time (concurrent requests wait for
it). When the database does not answer, the last list keeps serving for ``stale_s`` seconds;
after that requests fail closed with RevocationsUnavailable (the services answer 503), never
open and never 500.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Protocol

from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from shared.adapters.mongo import access_collection
from shared.domain.auth import Principal

log = logging.getLogger(__name__)

REVOKED = "revoked_tokens"


class RevocationsUnavailable(RuntimeError):
    """The list of revoked tokens could not be read and the last one is too old to trust."""


class Revocations(Protocol):
    async def is_revoked(self, token_id: str) -> bool: ...

    async def revoke(self, token_id: str, reason: str) -> None: ...

    async def lift(self, token_id: str) -> None:
        """Takes ``token_id`` off the list: only for an ``account:<username>`` entry, when the
        account is enabled again (a revoked token stays revoked)."""


async def refused(revocations: Revocations, principal: Principal) -> bool:
    """Whether the revoked list refuses ``principal``: its token, or the account it acts for."""
    for revocation_id in principal.revocation_ids:
        if await revocations.is_revoked(revocation_id):
            return True
    return False


class MongoRevocations:
    def __init__(
        self, client: AsyncMongoClient[dict[str, Any]], database: str, ttl_s: float = 5.0, stale_s: float = 60.0
    ) -> None:
        self._col = access_collection(client, database, REVOKED)
        self._ttl = ttl_s
        self._stale = stale_s
        self._cache: set[str] = set()
        self._loaded_at = float("-inf")
        self._lock = asyncio.Lock()

    async def is_revoked(self, token_id: str) -> bool:
        if time.monotonic() - self._loaded_at > self._ttl:
            async with self._lock:
                if time.monotonic() - self._loaded_at > self._ttl:  # nobody refreshed meanwhile
                    await self._refresh()
        return token_id in self._cache

    async def _refresh(self) -> None:
        try:
            found = {d["_id"] async for d in self._col.find({}, projection={"_id": 1}, max_time_ms=2000)}
        except PyMongoError as exc:
            age = time.monotonic() - self._loaded_at
            if age > self._stale:
                raise RevocationsUnavailable(f"revoked tokens unreadable: {type(exc).__name__}") from exc
            log.warning("revoked tokens unreadable, using the list from %.0f s ago", age)
            return
        self._cache = found
        self._loaded_at = time.monotonic()

    async def snapshot(self, fresh: bool = False) -> frozenset[str]:
        """Every revoked token id, read again when the cached list is older than ``ttl_s``, or
        always when ``fresh`` (for checks that cannot await per token: the aggregator's, on tokens
        in Kafka messages, which reads the list on its own schedule). When the database does not
        answer, the last list (within ``stale_s``)."""
        if fresh:
            async with self._lock:
                await self._refresh()
        else:
            await self.is_revoked("")
        return frozenset(self._cache)

    async def revoke(self, token_id: str, reason: str) -> None:
        await self._col.update_one({"_id": token_id}, {"$set": {"reason": reason, "at": time.time()}}, upsert=True)
        self._cache.add(token_id)

    async def lift(self, token_id: str) -> None:
        await self._col.delete_one({"_id": token_id})
        self._cache.discard(token_id)


class InMemoryRevocations:
    def __init__(self) -> None:
        self.revoked: dict[str, str] = {}

    async def is_revoked(self, token_id: str) -> bool:
        return token_id in self.revoked

    async def revoke(self, token_id: str, reason: str) -> None:
        self.revoked[token_id] = reason

    async def lift(self, token_id: str) -> None:
        self.revoked.pop(token_id, None)
