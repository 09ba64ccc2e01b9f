"""Which tree and which period a page is about. A code names a unit only within its tree (14923
is Thị trấn Cành Nàng before July 2025 and Xã Bá Thước after), so every page decides its tree
first: the period's when it names one, else the tree in force today."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from services.api.web.errors import PageError
from shared.domain.catalog import Catalog
from shared.domain.hierarchy import OrgTree, Unit, UnknownTree
from shared.domain.periods import VIETNAM_TZ, PeriodError, parse_period

BAD_PERIOD = "Kỳ không hợp lệ: dùng dạng 2025-03, 2025-Q1, 2025-H1, 2025 hoặc 2020-2025."
DEFAULT_SERIES = "study_session"


def this_month() -> str:
    return datetime.now(VIETNAM_TZ).strftime("%Y-%m")


def checked_period(period: str | None) -> str:
    """The period chosen, or this month when none is."""
    text = (period or "").strip() or this_month()
    try:
        parse_period(text)
    except PeriodError:
        raise PageError(422, BAD_PERIOD) from None
    return text


def page_period(org: OrgTree, code: str, period: str | None) -> str:
    """The period a unit's page shows: the one chosen; else this month when the tree in force
    today holds the unit; else the last month of the newest tree that holds it (an abolished
    district's pages open on its last month, not on one it cannot have figures for)."""
    if (period or "").strip():
        return checked_period(period)
    tree = org.in_force()
    holder = next((t for t in reversed(tree.versions) if code in t), None)
    if code in tree or holder is None or holder.valid_to is None:
        return this_month()
    return (holder.valid_to - timedelta(days=1)).strftime("%Y-%m")


def checked_series(catalog: Catalog, series: str | None) -> str:
    series = series or DEFAULT_SERIES
    if series not in catalog.series:
        raise PageError(422, "Không có loại số liệu này.")
    return series


def named(org: OrgTree, code: str) -> Unit | None:
    """``code`` as the tree in force today names it, else as the newest tree holding it (an
    abolished district); None when no tree holds it."""
    tree = org.in_force()
    holder = tree if code in tree else next((t for t in reversed(tree.versions) if code in t), None)
    return None if holder is None else holder.get(code)


def form_tree(org: OrgTree, values: Mapping[str, Any]) -> OrgTree:
    """The tree a report form is about: its period's when a valid period is filled in, else the
    one its ``tree`` field names (a revision of a report of the old tree), else the tree in force
    today (a report of the current period)."""
    period = str(values.get("period") or "").strip()
    if period:
        try:
            return org.for_period(period)
        except PeriodError:
            pass
    try:
        return org.version_named(str(values.get("tree") or ""))
    except UnknownTree:
        return org.in_force()
