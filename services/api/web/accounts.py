"""Managing people's accounts: what the admin pages and ``baocao account`` both call.

Every change is made by an ``actor`` (the principal of an admin's session, or the command line's)
and checked here, not by the callers:

- the actor holds the ``admin`` scope;
- the actor covers the account's unit in every version of the tree that holds it (codes are
  reused across versions: a district admin of the old tree does not manage an account whose unit
  code names a commune of another province in the 2025 tree);
- nobody disables their own account or changes their own roles (an admin cannot lock the last
  door behind them).

Every role is at or below ``admin``, so an actor that passes these checks may grant any role at a
unit it covers: nobody is raised above the actor's own place in the tree.

Disabling an account puts ``account:<username>`` in the revoked list (``account_key``) before the
account is marked disabled, so every token minted for it (the pages' calls to ingest, a message
on the Kafka path) is refused by the checks that already read that list; enabling lifts it. A
disabled account, a reset or a change of password also ends the account's sessions (all but the
one that changed its own password).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from shared.adapters.accounts import AccountStore, StaleAccount
from shared.adapters.revocations import Revocations
from shared.domain import passwords
from shared.domain.accounts import (
    Account,
    AccountError,
    check_display_name,
    check_email,
    check_oidc_subject,
    check_password,
    check_username,
    parse_roles,
)
from shared.domain.audit import Action, AuditEntry, entry_scope
from shared.domain.auth import Forbidden, Principal, Scope, account_key
from shared.domain.hierarchy import COUNTRY, OrgTree

RETRIES = 3  # a change read-modify-writes; a concurrent one makes it read again


class UnknownAccount(LookupError):
    """No account of that username (answered 404 by the pages)."""


class AccountSessions(Protocol):
    async def end_account(self, username: str, keep: str | None = None) -> None:
        """Ends every session of ``username`` but the one whose key is ``keep``."""
        ...


@dataclass(frozen=True)
class AccountChange:
    """What a change did, for the audit log: the account before (None for a new one) and after."""

    action: Action
    before: Account | None
    after: Account

    @property
    def audit_before(self) -> dict[str, Any] | None:
        return public(self.before) if self.before is not None else None

    @property
    def audit_after(self) -> dict[str, Any]:
        return public(self.after)


def public(account: Account) -> dict[str, Any]:
    """An account as the audit log shows it: never its password hash."""
    return {
        "username": account.username,
        "display_name": account.display_name,
        "unit": account.unit,
        "roles": sorted(r.value for r in account.roles),
        "disabled": account.disabled,
        "email": account.email,
        "password": account.password_hash is not None,
        "oidc": account.oidc_subject is not None,
    }


def audit_entry(
    tree: OrgTree, change: AccountChange, actor: Principal, at: float, detail: str | None = None
) -> AuditEntry:
    """The audit log's entry of ``change`` made by ``actor``, for writers without a request (the
    command line); the pages record theirs with services/api/web/audit.py's ``record``."""
    return AuditEntry(
        at=at,
        actor=actor.actor,
        action=change.action,
        unit=change.after.unit,
        scope=entry_scope(tree, change.after.unit),
        origin=actor.origin,
        subject=change.after.username,
        before=change.audit_before,
        after=change.audit_after,
        detail=detail,
    )


def account_scope(tree: OrgTree, unit: str) -> tuple[str, ...]:
    """The unit and its ancestors in every version of the tree holding it, each named with its
    tree ("2025:38"), then ``VN``: what an admin's listing selects on. AccountError when no
    version holds ``unit``."""
    if unit == COUNTRY:
        return (COUNTRY,)
    holders = [t for t in tree.versions if unit in t]
    if not holders:
        raise AccountError("unit", f"no unit {unit!r} in any version of the tree")
    codes = (f"{t.tree_id}:{code}" for t in holders for code in t.path(unit))
    return (*dict.fromkeys(codes), COUNTRY)


def cli_actor(now: float | None = None) -> Principal:
    """The command line's principal: the whole country's admin (it holds the database's URI)."""
    issued = int(now if now is not None else time.time())
    return Principal("cli", COUNTRY, frozenset(Scope), issued + 3600)


class AccountService:
    def __init__(
        self,
        store: AccountStore,
        revocations: Revocations,
        tree: Callable[[], OrgTree],
        sessions: AccountSessions | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.revocations = revocations
        self._tree = tree  # read on every call: agencies registered meanwhile are in it
        self.sessions = sessions
        self.clock = clock

    def check_actor(self, actor: Principal, unit: str) -> None:
        """Forbidden unless ``actor`` is an admin covering ``unit`` in every tree holding it."""
        actor.require_scope(Scope.ADMIN)
        if unit == COUNTRY:
            if actor.unit != COUNTRY:
                raise Forbidden("only the country's admin manages the country's accounts")
            return
        holders = [t for t in self._tree().versions if unit in t]
        if not holders or not all(actor.covers(t, unit) for t in holders):
            raise Forbidden(f"unit {unit} is not under {actor.unit}")

    async def get(self, actor: Principal, username: str) -> Account:
        """The account ``username``, for an actor that manages it."""
        account = await self.store.get(username)
        if account is None:
            raise UnknownAccount(username)
        self.check_actor(actor, account.unit)
        return account

    async def create(
        self,
        actor: Principal,
        *,
        username: str,
        display_name: str,
        unit: str,
        roles: Iterable[str],
        password: str | None = None,
        oidc_subject: str | None = None,
        email: str = "",
    ) -> AccountChange:
        """A new account (AccountExists when the username is taken). Without a password the
        account signs in only through OpenID Connect, once linked."""
        username = check_username(username.strip())
        name = check_display_name(display_name)
        unit = unit.strip()
        scope = account_scope(self._tree(), unit)
        granted = parse_roles(list(roles))
        address = check_email(email)
        self.check_actor(actor, unit)
        hashed = None
        if password is not None:
            hashed = await asyncio.to_thread(passwords.hash_password, check_password(password, username))
        account = Account(
            username,
            name,
            unit,
            granted,
            password_hash=hashed,
            oidc_subject=oidc_subject,
            email=address,
            created_at=self.clock(),
            created_by=actor.account or actor.actor,
            scope=scope,
        )
        await self.store.create(account)
        return AccountChange(Action.ACCOUNT_CREATE, None, account)

    async def disable(self, actor: Principal, username: str) -> AccountChange:
        self._not_self(actor, username, "disable")
        await self.get(actor, username)
        await self.revocations.revoke(account_key(username), f"account disabled by {actor.actor}")
        change = await self._change(actor, username, Action.ACCOUNT_DISABLE, lambda a: {"disabled": True})
        await self._end_sessions(username)
        return change

    async def enable(self, actor: Principal, username: str) -> AccountChange:
        change = await self._change(actor, username, Action.ACCOUNT_ENABLE, lambda a: {"disabled": False})
        await self.revocations.lift(account_key(username))
        return change

    async def set_roles(self, actor: Principal, username: str, roles: Iterable[str]) -> AccountChange:
        self._not_self(actor, username, "change the roles of")
        granted = parse_roles(list(roles))
        return await self._change(actor, username, Action.ACCOUNT_ROLES, lambda a: {"roles": granted})

    async def reset_password(self, actor: Principal, username: str, password: str) -> AccountChange:
        """A new password set by an admin; the account's sessions end."""
        hashed = await asyncio.to_thread(passwords.hash_password, check_password(password, username))
        change = await self._change(actor, username, Action.ACCOUNT_RESET, lambda a: {"password_hash": hashed})
        await self._end_sessions(username)
        return change

    async def change_password(
        self, username: str, current: str, new: str, keep_session: str | None = None
    ) -> AccountChange:
        """The account's own change of password: ``current`` must match; the account's other
        sessions end (``keep_session``, the key of the one it was made in, stays)."""
        account = await self.store.get(username)
        ok = await asyncio.to_thread(passwords.verify, account.password_hash if account else None, current)
        if account is None or not ok:
            raise AccountError("current_password", "not the current password")
        hashed = await asyncio.to_thread(passwords.hash_password, check_password(new, username))
        after = account.changed(password_hash=hashed)
        try:
            await self.store.update(after)
        except StaleAccount:
            raise AccountError("current_password", "the account changed meanwhile; try again") from None
        await self._end_sessions(username, keep_session)
        return AccountChange(Action.ACCOUNT_PASSWORD, account, after)

    async def link_oidc(self, actor: Principal, username: str, subject: str | None) -> AccountChange:
        """Links the account to the OpenID Connect identity ``subject`` (``"<issuer> <sub>"``), or
        unlinks it (None); AccountExists when another account has that identity."""
        linked = check_oidc_subject(subject) if subject is not None else None
        return await self._change(actor, username, Action.ACCOUNT_LINK_OIDC, lambda a: {"oidc_subject": linked})

    def _not_self(self, actor: Principal, username: str, what: str) -> None:
        if actor.account == username:
            raise Forbidden(f"an admin cannot {what} their own account")

    async def _change(
        self, actor: Principal, username: str, action: Action, changes: Callable[[Account], dict[str, object]]
    ) -> AccountChange:
        """Reads the account, checks the actor, stores the changed version; read again when
        another change came in between."""
        for _ in range(RETRIES):
            before = await self.get(actor, username)
            after = before.changed(**changes(before))
            try:
                await self.store.update(after)
            except StaleAccount:
                continue
            return AccountChange(action, before, after)
        raise StaleAccount(username)

    async def _end_sessions(self, username: str, keep: str | None = None) -> None:
        if self.sessions is not None:
            await self.sessions.end_account(username, keep)
