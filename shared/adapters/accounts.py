"""Where accounts are kept: a port (``AccountStore``), its MongoDB adapter and an in-memory fake
for unit tests; both pass tests/contract/test_account_store_contract.py.

Every change is a whole new version of the account (``Account.changed``): ``update`` stores it only
if the stored one is the version before, so two admins editing one account at once cannot
silently undo each other (the second gets ``StaleAccount`` and reloads).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol

from pymongo import AsyncMongoClient
from pymongo.errors import DuplicateKeyError

from shared.adapters.mongo import ACCOUNTS, access_collection
from shared.domain.accounts import Account, Role


class AccountExists(ValueError):
    """An account of that username exists already, or another account is linked to the same
    OpenID Connect identity."""


class StaleAccount(RuntimeError):
    """The account changed since it was read (or does not exist)."""


@dataclass(frozen=True)
class AccountPage:
    items: list[Account]
    next: str | None  # cursor of the next page (by username); None on the last page


class AccountStore(Protocol):
    async def create(self, account: Account) -> None:
        """Stores a new account; AccountExists when the username is taken."""
        ...

    async def get(self, username: str) -> Account | None: ...

    async def by_oidc(self, subject: str) -> Account | None:
        """The account linked to the OpenID Connect identity ``subject``, if any."""
        ...

    async def update(self, account: Account) -> None:
        """Stores ``account`` over version ``account.version - 1``; StaleAccount otherwise."""
        ...

    async def page(self, scope: str, after: str | None = None, size: int = 50) -> AccountPage:
        """Accounts whose scope holds ``scope`` (a tree-qualified code), by username."""
        ...


class InMemoryAccountStore:
    def __init__(self) -> None:
        self.accounts: dict[str, Account] = {}

    async def create(self, account: Account) -> None:
        if account.username in self.accounts:
            raise AccountExists(account.username)
        self._check_subject(account)
        self.accounts[account.username] = account

    def _check_subject(self, account: Account) -> None:
        if account.oidc_subject is None:
            return
        if any(a.oidc_subject == account.oidc_subject for u, a in self.accounts.items() if u != account.username):
            raise AccountExists(f"oidc_subject of {account.username}")

    async def get(self, username: str) -> Account | None:
        return self.accounts.get(username)

    async def by_oidc(self, subject: str) -> Account | None:
        return next((a for a in self.accounts.values() if a.oidc_subject == subject), None)

    async def update(self, account: Account) -> None:
        stored = self.accounts.get(account.username)
        if stored is None or stored.version != account.version - 1:
            raise StaleAccount(account.username)
        self._check_subject(account)
        self.accounts[account.username] = account

    async def page(self, scope: str, after: str | None = None, size: int = 50) -> AccountPage:
        names = sorted(u for u, a in self.accounts.items() if scope in a.scope and (after is None or u > after))
        items = [self.accounts[u] for u in names[:size]]
        return AccountPage(items, items[-1].username if len(names) > size else None)


def _doc(account: Account) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "_id": account.username,
        "display_name": account.display_name,
        "unit": account.unit,
        "roles": sorted(r.value for r in account.roles),
        "password_hash": account.password_hash,
        "disabled": account.disabled,
        "email": account.email,
        "created_at": account.created_at,
        "created_by": account.created_by,
        "version": account.version,
        "scope": list(account.scope),
    }
    if account.oidc_subject is not None:  # absent, not null: the unique index skips it
        doc["oidc_subject"] = account.oidc_subject
    return doc


def _account(doc: dict[str, Any]) -> Account:
    return Account(
        username=str(doc["_id"]),
        display_name=str(doc["display_name"]),
        unit=str(doc["unit"]),
        roles=frozenset(Role(r) for r in doc["roles"]),
        password_hash=doc.get("password_hash"),
        oidc_subject=doc.get("oidc_subject"),
        disabled=bool(doc.get("disabled", False)),
        email=doc.get("email"),
        created_at=float(doc.get("created_at", 0.0)),
        created_by=str(doc.get("created_by", "")),
        version=int(doc["version"]),
        scope=tuple(doc.get("scope") or ()),
    )


class MongoAccountStore:
    """Accounts in ``accounts``, one document per username (``_id``), read and written with the
    concerns of what decides access (``access_collection``). Indexes: ``oidc_subject``, unique
    where present (sparse), so one identity opens one account; ``(scope, _id)`` for an admin's
    listing by username."""

    def __init__(self, client: AsyncMongoClient[dict[str, Any]], database: str) -> None:
        self._col = access_collection(client, database, ACCOUNTS)
        self._indexed = False
        self._lock = asyncio.Lock()

    async def _ensure_indexes(self) -> None:
        if self._indexed:
            return
        async with self._lock:
            if not self._indexed:
                await self._col.create_index("oidc_subject", unique=True, sparse=True, name="oidc_subject_unique")
                await self._col.create_index([("scope", 1), ("_id", 1)], name="scope_username")
                self._indexed = True

    async def create(self, account: Account) -> None:
        await self._ensure_indexes()
        try:
            await self._col.insert_one(_doc(account))
        except DuplicateKeyError:
            raise AccountExists(account.username) from None

    async def get(self, username: str) -> Account | None:
        doc = await self._col.find_one({"_id": username}, max_time_ms=2000)
        return _account(doc) if doc is not None else None

    async def by_oidc(self, subject: str) -> Account | None:
        doc = await self._col.find_one({"oidc_subject": subject}, max_time_ms=2000)
        return _account(doc) if doc is not None else None

    async def update(self, account: Account) -> None:
        await self._ensure_indexes()
        try:
            done = await self._col.replace_one({"_id": account.username, "version": account.version - 1}, _doc(account))
        except DuplicateKeyError:  # the OpenID Connect identity is linked to another account
            raise AccountExists(f"oidc_subject of {account.username}") from None
        if done.matched_count != 1:
            raise StaleAccount(account.username)

    async def page(self, scope: str, after: str | None = None, size: int = 50) -> AccountPage:
        query: dict[str, Any] = {"scope": scope}
        if after is not None:
            query["_id"] = {"$gt": after}
        docs = await self._col.find(query, max_time_ms=5000).sort("_id", 1).limit(size + 1).to_list()
        items = [_account(d) for d in docs[:size]]
        return AccountPage(items, items[-1].username if len(docs) > size else None)
