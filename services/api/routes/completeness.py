"""Completeness: who in a unit's subtree has not reported a series for a period."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from services.api.approval_views import MissingApprovedOut, with_approvals
from services.api.deps import (
    RATIONED,
    Code,
    CurrentPrincipal,
    Period,
    ReadsDep,
    Tree,
    json_response,
    known,
    period_error,
    query_error,
    ration,
)
from services.api.reads import UnknownSeries
from services.api.routes.approvals import approvals_of
from shared.domain.auth import Scope
from shared.domain.periods import PeriodError
from shared.http.base import authorize

router = APIRouter()


@router.get(
    "/v1/units/{code}/completeness",
    response_model=MissingApprovedOut,
    summary="Who in the subtree has not reported a series for a period",
    responses=RATIONED,
)
async def get_completeness(
    code: Code,
    period: Period,
    tree: Tree,
    reads: ReadsDep,
    series: Annotated[str, Query(description="a report kind or indicator.<code>", max_length=80)],
    principal: CurrentPrincipal,
    request: Request,
) -> Response:
    ration(reads, principal)
    authorize(principal, Scope.READ, tree, code)
    known(tree, code)
    try:
        missing = await reads.missing(tree, code, series, period)
        # approval: the approved units counted and listed next to those that reported
        return json_response(await with_approvals(missing, approvals_of(request), reads.catalog, tree))
    except UnknownSeries as exc:
        raise query_error("series", str(exc), "series") from None
    except PeriodError as exc:
        raise period_error(exc) from None
