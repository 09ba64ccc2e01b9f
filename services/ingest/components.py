"""What the ingest routes work with (``IngestComponents``), opened for the app's lifespan.

Real adapters (Kafka, MongoDB) are opened unless ``Given`` holds fakes (unit tests); nothing
connects before the lifespan starts.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import AsyncMongoClient

from services.ingest.metrics import IngestMetrics
from services.ingest.publisher import KafkaPublisher, Publisher
from services.ingest.ratelimit import RateLimiter
from services.ingest.service import IngestService, utc_now
from services.ingest.settings import IngestSettings
from services.ingest.submissions import MongoSubmissionLog, SubmissionLog
from shared.adapters.approvals import ApprovalStore, CachedApprovals, InMemoryApprovalStore, MongoApprovalStore
from shared.adapters.audit import AuditLog, InMemoryAuditLog, MongoAuditLog
from shared.adapters.mongo import make_client
from shared.adapters.registry import AgencyRegistry
from shared.adapters.revocations import InMemoryRevocations, MongoRevocations, Revocations
from shared.domain.catalog import load_catalog
from shared.domain.hierarchy import OrgTree, load_vietnam
from shared.domain.stamps import stamp_key
from shared.http.base import Authenticator
from shared.startup import freeze_startup_objects


@dataclass(frozen=True)
class Given:
    """Ports passed in instead of the real adapters (None: open the real one); ``clock`` gives
    the receipt time of each report."""

    publisher: Publisher | None = None
    submissions: SubmissionLog | None = None
    tree: OrgTree | None = None
    revocations: Revocations | None = None
    clock: Callable[[], datetime] = utc_now
    audit: AuditLog | None = None  # None: MongoDB's with the real submission log, else the fake
    approvals: ApprovalStore | None = None  # approval and lock; None: as for ``audit``


@dataclass(frozen=True)
class IngestComponents:
    settings: IngestSettings
    metrics: IngestMetrics
    limiter: RateLimiter  # per token, across requests
    auth: Authenticator
    tree: OrgTree
    service: IngestService
    publisher: Publisher
    mongo: AsyncMongoClient[dict[str, Any]] | None  # None when the app was built with fakes
    audit: AuditLog  # where accepted reports are recorded (the service's)


@asynccontextmanager
async def open_components(
    settings: IngestSettings, metrics: IngestMetrics, limiter: RateLimiter, given: Given
) -> AsyncIterator[IngestComponents]:
    """The components, open until the context ends; each adapter is closed on the way out."""
    async with AsyncExitStack() as stack:
        tree = given.tree or load_vietnam(settings.province_codes)
        publisher = given.publisher
        if publisher is None:
            publisher = await stack.enter_async_context(_kafka(settings, metrics))
        submissions, mongo, lookup = given.submissions, None, None
        if submissions is None:
            # the primary, whatever MONGODB_READ_PREFERENCE says: the submission log decides what
            # is a duplicate or a revision, which a lagging secondary would get wrong
            mongo = make_client(settings.mongodb_uri, "baocao-ingest")
            stack.push_async_callback(mongo.close)
            submissions, registry = await _open_mongo_side(mongo, settings.mongodb_database, tree)
            refresher = asyncio.create_task(registry.refresh_forever())
            stack.callback(refresher.cancel)
            lookup = registry.lookup
        revocations = given.revocations or (
            MongoRevocations(mongo, settings.mongodb_database) if mongo else InMemoryRevocations()
        )
        audit = given.audit or (MongoAuditLog(mongo, settings.mongodb_database) if mongo else InMemoryAuditLog())
        if given.audit is None and isinstance(audit, MongoAuditLog):
            await audit.ensure_indexes()
        # approval and lock: approvals read through a cache of a few seconds (CACHE_SECONDS)
        approvals = given.approvals or (
            MongoApprovalStore(mongo, settings.mongodb_database) if mongo else InMemoryApprovalStore()
        )
        service = IngestService(
            publisher,
            submissions,
            tree,
            load_catalog(),
            metrics,
            lookup,
            clock=given.clock,
            audit=audit,
            approvals=CachedApprovals(approvals),
        )
        auth = Authenticator(settings.auth_secret.get_secret_value(), revocations)
        if mongo is not None:  # a real deployment, not an app built by a test
            freeze_startup_objects()
        yield IngestComponents(settings, metrics, limiter, auth, tree, service, publisher, mongo, audit)


@asynccontextmanager
async def _kafka(settings: IngestSettings, metrics: IngestMetrics) -> AsyncIterator[KafkaPublisher]:
    kafka = KafkaPublisher(
        settings.kafka_bootstrap_servers,
        settings.reports_topic,
        settings.produce_timeout_seconds,
        credentials=settings.kafka_credentials,
        stamp_key=stamp_key(settings.auth_secret.get_secret_value()),
        on_renew=metrics.producer_renewals.inc,
    )
    await kafka.start()
    try:
        yield kafka
    finally:
        await kafka.stop()


async def _open_mongo_side(
    mongo: AsyncMongoClient[dict[str, Any]], database: str, tree: OrgTree
) -> tuple[MongoSubmissionLog, AgencyRegistry]:
    """The submission log and the agency registry, loaded into ``tree``."""
    submissions = MongoSubmissionLog(mongo, database)
    await submissions.ensure_indexes()  # the web pages list a subtree's reports, newest first
    registry = AgencyRegistry(mongo, database, tree)
    await registry.refresh()
    # after the registry: an agency's reports are placed by its path in the tree
    await submissions.backfill_scope(tree)
    return submissions, registry
