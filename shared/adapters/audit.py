"""Where the audit log is kept: a port (``AuditLog``), its MongoDB adapter and an in-memory fake
for unit tests; both pass tests/contract/test_audit_log_contract.py.

Append-only: the port has no way to change or remove an entry. Entry ids order entries by time
(``entry_id``: the microsecond, then random hex), so a page is newest first and a cursor is the
last id of the page before.
"""

from __future__ import annotations

import secrets
from dataclasses import replace
from typing import Protocol

from shared.domain.audit import AuditEntry, AuditPage, AuditQuery

PAGE_SIZE = 50


def entry_id(at: float) -> str:
    """A new entry's id: sorts as its time does (to the microsecond), unique by its random tail."""
    return f"{int(at * 1_000_000):016x}-{secrets.token_hex(4)}"


class AuditLog(Protocol):
    async def append(self, entry: AuditEntry) -> str:
        """Adds ``entry``; returns its id."""
        ...

    async def page(self, query: AuditQuery, after: str | None = None, size: int = PAGE_SIZE) -> AuditPage:
        """The entries ``query`` selects, newest first, after the cursor ``after``."""
        ...


def selected(entry: AuditEntry, query: AuditQuery) -> bool:
    return (
        query.scope in entry.scope
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

    async def page(self, query: AuditQuery, after: str | None = None, size: int = PAGE_SIZE) -> AuditPage:
        found = sorted(
            (e for e in self.entries if selected(e, query) and (after is None or e.entry_id < after)),
            key=lambda e: e.entry_id,
            reverse=True,
        )
        items = found[:size]
        return AuditPage(items, items[-1].entry_id if len(found) > size else None)
