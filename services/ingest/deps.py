"""The FastAPI dependencies of the ingest routes, typed: the components and the caller's token.

Each is a coroutine, so FastAPI runs it on the event loop rather than in a worker thread.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI, Request

from services.ingest.components import IngestComponents
from shared.domain.auth import Principal
from shared.http.base import opened_components, principal_dependency


def components_of(app: FastAPI) -> IngestComponents:
    """The components the app's lifespan opened."""
    return opened_components(app, IngestComponents, "ingest")


async def get_components(request: Request) -> IngestComponents:
    return components_of(request.app)


Components = Annotated[IngestComponents, Depends(get_components)]


current_principal = principal_dependency(components_of)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
