"""The ingest service: `create_app(settings)` is its composition root.

The routes (services/ingest/routes/) only translate: they read the request, call IngestService
(services/ingest/service.py) and answer its Result as HTTP (services/ingest/outcomes.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime

from fastapi import FastAPI

from services.ingest.components import Given, open_components
from services.ingest.deps import components_of
from services.ingest.metrics import IngestMetrics
from services.ingest.publisher import Publisher
from services.ingest.ratelimit import RateLimiter
from services.ingest.routes import exchange, reports
from services.ingest.routes.health import health_router
from services.ingest.service import utc_now
from services.ingest.settings import IngestSettings
from services.ingest.submissions import SubmissionLog
from shared.adapters.revocations import Revocations
from shared.domain.hierarchy import OrgTree
from shared.http.base import (
    COMMON_RESPONSES,
    NO_TELEMETRY,
    add_body_size_limit,
    add_request_metrics,
    answer_database_errors_with_503,
    name_unparsable_bodies,
)
from shared.http.early_auth import check_bearer_before_body


def create_app(
    settings: IngestSettings,
    *,
    publisher: Publisher | None = None,
    submissions: SubmissionLog | None = None,
    tree: OrgTree | None = None,
    revocations: Revocations | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> FastAPI:
    """Real adapters are opened in the lifespan unless fakes are passed in (unit tests); ``clock``
    gives the receipt time of each report."""
    metrics = IngestMetrics()
    # a batch may always be sent whole: the burst is at least max_batch
    limiter = RateLimiter(settings.rate_limit_per_second, max(settings.rate_limit_burst, settings.max_batch))
    given = Given(publisher, submissions, tree, revocations, clock)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_components(settings, metrics, limiter, given) as components:
            app.state.components = components
            yield

    app = FastAPI(
        telemetry=NO_TELEMETRY,
        title="baocao ingest",
        version="1",
        description="Local units submit reports here. Each is validated, published to Kafka and "
        "acknowledged only after the broker has it.",
        lifespan=lifespan,
        responses=COMMON_RESPONSES,
    )
    name_unparsable_bodies(app)
    answer_database_errors_with_503(app)
    reports.answer_invalid_reports(app)
    app.include_router(reports.router)
    app.include_router(exchange.router)
    reports.declare_batch_items(app, settings.max_batch)
    app.include_router(health_router(metrics, lambda: components_of(app)))
    check_bearer_before_body(app, settings.auth_secret.get_secret_value())  # no body read without a token
    add_body_size_limit(app, settings.max_body_bytes)
    add_request_metrics(app, metrics.requests, metrics.request_seconds)
    app.state.metrics = metrics
    return app
