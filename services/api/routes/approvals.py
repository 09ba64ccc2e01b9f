"""Approval and lock (shared/domain/approvals.py): approve a unit's figures of a series for a
period, unapprove them, list a subtree's approvals. Approving and unapproving need the
``approve`` scope (unapproving, at the level that approved or above it); listing needs ``read``.
Each approval and unapproval is recorded in the audit log."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from services.api.approval_views import ApprovalListings, ApprovalOut, approval_out
from services.api.deps import Components, CurrentPrincipal, known
from shared.adapters.approvals import ApprovalStore
from shared.domain.approvals import AlreadyApproved, Approval, approve, check_unapprove
from shared.domain.audit import Action, AuditEntry
from shared.domain.auth import Forbidden, Principal, Scope
from shared.domain.hierarchy import COUNTRY, OrgTree
from shared.domain.periods import ACCEPTED_FORMS, PeriodError, parse_period
from shared.domain.reports import UNIT_CODE_PATTERN
from shared.http.base import authorize, error

router = APIRouter()
log = logging.getLogger(__name__)

SERIES = r"^[a-z0-9_.]{1,80}$"
PERIOD = r"^[0-9A-Z-]{4,16}$"


class ApprovalIn(BaseModel):
    unit: str = Field(pattern=UNIT_CODE_PATTERN, description="the unit whose figures are approved")
    series: str = Field(pattern=SERIES, description="a report kind or indicator.<code>")
    period: str = Field(max_length=32, description="the period approved, e.g. 2026-03, 2026-Q1, 2026")


class ApprovalsOut(BaseModel):
    unit: str
    period: str
    approvals: list[ApprovalOut]


def approvals_of(request: Request) -> ApprovalStore:
    """The API's approval store (services/api/components.py)."""
    store: ApprovalStore = request.app.state.components.approvals
    return store


def listings_of(request: Request) -> ApprovalListings:
    """The read path's listings of approvals over the API's store, kept a few seconds."""
    listings: ApprovalListings = request.app.state.components.approval_listings
    return listings


def period_tree(org: OrgTree, period: str, where: str = "query") -> OrgTree:
    """The tree of ``period``; a 422 naming ``period`` in ``where`` (query, path or body)."""
    try:
        parse_period(period)
    except PeriodError as exc:
        detail = [{"loc": [where, "period"], "msg": str(exc), "type": "period", "accepted": ACCEPTED_FORMS}]
        raise HTTPException(422, detail=detail) from None
    return org.for_period(period)


def check_series(request: Request, series: str) -> None:
    catalog = request.app.state.components.reads.catalog
    if series not in catalog.series:
        raise HTTPException(
            422,
            detail=[
                {"loc": ["body", "series"], "msg": f"unknown series; one of {sorted(catalog.series)}", "type": "series"}
            ],
        )


async def audit(request: Request, principal: Principal, action: Action, approval: Approval, tree: OrgTree) -> None:
    """The approval is made or undone already: an entry that cannot be written is logged and
    counted, not answered as a failure (as for agencies). Its scope is the unit's path in the
    period's ``tree``, as a report's entry is (codes are reused across trees)."""
    components = request.app.state.components
    entry = AuditEntry(
        at=time.time(),
        actor=principal.actor,
        action=action,
        unit=approval.unit,
        scope=(*(f"{tree.tree_id}:{code}" for code in tree.path(approval.unit)), COUNTRY),
        origin=request.client.host if request.client else None,
        period=approval.period,
        subject=approval.id,
        before=_fields(approval) if action is Action.UNAPPROVE else None,
        after=_fields(approval) if action is Action.APPROVE else None,
        detail=f"{approval.series} at level {approval.level}",
    )
    try:
        await components.audit.append(entry)
    except Exception:
        log.exception("audit entry not written", extra={"action": action.value, "unit": approval.unit})
        components.metrics.audit_failures.labels(action.value).inc()


def _fields(approval: Approval) -> dict[str, Any]:
    return {k: v for k, v in asdict(approval).items() if k not in ("path", "nonce")}


class NotApproved(Exception):
    def __init__(self, unit: str, series: str, period: str) -> None:
        super().__init__(f"{series} of unit {unit} for {period} is not approved")


class ChangedMeanwhile(Exception):
    def __init__(self, unit: str, series: str, period: str) -> None:
        super().__init__(f"the approval of {series} of unit {unit} for {period} changed meanwhile")


async def make_approval(
    request: Request, principal: Principal, tree: OrgTree, unit: str, series: str, period: str
) -> Approval:
    """Approves (unit, series, period) and records it (the API's route and the unit page):
    Forbidden or AlreadyApproved when the rules refuse."""
    approval = approve(principal, tree, unit, series, period, time.time())
    await approvals_of(request).add(approval)
    listings_of(request).clear()
    await audit(request, principal, Action.APPROVE, approval, tree)
    return approval


async def undo_approval(
    request: Request, principal: Principal, tree: OrgTree, unit: str, series: str, period: str
) -> Approval:
    """Unapproves (unit, series, period) and records it: NotApproved, Forbidden (below the level
    that approved) or ChangedMeanwhile when it cannot."""
    store = approvals_of(request)
    approval = await store.get(unit, series, period)
    if approval is None:
        raise NotApproved(unit, series, period)
    check_unapprove(principal, tree, approval)
    if not await store.remove(approval, by=principal.actor, at=time.time()):
        raise ChangedMeanwhile(unit, series, period)
    listings_of(request).clear()
    await audit(request, principal, Action.UNAPPROVE, approval, tree)
    return approval


@router.post(
    "/v1/approvals",
    status_code=201,
    response_model=ApprovalOut,
    summary="Approve a unit's figures of a series for a period (approve scope): they are locked",
    responses={409: error("already approved: the message names who approved and when")},
)
async def post_approval(
    body: ApprovalIn, request: Request, components: Components, principal: CurrentPrincipal
) -> JSONResponse:
    tree = period_tree(components.tree, body.period, "body")
    authorize(principal, Scope.APPROVE, tree, body.unit)
    known(tree, body.unit)
    check_series(request, body.series)
    try:
        approval = await make_approval(request, principal, tree, body.unit, body.series, body.period)
    except AlreadyApproved as exc:
        raise HTTPException(409, str(exc)) from None
    except Forbidden as exc:
        raise HTTPException(403, str(exc)) from None
    return JSONResponse(approval_out(approval).model_dump(), status_code=201)


@router.delete(
    "/v1/approvals/{unit}/{series}/{period}",
    response_model=ApprovalOut,
    summary="Unapprove (approve scope, at the level that approved or above): the figures unlock",
    responses={404: error("not approved"), 409: error("the approval changed meanwhile; read it again")},
)
async def delete_approval(
    request: Request,
    components: Components,
    principal: CurrentPrincipal,
    unit: Annotated[str, Path(pattern=UNIT_CODE_PATTERN)],
    series: Annotated[str, Path(pattern=SERIES)],
    period: Annotated[str, Path(pattern=PERIOD)],
) -> ApprovalOut:
    tree = period_tree(components.tree, period, "path")
    authorize(principal, Scope.APPROVE, tree, unit)
    known(tree, unit)
    try:
        approval = await undo_approval(request, principal, tree, unit, series, period)
    except NotApproved as exc:
        raise HTTPException(404, str(exc)) from None
    except Forbidden as exc:
        raise HTTPException(403, str(exc)) from None
    except ChangedMeanwhile as exc:
        raise HTTPException(409, str(exc)) from None
    return approval_out(approval)


@router.get(
    "/v1/approvals",
    response_model=ApprovalsOut,
    summary="The approvals of a period for a unit and every unit under it (read scope)",
)
async def get_approvals(
    request: Request,
    components: Components,
    principal: CurrentPrincipal,
    unit: Annotated[str, Query(pattern=UNIT_CODE_PATTERN, description="a unit code (a province, district, ...)")],
    period: Annotated[str, Query(max_length=32)],
) -> ApprovalsOut:
    tree = period_tree(components.tree, period)
    authorize(principal, Scope.READ, tree, unit)
    known(tree, unit)
    found = await approvals_of(request).listing(unit, period)
    return ApprovalsOut(unit=unit, period=period, approvals=[approval_out(a) for a in found])
