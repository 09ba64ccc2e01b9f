"""Health: liveness, readiness (MongoDB answers) and the Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from prometheus_client import CollectorRegistry

from services.api.deps import components_of
from shared.http.base import probes_router


def health_router(app: FastAPI, registry: CollectorRegistry) -> APIRouter:
    """/healthz, /readyz and /metrics of ``app``, whose components are those of its lifespan."""

    async def ready() -> dict[str, bool]:
        return await components_of(app).ready()

    return probes_router(registry, ready)
