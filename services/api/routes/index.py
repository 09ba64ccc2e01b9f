"""The root: where a browser or a program goes from there."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

router = APIRouter()


@router.get("/", include_in_schema=False)
async def root(request: Request) -> Response:
    """Where to go from the root: a browser to the pages, a program to the API's description."""
    if "text/html" in request.headers.get("accept", ""):
        return RedirectResponse("/web/", status_code=303)
    return JSONResponse({"web": "/web/", "docs": "/docs", "openapi": "/openapi.json"})
