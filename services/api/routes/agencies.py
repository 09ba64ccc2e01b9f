"""Agencies: registering one under a commune, district or province, renaming and closing it
(admin scope over its parent)."""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.responses import JSONResponse

from services.api.agencies import (
    AgencyChange,
    AgencyConflict,
    AgencyIn,
    NotAnAgency,
    RegistryUnavailable,
    TooManyAgencies,
    audited_changes,
    state_of,
)
from services.api.components import ApiComponents
from services.api.deps import Components, CurrentPrincipal, Tree, known
from services.api.views import UnitOut, unit_out
from shared.domain.audit import AuditEntry, entry_scope
from shared.domain.auth import Principal, Scope
from shared.domain.hierarchy import Level, OrgTree
from shared.http.base import authorize, error

router = APIRouter()
log = logging.getLogger(__name__)


class AgencyState(UnitOut):
    closed_from: str | None = None  # ISO date; None: open


def agency_state(tree: OrgTree, code: str) -> AgencyState:
    closed = tree.closed_from(code)
    return AgencyState(**unit_out(tree, code).model_dump(), closed_from=closed.isoformat() if closed else None)


@router.post(
    "/v1/admin/agencies",
    status_code=201,
    response_model=UnitOut,
    summary="Register an agency under a commune, district or province (admin scope)",
    responses={
        200: {"model": UnitOut, "description": "already registered, identically"},
        409: error("conflicts with a registered unit, or the parent has the most agencies allowed"),
        503: error("the agency registry is not available"),
    },
)
async def register_agency(agency: AgencyIn, tree: Tree, principal: CurrentPrincipal, components: Components) -> Any:
    authorize(principal, Scope.ADMIN, tree, agency.parent)
    known(tree, agency.parent)
    try:
        created = await components.agencies.register(agency, tree, principal)
    except (TooManyAgencies, AgencyConflict) as exc:
        raise HTTPException(409, str(exc)) from None
    except RegistryUnavailable as exc:
        raise HTTPException(503, str(exc)) from None
    return JSONResponse(unit_out(tree, agency.code).model_dump(mode="json"), status_code=201 if created else 200)


@router.patch(
    "/v1/admin/agencies/{code}",
    response_model=AgencyState,
    summary="Rename an agency, close it from a date, or reopen it (admin scope over its parent)",
    responses={404: error("no such agency in the tree"), 503: error("the agency registry is not available")},
)
async def change_agency(
    change: AgencyChange,
    tree: Tree,
    principal: CurrentPrincipal,
    components: Components,
    request: Request,
    code: str = Path(pattern=r"^[0-9]{2,5}-[a-z0-9][a-z0-9_]{0,39}$", description="<parent>-<slug>"),
) -> Any:
    authorize(principal, Scope.ADMIN, tree, code)
    known(tree, code)
    unit = tree.get(code)
    if unit.level != Level.AGENCY or unit.parent is None:
        raise HTTPException(404, str(NotAnAgency(code)))
    authorize(principal, Scope.ADMIN, tree, unit.parent)
    before = state_of(tree, code)
    try:
        await components.agencies.change(code, change, tree)
    except RegistryUnavailable as exc:
        raise HTTPException(503, str(exc)) from None
    await audit_change(components, request, principal, code, before, state_of(tree, code))
    return agency_state(tree, code)


async def audit_change(
    components: ApiComponents,
    request: Request,
    principal: Principal,
    code: str,
    before: dict[str, str | None],
    after: dict[str, str | None],
) -> None:
    """The change is made: an entry that cannot be written is logged and counted, not answered
    as a failure (as the pages do, services/api/web/audit.py)."""
    for action, old, new in audited_changes(before, after):
        entry = AuditEntry(
            at=time.time(),
            actor=principal.actor,
            action=action,
            unit=code,
            scope=entry_scope(components.tree, code),
            origin=request.client.host if request.client else None,
            subject=code,
            before=dict(old),
            after=dict(new),
        )
        try:
            await components.audit.append(entry)
        except Exception:
            log.exception("audit entry not written", extra={"action": action.value, "unit": code})
            components.metrics.audit_failures.labels(action.value).inc()
