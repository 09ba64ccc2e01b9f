"""Where accounts are kept: a port (``AccountStore``), its MongoDB adapter and an in-memory fake
for unit tests; both pass tests/contract/test_account_store_contract.py.

Every change is a whole new version of the account (``Account.changed``): ``update`` stores it only
if the stored one is the version before, so two admins editing one account at once cannot
silently undo each other (the second gets ``StaleAccount`` and reloads).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from shared.domain.accounts import Account


class AccountExists(ValueError):
    """An account of that username exists already."""


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
        self.accounts[account.username] = account

    async def get(self, username: str) -> Account | None:
        return self.accounts.get(username)

    async def by_oidc(self, subject: str) -> Account | None:
        return next((a for a in self.accounts.values() if a.oidc_subject == subject), None)

    async def update(self, account: Account) -> None:
        stored = self.accounts.get(account.username)
        if stored is None or stored.version != account.version - 1:
            raise StaleAccount(account.username)
        self.accounts[account.username] = account

    async def page(self, scope: str, after: str | None = None, size: int = 50) -> AccountPage:
        names = sorted(u for u, a in self.accounts.items() if scope in a.scope and (after is None or u > after))
        items = [self.accounts[u] for u in names[:size]]
        return AccountPage(items, items[-1].username if len(names) > size else None)
