"""The read API: `create_app(settings)` is its composition root. The routes are in
services/api/routes/, the rules in the services they call (reads.py, agencies.py, stream.py), the
parts they share in components.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.api.completeness_gauge import completeness_gauge
from services.api.components import ApiMetrics, Overrides, open_components
from services.api.repository import TotalsReader
from services.api.routes import (
    agencies,
    approvals,
    audit,
    completeness,
    exchange,
    index,
    reminders,
    stream,
    targets,
    totals,
    units,
)
from services.api.routes.health import health_router
from services.api.settings import ApiSettings
from services.api.web.routes import mount_web
from services.api.web.security import SecurityHeaders
from shared.adapters.approvals import ApprovalStore
from shared.adapters.registry import AgencyRegistry
from shared.adapters.revocations import Revocations
from shared.adapters.targets import TargetStore
from shared.domain.hierarchy import OrgTree
from shared.http.base import (
    COMMON_RESPONSES,
    NO_TELEMETRY,
    add_body_size_limit,
    add_request_metrics,
    answer_database_errors_with_503,
    answer_invalid_json_with_400,
    error,
)
from shared.http.early_auth import check_bearer_before_body


def create_app(
    settings: ApiSettings,
    *,
    reader: TotalsReader | None = None,
    tree: OrgTree | None = None,
    registry: AgencyRegistry | None = None,
    revocations: Revocations | None = None,
    approval_store: ApprovalStore | None = None,
    target_store: TargetStore | None = None,
) -> FastAPI:
    """The API app. Tests pass a ``reader`` (and a ``tree``, ``registry``, ``revocations``, stores
    of approvals and targets): the app then connects to nothing; without one it reads MongoDB and
    follows the totals topic."""
    metrics = ApiMetrics()
    given = Overrides(
        reader=reader,
        tree=tree,
        registry=registry,
        revocations=revocations,
        approvals=approval_store,
        targets=target_store,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_components(settings, metrics, given) as components:
            app.state.components = components
            # the completeness gauges per province and series (reminders, services/api/completeness_gauge.py)
            async with completeness_gauge(
                metrics.registry, components.reader, components.reads.catalog, components.tree
            ):
                yield

    app = FastAPI(
        telemetry=NO_TELEMETRY,
        title="baocao API",
        version="1",
        description="Totals of every unit's subtree, drill-down by child, and who has not reported.",
        lifespan=lifespan,
        responses={**COMMON_RESPONSES, 404: error("No such unit (only for a code the token could see if it existed)")},
    )
    for resource in (
        units,
        totals,
        completeness,
        reminders,
        stream,
        agencies,
        approvals,
        targets,
        exchange,
        audit,
        index,
    ):
        app.include_router(resource.router)
    app.include_router(health_router(app, metrics.registry))
    answer_database_errors_with_503(app)  # the pages replace it with their own, for their paths
    mount_web(app, settings)  # the pages under /web/, outside the OpenAPI schema
    check_bearer_before_body(app, settings.auth_secret.get_secret_value())  # no body read without a token
    add_body_size_limit(app, settings.max_body_bytes)
    add_request_metrics(app, metrics.requests, metrics.request_seconds)
    answer_invalid_json_with_400(app)
    app.add_middleware(SecurityHeaders)  # added last: the outermost, so every answer carries them
    return app
