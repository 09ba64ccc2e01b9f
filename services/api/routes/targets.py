"""Targets (shared/domain/targets.py): set a unit's target for a metric and a period, remove it,
list a subtree's targets. Setting and removing need the ``submit`` or ``approve`` scope and a
unit that covers the target's; listing needs ``read``. Each change is recorded in the audit log.
Totals and drill-downs show the targets rolled up, with the achievement (services/api/target_views.py)."""

from __future__ import annotations

import logging
import time
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, StrictFloat, StrictInt, StrictStr

from services.api.deps import Components, CurrentPrincipal, known
from services.api.target_views import TargetListings, TargetOut, target_out
from shared.adapters.targets import TargetStore
from shared.domain.audit import Action, AuditEntry
from shared.domain.auth import Forbidden, Principal, Scope
from shared.domain.catalog import Catalog
from shared.domain.hierarchy import COUNTRY, OrgTree
from shared.domain.periods import ACCEPTED_FORMS, PeriodError, parse_period
from shared.domain.reports import UNIT_CODE_PATTERN
from shared.domain.targets import SETTERS, Target, TargetError, check_may_set, set_target, target_metric
from shared.http.base import authorize, error

router = APIRouter()
log = logging.getLogger(__name__)

METRIC = r"^[a-z0-9_.]{3,120}$"
PERIOD = r"^[0-9A-Z-]{4,16}$"
VALUE_DOC = "a number or a range as officials write it: 120, 03–04, 450 - 500, 9,96, 85%"
# strict: JSON true is not the number 1 here
Value = Annotated[StrictStr | StrictInt | StrictFloat, Field(description=VALUE_DOC)]


class TargetIn(BaseModel):
    unit: str = Field(pattern=UNIT_CODE_PATTERN, description="the unit whose target it is")
    metric: str = Field(pattern=METRIC, description="<series>.<field> or <series>.<rate>")
    period: str = Field(max_length=32, description="the period, e.g. 2024, 2020-2025, 2025-Q4")
    value: Value


class TargetValueIn(BaseModel):
    value: Value


class TargetSetOut(TargetOut):
    replaced: TargetOut | None = Field(description="the target this one replaced; null when none stood")


class TargetsOut(BaseModel):
    unit: str
    period: str
    targets: list[TargetOut] = Field(description="the targets set at the unit and every unit under it")


def targets_of(request: Request) -> TargetStore:
    """The API's target store (services/api/components.py)."""
    store: TargetStore = request.app.state.components.targets
    return store


def target_listings_of(request: Request) -> TargetListings:
    """The read path's listings of targets over the API's store, kept a few seconds."""
    listings: TargetListings = request.app.state.components.target_listings
    return listings


def _field_error(where: str, exc: TargetError) -> HTTPException:
    return HTTPException(422, detail=[{"loc": [where, exc.field], "msg": str(exc), "type": "target"}])


def _value_text(value: str | int | float) -> str:
    return value if isinstance(value, str) else str(value)


async def audit(request: Request, principal: Principal, action: Action, target: Target, before: Target | None) -> None:
    """The change is stored already: an entry that cannot be written is logged and counted, not
    answered as a failure (as for approvals). Its scope is the unit's path in the period's tree."""
    components = request.app.state.components
    entry = AuditEntry(
        at=time.time(),
        actor=principal.actor,
        action=action,
        unit=target.unit,
        scope=_scope(components.tree.for_period(target.period), target),
        origin=request.client.host if request.client else None,
        period=target.period,
        subject=target.id,
        before=_fields(before) if before is not None else None,
        after=_fields(target) if action is Action.TARGET_SET else None,
        detail=target.metric,
    )
    try:
        await components.audit.append(entry)
    except Exception:
        log.exception("audit entry not written", extra={"action": action.value, "unit": target.unit})
        components.metrics.audit_failures.labels(action.value).inc()


def _scope(tree: OrgTree, target: Target) -> tuple[str, ...]:
    if target.unit == COUNTRY:
        return (COUNTRY,)
    return (*(f"{tree.tree_id}:{code}" for code in tree.path(target.unit)), COUNTRY)


def _fields(target: Target) -> dict[str, Any]:
    return {"metric": target.metric, "target": target.text, "set_by": target.set_by}


async def put_target(
    request: Request, principal: Principal, tree: OrgTree, unit: str, metric: str, period: str, value: str
) -> tuple[Target, Target | None]:
    """Sets the target (the API's routes and the unit page) and records it: TargetError for a
    metric or value that is not one, Forbidden outside the principal's reach. The target set and
    the one it replaced."""
    catalog: Catalog = request.app.state.components.reads.catalog
    target = set_target(principal, tree, unit, target_metric(catalog, metric), period, value, time.time())
    before = await targets_of(request).put(target)
    target_listings_of(request).clear()
    await audit(request, principal, Action.TARGET_SET, target, before)
    return target, before


async def drop_target(
    request: Request, principal: Principal, tree: OrgTree, unit: str, metric: str, period: str
) -> Target | None:
    """Removes the target and records it; the target removed, None when none stood. Forbidden
    outside the principal's reach."""
    check_may_set(principal, tree, unit)
    removed = await targets_of(request).remove(unit, metric, period)
    if removed is not None:
        target_listings_of(request).clear()
        await audit(request, principal, Action.TARGET_REMOVE, removed, removed)
    return removed


def _allowed(principal: Principal, tree: OrgTree, unit: str) -> None:
    """403 without a scope that sets targets or for a unit outside the token's subtree (whether or
    not it exists, as ``authorize`` answers); 404 for an unknown unit the token could see."""
    if not any(s in principal.scopes for s in SETTERS):
        raise HTTPException(403, "this token lacks the 'submit' or 'approve' scope that setting a target needs")
    if not principal.may_see(tree, unit):
        raise HTTPException(403, f"unit {unit} is outside this token's unit {principal.unit}")
    known(tree, unit)


def period_tree(org: OrgTree, period: str, where: str) -> OrgTree:
    """The tree of ``period``; a 422 naming ``period`` in ``where`` (query, path or body)."""
    try:
        parse_period(period)
    except PeriodError as exc:
        detail = [{"loc": [where, "period"], "msg": str(exc), "type": "period", "accepted": ACCEPTED_FORMS}]
        raise HTTPException(422, detail=detail) from None
    return org.for_period(period)


async def _set(
    request: Request, principal: Principal, org: OrgTree, unit: str, metric: str, period: str, value: Any, where: str
) -> JSONResponse:
    tree = period_tree(org, period, where)
    _allowed(principal, tree, unit)
    try:
        target, before = await put_target(request, principal, tree, unit, metric, period, _value_text(value))
    except TargetError as exc:
        raise _field_error("body", exc) from None
    except Forbidden as exc:
        raise HTTPException(403, str(exc)) from None
    shown = TargetSetOut(**target_out(target).model_dump(), replaced=target_out(before) if before else None)
    return JSONResponse(shown.model_dump(), status_code=200 if before else 201)


SET_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": TargetSetOut, "description": "a target stood and is replaced"},
    404: error("no such unit in the period's tree"),
}


@router.post(
    "/v1/targets",
    status_code=201,
    response_model=TargetSetOut,
    summary="Set a unit's target for a metric and a period (submit or approve scope)",
    responses=SET_RESPONSES,
)
async def post_target(
    body: TargetIn, request: Request, components: Components, principal: CurrentPrincipal
) -> JSONResponse:
    return await _set(request, principal, components.tree, body.unit, body.metric, body.period, body.value, "body")


@router.put(
    "/v1/targets/{unit}/{metric}/{period}",
    status_code=201,
    response_model=TargetSetOut,
    summary="Set or replace a unit's target for a metric and a period (submit or approve scope)",
    responses=SET_RESPONSES,
)
async def put_target_route(
    body: TargetValueIn,
    request: Request,
    components: Components,
    principal: CurrentPrincipal,
    unit: Annotated[str, Path(pattern=UNIT_CODE_PATTERN)],
    metric: Annotated[str, Path(pattern=METRIC)],
    period: Annotated[str, Path(pattern=PERIOD)],
) -> JSONResponse:
    return await _set(request, principal, components.tree, unit, metric, period, body.value, "path")


@router.delete(
    "/v1/targets/{unit}/{metric}/{period}",
    response_model=TargetOut,
    summary="Remove a unit's target (submit or approve scope)",
    responses={404: error("no such unit, or no target set")},
)
async def delete_target(
    request: Request,
    components: Components,
    principal: CurrentPrincipal,
    unit: Annotated[str, Path(pattern=UNIT_CODE_PATTERN)],
    metric: Annotated[str, Path(pattern=METRIC)],
    period: Annotated[str, Path(pattern=PERIOD)],
) -> TargetOut:
    tree = period_tree(components.tree, period, "path")
    _allowed(principal, tree, unit)
    try:
        removed = await drop_target(request, principal, tree, unit, metric, period)
    except Forbidden as exc:
        raise HTTPException(403, str(exc)) from None
    if removed is None:
        raise HTTPException(404, f"no target of {metric} is set for unit {unit} in {period}")
    return target_out(removed)


@router.get(
    "/v1/targets",
    response_model=TargetsOut,
    summary="The targets of a period set at a unit and every unit under it (read scope)",
)
async def get_targets(
    request: Request,
    components: Components,
    principal: CurrentPrincipal,
    unit: Annotated[str, Query(pattern=UNIT_CODE_PATTERN, description="a unit code (a province, district, ...)")],
    period: Annotated[str, Query(max_length=32)],
) -> TargetsOut:
    tree = period_tree(components.tree, period, "query")
    authorize(principal, Scope.READ, tree, unit)
    known(tree, unit)
    found = await targets_of(request).listing(unit, period)
    return TargetsOut(unit=unit, period=period, targets=[target_out(t) for t in found])
