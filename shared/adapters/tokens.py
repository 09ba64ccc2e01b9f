"""Machine tokens issued from the admin pages: a port (``TokenRegistry``), its MongoDB adapter
and an in-memory fake for unit tests; both pass tests/contract/test_token_registry_contract.py.

The registry keeps what was issued (id, label, unit, scopes, who issued it, when, until when)
and when it was revoked; never the token itself, which is shown once to the admin who issued
it. Refusing a revoked token is the revoked list's job (shared/adapters/revocations.py): the
registry's ``revoked_at`` is what the admin pages show.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, replace
from typing import Any, Protocol

from pymongo import AsyncMongoClient
from pymongo.errors import DuplicateKeyError

from shared.adapters.mongo import MACHINE_TOKENS, access_collection


def new_token_id(now: float | None = None) -> str:
    """A token id (the token's ``jti``) that sorts by the time it was made: milliseconds in 11
    hex digits, then 8 random ones."""
    millis = int((time.time() if now is None else now) * 1000)
    return f"{millis:011x}{secrets.token_hex(4)}"


class TokenExists(ValueError):
    """A token of that id is registered already."""


@dataclass(frozen=True)
class IssuedToken:
    id: str  # the token's jti
    label: str  # what the admin called it: the system it is for
    unit: str
    scopes: frozenset[str]
    issued_by: str  # Principal.actor of the admin
    issued_at: float  # unix seconds
    expires_at: int  # unix seconds, as in the token
    scope: tuple[str, ...]  # the unit and its ancestors, tree-qualified, then VN (as audit entries)
    revoked_at: float | None = None


@dataclass(frozen=True)
class TokenPage:
    items: list[IssuedToken]
    next: str | None  # cursor of the next page; None on the last page


class TokenRegistry(Protocol):
    async def add(self, token: IssuedToken) -> None:
        """Records an issued token; TokenExists when its id is taken."""
        ...

    async def get(self, token_id: str) -> IssuedToken | None: ...

    async def revoke(self, token_id: str, at: float) -> IssuedToken | None:
        """Marks the token revoked at ``at`` unless it already is (the first time stays); the
        token as stored after, None when no token has that id."""
        ...

    async def page(self, scope: str, after: str | None = None, size: int = 50) -> TokenPage:
        """Tokens whose scope holds ``scope`` (a tree-qualified code), newest first."""
        ...


class InMemoryTokenRegistry:
    def __init__(self) -> None:
        self.tokens: dict[str, IssuedToken] = {}

    async def add(self, token: IssuedToken) -> None:
        if token.id in self.tokens:
            raise TokenExists(token.id)
        self.tokens[token.id] = token

    async def get(self, token_id: str) -> IssuedToken | None:
        return self.tokens.get(token_id)

    async def revoke(self, token_id: str, at: float) -> IssuedToken | None:
        token = self.tokens.get(token_id)
        if token is not None and token.revoked_at is None:
            token = self.tokens[token_id] = replace(token, revoked_at=at)
        return token

    async def page(self, scope: str, after: str | None = None, size: int = 50) -> TokenPage:
        ids = sorted(
            (i for i, t in self.tokens.items() if scope in t.scope and (after is None or i < after)), reverse=True
        )
        items = [self.tokens[i] for i in ids[:size]]
        return TokenPage(items, items[-1].id if len(ids) > size else None)


def _doc(token: IssuedToken) -> dict[str, Any]:
    return {
        "_id": token.id,
        "label": token.label,
        "unit": token.unit,
        "scopes": sorted(token.scopes),
        "issued_by": token.issued_by,
        "issued_at": token.issued_at,
        "expires_at": token.expires_at,
        "revoked_at": token.revoked_at,
        "scope": list(token.scope),
    }


def _token(doc: dict[str, Any]) -> IssuedToken:
    revoked = doc.get("revoked_at")
    return IssuedToken(
        id=str(doc["_id"]),
        label=str(doc["label"]),
        unit=str(doc["unit"]),
        scopes=frozenset(doc["scopes"]),
        issued_by=str(doc["issued_by"]),
        issued_at=float(doc["issued_at"]),
        expires_at=int(doc["expires_at"]),
        scope=tuple(doc.get("scope") or ()),
        revoked_at=float(revoked) if revoked is not None else None,
    )


class MongoTokenRegistry:
    """Issued tokens in ``machine_tokens``, one document per id (``_id``), with the concerns of
    what decides access (``access_collection``); index ``(scope, _id)`` for an admin's listing."""

    def __init__(self, client: AsyncMongoClient[dict[str, Any]], database: str) -> None:
        self._col = access_collection(client, database, MACHINE_TOKENS)
        self._indexed = False
        self._lock = asyncio.Lock()

    async def _ensure_indexes(self) -> None:
        if self._indexed:
            return
        async with self._lock:
            if not self._indexed:
                await self._col.create_index([("scope", 1), ("_id", -1)], name="scope_newest")
                self._indexed = True

    async def add(self, token: IssuedToken) -> None:
        await self._ensure_indexes()
        try:
            await self._col.insert_one(_doc(token))
        except DuplicateKeyError:
            raise TokenExists(token.id) from None

    async def get(self, token_id: str) -> IssuedToken | None:
        doc = await self._col.find_one({"_id": token_id}, max_time_ms=2000)
        return _token(doc) if doc is not None else None

    async def revoke(self, token_id: str, at: float) -> IssuedToken | None:
        await self._col.update_one({"_id": token_id, "revoked_at": None}, {"$set": {"revoked_at": at}})
        return await self.get(token_id)

    async def page(self, scope: str, after: str | None = None, size: int = 50) -> TokenPage:
        query: dict[str, Any] = {"scope": scope}
        if after is not None:
            query["_id"] = {"$lt": after}
        docs = await self._col.find(query, max_time_ms=5000).sort("_id", -1).limit(size + 1).to_list()
        items = [_token(d) for d in docs[:size]]
        return TokenPage(items, items[-1].id if len(docs) > size else None)
