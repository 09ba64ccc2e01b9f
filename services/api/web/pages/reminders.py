"""The reminders page: "chưa báo cáo, sắp đến hạn", what in the unit's subtree is not reported with
its deadline within the next days (services/api/reminders_due.py, as the API's /v1/reminders/due)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.api.reminders_due import due_on, reminders_due, trees_of
from services.api.web.access import allow
from services.api.web.deps import CurrentSession, Web
from services.api.web.errors import PageError
from services.api.web.render import page
from shared.domain.auth import Scope
from shared.domain.periods import MAX_YEAR, MIN_YEAR
from shared.domain.reminders import MAX_WITHIN_DAYS, check_day, vietnam_day

router = APIRouter()
DEFAULT_WITHIN_DAYS = 7


def _day(on: str | None) -> date:
    if not on:
        return vietnam_day(datetime.now(UTC))
    try:
        return check_day(date.fromisoformat(on))
    except ValueError:
        years = f"từ năm {MIN_YEAR} đến {MAX_YEAR}"
        raise PageError(
            422, f"Ngày «{on}» không hợp lệ; hãy nhập theo dạng NNNN-TT-NN {years}, vd. 2025-04-10."
        ) from None


def _within(within_days: str | None) -> int:
    if not within_days:
        return DEFAULT_WITHIN_DAYS
    if not within_days.isdigit() or int(within_days) > MAX_WITHIN_DAYS:
        raise PageError(422, f"Số ngày phải là số nguyên từ 0 đến {MAX_WITHIN_DAYS}.")
    return int(within_days)


@router.get("/reminders")
async def reminders_page(
    request: Request,
    web: Web,
    s: CurrentSession,
    unit: str | None = None,
    within_days: str | None = None,
    on: str | None = None,
) -> Response:
    code = unit or s.principal.unit
    day, within = _day(on), _within(within_days)
    items = due_on(web.catalog, day, within)
    trees = trees_of(web.tree, code, items, day)
    for tree in trees:
        allow(s.principal, tree, Scope.READ, code)
    listing = await reminders_due(web.api.reader, web.catalog, web.tree, code, day, within, items)
    return page(
        request,
        web,
        "reminders.html",
        s,
        unit=trees[0].get(code),
        on=day,
        within_days=within,
        max_within_days=MAX_WITHIN_DAYS,
        listing=listing.model_dump(mode="python"),
    )
