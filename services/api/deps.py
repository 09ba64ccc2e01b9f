"""The read API's FastAPI dependencies and parameters, and the HTTP answers its routes share.

Dependencies are coroutines: FastAPI runs a plain function dependency in a worker thread, two
thread hops per request for nothing.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from services.api.components import ApiComponents
from services.api.reads import Reads, TooManyReads
from services.api.repository import TotalsReader
from shared.domain.auth import Principal
from shared.domain.hierarchy import COUNTRY, OrgTree, UnknownTree
from shared.domain.periods import ACCEPTED_FORMS, PeriodError, parse_period
from shared.domain.reports import UNIT_CODE_PATTERN
from shared.http.base import error, opened_components, principal_dependency
from shared.http.ratelimit import retry_after


def components_of(app: FastAPI) -> ApiComponents:
    """The components the app's lifespan opened."""
    return opened_components(app, ApiComponents, "the API")


async def get_components(request: Request) -> ApiComponents:
    return components_of(request.app)


Components = Annotated[ApiComponents, Depends(get_components)]


current_principal = principal_dependency(components_of)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


async def get_reader(request: Request) -> TotalsReader:
    return components_of(request.app).reader


async def get_reads(request: Request) -> Reads:
    return components_of(request.app).reads


def query_error(name: str, message: str, kind: str, **more: Any) -> HTTPException:
    """A 422 naming the query parameter ``name``, shaped like FastAPI's own validation errors."""
    return HTTPException(422, detail=[{"loc": ["query", name], "msg": message, "type": kind, **more}])


def period_error(exc: PeriodError) -> HTTPException:
    return query_error("period", str(exc), "period", accepted=ACCEPTED_FORMS)


def valid_period(period: str) -> str:
    """``period`` when it is one (in a form of ``ACCEPTED_FORMS``), else a 422 naming it."""
    try:
        parse_period(period)
    except PeriodError as exc:
        raise period_error(exc) from None
    return period


async def get_tree(
    request: Request,
    tree: Annotated[
        str | None,
        Query(
            description="legacy (the tree before 2025-07-01, with districts) or 2025 (from 2025-07-01); "
            "default: the tree valid at the end of `period`, or the tree in force today without a period",
            max_length=16,
        ),
    ] = None,
) -> OrgTree:
    """The tree version a request is about: ``tree`` when named, else the one valid at the end
    of the request's ``period`` (a code names a unit only within its tree: 14923 is Thị trấn Cành
    Nàng before July 2025 and Xã Bá Thước after)."""
    org = components_of(request.app).tree
    period = request.query_params.get("period")
    by_period = None
    if period is not None:
        try:
            by_period = org.for_period(period)
        except PeriodError:
            valid_period(period)  # 422 naming the period, before the tree is chosen without it
    if tree is None:
        return by_period if by_period is not None else org.in_force()
    try:
        named = org.version_named(tree)
    except UnknownTree as exc:
        raise query_error("tree", str(exc), "tree") from None
    if by_period is not None and named is not by_period:
        raise query_error("tree", f"period {period} belongs to {by_period.validity()}, not to tree {tree}", "tree")
    return named


Reader = Annotated[TotalsReader, Depends(get_reader)]
ReadsDep = Annotated[Reads, Depends(get_reads)]
Tree = Annotated[OrgTree, Depends(get_tree)]
# a unit's code, or VN: the whole country (the sum of its provinces)
CODE_OR_COUNTRY_PATTERN = f"^(?:{COUNTRY}|{UNIT_CODE_PATTERN.strip('^$')})$"
Code = Annotated[
    str, Path(pattern=CODE_OR_COUNTRY_PATTERN, description="unit code, e.g. 38, 386, 14923, or VN (the country)")
]
Period = Annotated[str, Query(description=f"one of: {ACCEPTED_FORMS}", max_length=32)]

# the 429 of a rationed read, declared in the schema of the routes that ration
RATIONED: dict[int | str, dict[str, Any]] = {429: error("too many expensive reads for this token; see Retry-After")}


def ration(reads: Reads, principal: Principal) -> None:
    """Count an expensive read against the token: a 429 with Retry-After past its share."""
    try:
        reads.ration(principal)
    except TooManyReads as exc:
        wait = retry_after(exc.wait)
        raise HTTPException(429, f"{exc}; retry after {wait} s", headers={"Retry-After": wait}) from None


def known(tree: OrgTree, code: str) -> str:
    """404 for an unknown unit; called after ``authorize``, which answers 403 for a code the token
    could not see if it existed, so a token cannot probe for units outside its subtree."""
    if not tree.has(code):
        others = [t.tree_id for t in tree.versions if t is not tree and code in t]
        where = f" (it is in tree {', '.join(others)}; ask with tree= or a period of it)" if others else ""
        raise HTTPException(404, detail=f"unit {code} is not in {tree.validity()}{where}")
    return code


def json_response(body: BaseModel | bytes) -> Response:
    """A response model, or JSON already serialized, as the answer. A model is serialized once by
    pydantic-core: returned as a model, FastAPI would validate it again and encode it with the json
    module. The routes keep ``response_model`` for the schema."""
    content = body if isinstance(body, bytes) else body.model_dump_json()
    return Response(content, media_type="application/json")
