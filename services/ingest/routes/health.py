"""Liveness, readiness and the Prometheus metrics (/healthz, /readyz, /metrics)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter

from services.ingest.components import IngestComponents
from services.ingest.metrics import IngestMetrics
from shared.adapters.mongo import ping
from shared.http.base import probes_router


async def readiness(components: IngestComponents) -> dict[str, bool]:
    """Whether Kafka takes reports and, in a real deployment, MongoDB answers."""
    checks = {"kafka": await components.publisher.ready()}
    if components.mongo is not None:
        try:
            await ping(components.mongo)
            checks["mongodb"] = True
        except Exception:  # noqa: BLE001 - readiness reports, it does not raise
            checks["mongodb"] = False
    return checks


def health_router(metrics: IngestMetrics, components: Callable[[], IngestComponents]) -> APIRouter:
    async def ready() -> dict[str, bool]:
        return await readiness(components())

    return probes_router(metrics.registry, ready)
