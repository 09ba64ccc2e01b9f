"""Health: liveness, readiness (MongoDB answers) and the Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from prometheus_client import CollectorRegistry

from services.api.components import ApiComponents
from shared.http.base import probes_router


def health_router(app: FastAPI, registry: CollectorRegistry) -> APIRouter:
    """/healthz, /readyz and /metrics of ``app``, whose components are those of its lifespan."""

    async def ready() -> dict[str, bool]:
        components: ApiComponents = app.state.components
        return await components.ready()

    return probes_router(registry, ready)
