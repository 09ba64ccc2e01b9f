"""The FastAPI dependencies of the ingest routes, typed: the components and the caller's token.

Each is a coroutine, so FastAPI runs it on the event loop rather than in a worker thread.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.security import HTTPAuthorizationCredentials

from services.ingest.components import IngestComponents
from shared.domain.auth import Principal
from shared.http.base import BEARER


def components_of(app: FastAPI) -> IngestComponents:
    """The components the app's lifespan opened."""
    components = getattr(app.state, "components", None)
    if not isinstance(components, IngestComponents):
        raise RuntimeError("ingest's components are opened by the app's lifespan, which has not started")
    return components


async def get_components(request: Request) -> IngestComponents:
    return components_of(request.app)


Components = Annotated[IngestComponents, Depends(get_components)]


async def current_principal(
    request: Request, _declared: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]
) -> Principal:
    """The verified principal of the request (401 otherwise; 503 when revocations are unreadable).
    ``_declared`` puts the bearer scheme in the OpenAPI schema; the Authenticator reads the header."""
    return await components_of(request.app).auth.principal(request)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
