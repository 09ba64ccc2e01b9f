"""Totals: a unit's, its children's (drill-down), and a 2025 unit's re-mapped history."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from services.api.approval_views import children_with_approvals, totals_with_approvals
from services.api.deps import (
    RATIONED,
    Code,
    Components,
    CurrentPrincipal,
    Period,
    ReadsDep,
    Tree,
    json_response,
    known,
    period_error,
    query_error,
    ration,
    valid_period,
)
from services.api.reads import NotALegacyPeriod, NoTree2025, SourcesOutsideToken
from services.api.routes.approvals import listings_of
from services.api.routes.targets import target_listings_of
from services.api.target_views import (
    TargetedChildrenTotalsOut,
    TargetedTotalsOut,
    children_with_targets,
    totals_with_targets,
)
from services.api.views import RemappedTotalsOut
from shared.domain.auth import Scope
from shared.domain.periods import PeriodError
from shared.http.base import authorize

router = APIRouter()


@router.get(
    "/v1/units/{code}/totals",
    response_model=TargetedTotalsOut,
    summary="Totals of the unit's whole subtree for a period, with the unit's approvals and targets of it",
)
async def get_totals(
    request: Request, code: Code, period: Period, tree: Tree, reads: ReadsDep, principal: CurrentPrincipal
) -> Response:
    authorize(principal, Scope.READ, tree, code)
    known(tree, code)
    try:
        body = await reads.totals(tree, code, period)
    except PeriodError as exc:
        raise period_error(exc) from None
    body = await totals_with_approvals(body, listings_of(request), code, period)
    targets = target_listings_of(request)
    return json_response(await totals_with_targets(body, targets, reads.catalog, code, period))


@router.get(
    "/v1/units/{code}/children/totals",
    response_model=TargetedChildrenTotalsOut,
    summary="One row of totals per child unit (drill-down), each with the child's approvals and targets",
)
async def get_children_totals(
    request: Request, code: Code, period: Period, tree: Tree, reads: ReadsDep, principal: CurrentPrincipal
) -> Response:
    authorize(principal, Scope.READ, tree, code)
    known(tree, code)
    try:
        body = await reads.children(tree, code, period)
    except PeriodError as exc:
        raise period_error(exc) from None
    body = await children_with_approvals(body, listings_of(request), code, period)
    targets = target_listings_of(request)
    return json_response(await children_with_targets(body, targets, reads.catalog, code, period))


@router.get(
    "/v1/units/{code}/remapped/totals",
    response_model=RemappedTotalsOut,
    summary="A unit of the 2025 tree with the history of the old units it took over, for a period before July 2025",
    responses=RATIONED,
)
async def get_remapped_totals(
    code: Code, period: Period, components: Components, reads: ReadsDep, principal: CurrentPrincipal
) -> Response:
    ration(reads, principal)
    try:
        new = reads.tree_2025(components.tree)
    except NoTree2025 as exc:
        raise HTTPException(404, detail=str(exc)) from None
    authorize(principal, Scope.READ, new, code)
    known(new, code)
    try:
        return json_response(await reads.remapped(components.tree, principal, code, valid_period(period)))
    except NotALegacyPeriod as exc:
        raise query_error("period", str(exc), "period") from None
    except SourcesOutsideToken as exc:
        raise HTTPException(403, str(exc)) from None
