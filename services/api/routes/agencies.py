"""Agencies: registering one under a commune, district or province (admin scope)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import JSONResponse

from services.api.agencies import AgencyConflict, AgencyIn, RegistryUnavailable, TooManyAgencies
from services.api.deps import Components, CurrentPrincipal, Tree, known
from services.api.views import UnitOut, unit_out
from shared.domain.auth import Scope
from shared.http.base import authorize, error

router = APIRouter()


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
