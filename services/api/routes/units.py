"""Units: search a tree, and one unit with its parent and children."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from services.api.deps import (
    CODE_OR_COUNTRY_PATTERN,
    RATIONED,
    Code,
    CurrentPrincipal,
    ReadsDep,
    Tree,
    json_response,
    known,
    ration,
)
from services.api.views import UnitOut, UnitsOut, unit_out
from shared.domain.auth import Scope
from shared.http.base import authorize

router = APIRouter()


@router.get(
    "/v1/units",
    response_model=UnitsOut,
    summary="Find units by name or code (accents and case ignored) and/or list a parent's children",
    responses=RATIONED,
)
async def find_units(
    tree: Tree,
    principal: CurrentPrincipal,
    reads: ReadsDep,
    q: Annotated[str, Query(description="part of a name or code: 'ba thuoc' finds Bá Thước", max_length=40)] = "",
    parent: Annotated[
        str | None, Query(pattern=CODE_OR_COUNTRY_PATTERN, description="only this unit's children (VN: provinces)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> Response:
    ration(reads, principal)
    authorize(principal, Scope.READ, tree, parent)
    if parent is not None:
        known(tree, parent)
    return json_response(reads.search(tree, principal, q, parent, limit))


@router.get("/v1/units/{code}", response_model=UnitOut, summary="A unit: name, level, parent, children")
async def get_unit(code: Code, tree: Tree, principal: CurrentPrincipal) -> UnitOut:
    authorize(principal, Scope.READ, tree, code)
    known(tree, code)
    return unit_out(tree, code)
