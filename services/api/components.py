"""What the read API's routes work with, built once per process by the lifespan of `create_app`.

`open_components` connects what a deployment needs (MongoDB, the agency registry, the totals
stream) and closes it again; an app built by a test passes its own reader and tree instead, and
nothing connects.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from pymongo import AsyncMongoClient

from services.api.agencies import AgencyRegistrar
from services.api.approval_views import ApprovalListings
from services.api.cache import CacheCollector, CachedTotalsReader, TotalsCache
from services.api.reads import Reads
from services.api.repository import MongoTotalsReader, TotalsReader
from services.api.settings import ApiSettings
from services.api.stream import StreamQuota, TotalsBroadcaster
from services.api.target_views import TargetListings
from shared.adapters.approvals import ApprovalStore, InMemoryApprovalStore, MongoApprovalStore
from shared.adapters.audit import AuditLog, InMemoryAuditLog, MongoAuditLog
from shared.adapters.mongo import make_client, ping
from shared.adapters.registry import AgencyRegistry
from shared.adapters.revocations import InMemoryRevocations, MongoRevocations, Revocations
from shared.adapters.targets import InMemoryTargetStore, MongoTargetStore, TargetStore
from shared.domain.catalog import load_catalog
from shared.domain.hierarchy import OrgTree, load_vietnam
from shared.http.base import Authenticator
from shared.startup import freeze_startup_objects, freeze_survivors_forever


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "baocao_api_requests_total",
            "HTTP requests by route template and status code",
            ["route", "code"],
            registry=self.registry,
        )
        self.sse_clients = Gauge("baocao_api_sse_clients", "Open server-sent event streams", registry=self.registry)
        self.request_seconds = Histogram(
            "baocao_api_request_duration_seconds",
            "HTTP request latency by route template",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )
        # an audit entry that could not be written: the action it records is logged instead
        self.audit_failures = Counter(
            "baocao_audit_write_failures_total",
            "Audit log entries that could not be written, by action",
            ["action"],
            registry=self.registry,
        )


@dataclass(eq=False)
class ApiComponents:
    """The read API's parts, on ``app.state.components`` while the app runs (routes reach them
    through services/api/deps.py). ``mongo``, ``registry`` and ``cache`` are None in an app built
    by a test (and ``cache`` also when turned off)."""

    settings: ApiSettings
    metrics: ApiMetrics
    reader: TotalsReader
    tree: OrgTree
    auth: Authenticator
    broadcaster: TotalsBroadcaster
    reads: Reads
    agencies: AgencyRegistrar
    streams: StreamQuota
    mongo: AsyncMongoClient[dict[str, Any]] | None = None
    registry: AgencyRegistry | None = None
    cache: TotalsCache | None = None
    # the audit log, approvals and targets (fakes in an app built by a test, unless the test hands
    # its own in Overrides); the read path reads approvals and targets through their listings
    audit: AuditLog = field(default_factory=InMemoryAuditLog)
    approvals: ApprovalStore = field(default_factory=InMemoryApprovalStore)
    targets: TargetStore = field(default_factory=InMemoryTargetStore)

    def __post_init__(self) -> None:
        self.approval_listings = ApprovalListings(self.approvals)
        self.target_listings = TargetListings(self.targets)

    async def ready(self) -> dict[str, bool]:
        """Readiness: MongoDB answers (always true for an app built by a test, which has none)."""
        if self.mongo is None:
            return {"mongodb": True}
        try:
            await ping(self.mongo)
            return {"mongodb": True}
        except Exception:  # noqa: BLE001 - readiness reports, it does not raise
            return {"mongodb": False}


@dataclass
class Overrides:
    """What a test hands `create_app` instead of connecting: with a ``reader``, nothing connects
    (no MongoDB, no registry, no totals stream follower)."""

    reader: TotalsReader | None = None
    tree: OrgTree | None = None
    registry: AgencyRegistry | None = None
    revocations: Revocations | None = None
    audit: AuditLog | None = None
    approvals: ApprovalStore | None = None
    targets: TargetStore | None = None


@asynccontextmanager
async def open_components(settings: ApiSettings, metrics: ApiMetrics, given: Overrides) -> AsyncIterator[ApiComponents]:
    """The components for one run of the app, and their background tasks, stopped on exit."""
    org = given.tree or load_vietnam(settings.province_codes)
    mongo = None
    reader, registry, revocations, cache = given.reader, given.registry, given.revocations, None
    audit: AuditLog = given.audit or InMemoryAuditLog()
    approvals: ApprovalStore = given.approvals or InMemoryApprovalStore()
    targets: TargetStore = given.targets or InMemoryTargetStore()
    tasks: list[asyncio.Task[None]] = []
    if reader is None:
        mongo = make_client(
            settings.mongodb_uri, "baocao-api", min_connections=16, read_preference=settings.mongodb_read_preference
        )
        reader = MongoTotalsReader(mongo, settings.mongodb_database)
        if settings.cache_documents:
            cache = TotalsCache(settings.cache_documents, settings.cache_answers_mb * 2**20)
            reader = CachedTotalsReader(reader, cache)
            metrics.registry.register(CacheCollector(cache))
        registry = AgencyRegistry(mongo, settings.mongodb_database, org)
        await registry.refresh()
        tasks.append(asyncio.create_task(registry.refresh_forever()))
        revocations = revocations or MongoRevocations(mongo, settings.mongodb_database)
        if given.audit is None:
            audit = mongo_audit = MongoAuditLog(mongo, settings.mongodb_database)
            await mongo_audit.ensure_indexes()
        if given.approvals is None:
            approvals = mongo_approvals = MongoApprovalStore(mongo, settings.mongodb_database)
            await mongo_approvals.ensure_indexes()
        if given.targets is None:
            targets = mongo_targets = MongoTargetStore(mongo, settings.mongodb_database)
            await mongo_targets.ensure_indexes()
    broadcaster = TotalsBroadcaster(
        settings.kafka_bootstrap_servers, settings.totals_topic, cache, credentials=settings.kafka_credentials
    )
    if given.reader is None:
        tasks.append(asyncio.create_task(broadcaster.run()))
    components = ApiComponents(
        settings=settings,
        metrics=metrics,
        reader=reader,
        tree=registry.tree if registry else org,
        auth=Authenticator(settings.auth_secret.get_secret_value(), revocations or InMemoryRevocations()),
        broadcaster=broadcaster,
        reads=Reads(reader, load_catalog(), cache, settings),
        agencies=AgencyRegistrar(registry, settings.max_agencies_per_unit),
        streams=StreamQuota(settings.max_streams_per_token),
        mongo=mongo,
        registry=registry,
        cache=cache,
        audit=audit,
        approvals=approvals,
        targets=targets,
    )
    if mongo is not None:  # a real deployment, not an app built by a test
        freeze_startup_objects()
        # the cache's documents are millions of objects: frozen out of the collector's reach, as in
        # the aggregator, so that collections do not walk them (docs/benchmarks.md)
        tasks.append(asyncio.create_task(freeze_survivors_forever()))
    try:
        yield components
    finally:
        for task in tasks:
            task.cancel()
        if mongo is not None:
            await mongo.close()
