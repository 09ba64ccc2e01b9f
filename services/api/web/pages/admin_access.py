"""What the admin pages share: who may open them (a session holding the admin scope), which units
an admin acts on (those it covers in every version of the tree holding them: codes are reused
across versions), the forms' fields, and listings merged over the admin's unit in each tree.

A refusal is a page: 403 for a unit outside the admin's, 404 for one no tree holds."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import TypeVar

from fastapi import Request

from services.api.web.errors import PageError
from shared.domain.auth import Principal, Scope
from shared.domain.hierarchy import COUNTRY, OrgTree
from shared.domain.periods import VIETNAM_TZ

NOT_ADMIN = "Trang quản trị chỉ dành cho tài khoản hoặc mã truy cập có quyền quản trị (admin)."
PAGE_SIZE = 50

T = TypeVar("T")


def admin_of(principal: Principal) -> Principal:
    """``principal`` when it holds the admin scope; a 403 page otherwise."""
    if Scope.ADMIN not in principal.scopes:
        raise PageError(403, NOT_ADMIN)
    return principal


def holder(tree: OrgTree, unit: str) -> OrgTree:
    """The version of the tree to place ``unit`` in: the one in force today when it holds it,
    else the newest that does; a 404 page when none does."""
    today = tree.in_force()
    if unit in today:
        return today
    found = next((t for t in reversed(today.versions) if unit in t), None)
    if found is None:
        raise PageError(404, f"Không có đơn vị mã {unit!r} (unit).")
    return found


def check_covers(tree: OrgTree, principal: Principal, unit: str) -> None:
    """A 403 page unless ``principal`` covers ``unit`` in every version of the tree holding it
    (404 when none holds it)."""
    holder(tree, unit)
    if principal.unit == COUNTRY:
        return
    if not all(principal.covers(t, unit) for t in tree.versions if unit in t):
        raise PageError(403, f"Đơn vị {unit} không thuộc đơn vị {principal.unit} của bạn.")


def listing_keys(tree: OrgTree, principal: Principal) -> list[str]:
    """What a listing of the admin's accounts or tokens selects on: its unit qualified by each
    version of the tree holding it ("2025:38", "legacy:38"), or ``VN`` for the country."""
    if principal.unit == COUNTRY:
        return [COUNTRY]
    return [f"{t.tree_id}:{principal.unit}" for t in tree.versions if principal.unit in t]


async def merged_page(
    keys: Sequence[str],
    fetch: Callable[[str, str | None, int], Awaitable[tuple[list[T], str | None]]],
    key_of: Callable[[T], str],
    after: str | None,
    newest_first: bool,
    size: int = PAGE_SIZE,
) -> tuple[list[T], str | None]:
    """One page over several listing keys of one store, whose pages are ordered by ``key_of``
    (descending when ``newest_first``) and continue after a cursor that is the last item's key:
    the same cursor continues every key's listing, so the merged pages are in order too."""
    found: dict[str, T] = {}
    more = False
    for key in keys:
        items, next_cursor = await fetch(key, after, size)
        more = more or next_cursor is not None
        for item in items:
            found.setdefault(key_of(item), item)
    ordered = sorted(found, reverse=newest_first)
    page = [found[k] for k in ordered[:size]]
    return page, (key_of(page[-1]) if page and (more or len(ordered) > size) else None)


async def form_of(request: Request) -> tuple[dict[str, str], dict[str, list[str]]]:
    """A posted form's fields: the single values (stripped) and every value of each field."""
    form = await request.form()
    single = {k: v.strip() for k, v in form.items() if isinstance(v, str)}
    multi = {k: [v for v in form.getlist(k) if isinstance(v, str)] for k in form}
    return single, multi


def fmt_time(unix_seconds: float) -> str:
    """A time as the pages show it: Vietnam time, day first (07/12/2026 20:57)."""
    return datetime.fromtimestamp(unix_seconds, UTC).astimezone(VIETNAM_TZ).strftime("%d/%m/%Y %H:%M")
