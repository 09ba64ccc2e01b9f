"""Reminders: what in a unit's subtree is not reported with its deadline in the next N days."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from services.api.deps import (
    CODE_OR_COUNTRY_PATTERN,
    RATIONED,
    Components,
    CurrentPrincipal,
    json_response,
    known,
    query_error,
    ration,
)
from services.api.reminders_due import RemindersDueOut, due_on, reminders_due, trees_of
from shared.domain.auth import Scope
from shared.domain.reminders import MAX_WITHIN_DAYS, check_day, vietnam_day
from shared.http.base import authorize

router = APIRouter()


@router.get(
    "/v1/reminders/due",
    response_model=RemindersDueOut,
    summary="Not reported, deadline in N days: each series and period due soon, and who under the unit has not sent it",
    responses=RATIONED,
)
async def get_reminders_due(
    c: Components,
    principal: CurrentPrincipal,
    unit: Annotated[str, Query(pattern=CODE_OR_COUNTRY_PATTERN, description="unit code, e.g. 38, 386, or VN")],
    within_days: Annotated[
        int, Query(ge=0, le=MAX_WITHIN_DAYS, description="deadlines from `on` to this many days after it")
    ] = 7,
    on: Annotated[date | None, Query(description="the day asked about (YYYY-MM-DD); default today in Vietnam")] = None,
) -> Response:
    ration(c.reads, principal)
    day = on or vietnam_day(datetime.now(UTC))
    try:
        check_day(day)
    except ValueError as exc:
        raise query_error("on", str(exc), "on") from None
    items = due_on(c.reads.catalog, day, within_days)
    for tree in trees_of(c.tree, unit, items, day):
        authorize(principal, Scope.READ, tree, unit)
        known(tree, unit)
    return json_response(await reminders_due(c.reads.reader, c.reads.catalog, c.tree, unit, day, within_days, items))
