"""The faust app factory: the composition root of the aggregate worker.

`create_app(settings)` builds the app, its topics, the two agents and the web pages; nothing
connects until the worker starts. The MongoDB client, the registry and the producer open when the
first agent starts.

    reports ──apply_reports (aggregator.py)──▶ reports.state (changelog) · totals (stream) ·
        MongoDB totals (view); a report read on another province's partition goes back to
        ``reports``, to its province's partition (routing.py)
    MongoDB approvals (made by the API) ──▶ totals.approvals (stream), from their outbox
        (shared/adapters/approvals.py): the worker's login is the one allowed to write the topics
        provincial systems read, which the API's (``reader``, shared with them) is not
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faust
from aiokafka import AIOKafkaProducer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.aggregate.agents import register_agents
from services.aggregate.aggregator import Aggregator, TotalsSink
from services.aggregate.decode import Trust
from services.aggregate.entries import EntryFiles
from services.aggregate.faust_kafka import AggregateApp
from services.aggregate.metrics import AggregateMetrics
from services.aggregate.placement import check_placement
from services.aggregate.settings import AggregateSettings
from services.aggregate.snapshots import MongoSnapshotStore
from services.aggregate.state import KafkaChangelog, state_topic
from services.aggregate.view import MongoTotalsView
from services.aggregate.worker import DeadLetterSink, ForwardSink
from shared.adapters.approvals import ApprovalSink, CachedApprovals, MongoApprovalStore, publish_forever
from shared.adapters.kafka_batches import send_batched
from shared.adapters.kafka_credentials import KafkaCredentials, client_options
from shared.adapters.kafka_producer import PRODUCER_STATE_LOST, RenewingProducer
from shared.adapters.mongo import ensure_indexes, make_client, ping
from shared.adapters.registry import AgencyRegistry
from shared.adapters.revocations import MongoRevocations
from shared.domain.approvals import approvals_topic
from shared.domain.catalog import load_catalog
from shared.domain.hierarchy import load_vietnam
from shared.startup import freeze_startup_objects, freeze_survivors_forever

log = logging.getLogger(__name__)


class Runtime:
    """Resources opened once per worker process, on first use by an agent."""

    def __init__(self, app: faust.App, settings: AggregateSettings, metrics: AggregateMetrics) -> None:
        self.app = app
        self.settings = settings
        self.metrics = metrics
        self.aggregator: Aggregator | None = None
        self.mongo: Any = None
        self.producer: RenewingProducer | None = None
        self.entry_files: EntryFiles | None = None
        self.changelog: KafkaChangelog | None = None
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._assigned: set[int] = set()
        self._ever_assigned = False  # the group gave this worker its share (maybe none) at least once

    async def start(self) -> Aggregator:
        async with self._lock:
            if self.aggregator is not None:
                return self.aggregator
            settings = self.settings
            catalog = load_catalog()
            tree = load_vietnam(settings.province_codes)
            # from the primary whatever MONGODB_READ_PREFERENCE says: the worker restores its
            # partition's documents from what it reads, which a lagging secondary would make stale
            self.mongo = make_client(settings.mongodb_uri, "baocao-aggregate")
            await ensure_indexes(self.mongo, settings.mongodb_database)
            registry = AgencyRegistry(self.mongo, settings.mongodb_database, tree)
            await registry.refresh()
            trust = Trust.from_secret(settings.auth_secret.get_secret_value())
            revocations = MongoRevocations(self.mongo, settings.mongodb_database)
            trust.revoked = await revocations.snapshot()
            self.producer = await _start_producer(settings, self.metrics.producer_renewals.inc)
            forward, send_totals, send_dead_letter = _sinks(self.producer, settings)
            partitions = len(await self.producer.current.partitions_for(settings.reports_topic))
            self.changelog = KafkaChangelog(
                settings.kafka_bootstrap_servers,
                state_topic(settings.reports_topic),
                self.producer,
                credentials=settings.kafka_credentials,
            )
            ends = await self.changelog.end_offsets(range(partitions))
            await check_placement(
                self.mongo, settings.mongodb_database, settings.reports_topic, partitions, not any(ends.values())
            )
            snapshots = MongoSnapshotStore(self.mongo, settings.mongodb_database) if settings.snapshot_every else None
            if snapshots is not None:
                await snapshots.ensure_indexes()
            # the approval lock on reports produced straight to Kafka (shared/domain/approvals.py)
            approvals = MongoApprovalStore(self.mongo, settings.mongodb_database)
            await approvals.ensure_indexes()
            if self.entry_files is None and settings.entries_on_disk:  # once: it locks its directory
                self.entry_files = EntryFiles(settings.data_dir, settings.entries_cache_mb)
            aggregator = Aggregator(
                catalog,
                tree,
                partitions,
                self.changelog,
                MongoTotalsView(self.mongo, settings.mongodb_database),
                send_totals,
                forward,
                send_dead_letter,
                self.metrics,
                refresh_registry=registry.refresh,
                entries=self.entry_files.open if self.entry_files is not None else None,
                full_batch=settings.batch_max,
                trust=trust,
                snapshots=snapshots,
                snapshot_every=settings.snapshot_every,
                approvals=CachedApprovals(approvals),
            )
            aggregator.assign(self._assigned)
            self.aggregator = aggregator
            self._tasks = [
                asyncio.create_task(registry.refresh_forever(settings.registry_refresh_seconds)),
                asyncio.create_task(_follow_revocations(revocations, trust, settings.revocations_refresh_seconds)),
                asyncio.create_task(aggregator.publish_forever(settings.flush_interval)),
                asyncio.create_task(aggregator.write_forever(settings.write_interval)),
                asyncio.create_task(aggregator.snapshot_when_quiet()),
                asyncio.create_task(publish_forever(approvals, _approvals_sink(self.producer, settings))),
                asyncio.create_task(freeze_survivors_forever()),
            ]
            _tune_gc()
            self.metrics.watch_gc()  # baocao_aggregate_gc_pause_seconds
            log.info("aggregate runtime ready", extra={"units": len(tree), "partitions": partitions})
            return aggregator

    def assigned(self, partitions: set[int]) -> None:
        self._assigned = set(partitions)
        self._ever_assigned = True
        if self.aggregator is not None:
            self.aggregator.rebalanced(partitions)

    def revoked(self, partitions: set[int]) -> None:
        self._assigned -= partitions
        if self.aggregator is not None:
            self.aggregator.revoke(partitions)

    async def readiness(self) -> dict[str, bool]:
        """Ready: started, every partition assigned to it restored, and MongoDB answering."""
        restored = self._ever_assigned and self.aggregator is not None and not self.aggregator.restoring
        mongodb = False
        if self.mongo is not None:
            try:
                await ping(self.mongo)
                mongodb = True
            except Exception:  # noqa: BLE001 - readiness reports, it does not raise
                pass
        return {"restored": restored, "mongodb": mongodb}

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self.aggregator is not None:
            self.aggregator.close()
        if self.entry_files is not None:
            self.entry_files.close()
        if self.changelog is not None:
            await self.changelog.close()
        if self.producer is not None:
            await self.producer.stop()
        if self.mongo is not None:
            await self.mongo.close()


async def _start_producer(settings: AggregateSettings, on_renew: Callable[[], None]) -> RenewingProducer:
    """The worker's own producer, for what must be acknowledged before a batch is: forwarded
    reports, changelog entries, totals, dead letters. Idempotent, so a retried send is not a
    second copy; renewed when the broker lost its state (shared/adapters/kafka_producer.py)."""

    def make() -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            max_batch_size=1024 * 1024,
            max_request_size=4 * 1024 * 1024,
            **client_options(settings.kafka_credentials),
        )

    producer = RenewingProducer(make, on_renew)
    await producer.start()
    return producer


def _sinks(producer: RenewingProducer, settings: AggregateSettings) -> tuple[ForwardSink, TotalsSink, DeadLetterSink]:
    """Where the aggregator sends forwarded reports, totals and dead letters."""

    async def forward(records: list[tuple[int, bytes | None, bytes, list[tuple[str, bytes]]]]) -> None:
        await send_batched(producer, settings.reports_topic, records)

    async def send_totals(messages: list[tuple[bytes, bytes]]) -> None:
        await send_batched(producer, settings.totals_topic, ((None, k, v, ()) for k, v in messages))

    async def send_dead_letter(key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> Any:
        used = producer.current
        try:
            return await (await used.send(settings.dead_letter_topic, value, key=key, headers=headers))
        except PRODUCER_STATE_LOST:
            await producer.renew(used)
            raise

    return forward, send_totals, send_dead_letter


def _approvals_sink(producer: RenewingProducer, settings: AggregateSettings) -> ApprovalSink:
    """Where the approvals stream goes: the topic next to the totals stream."""
    topic = approvals_topic(settings.totals_topic)

    async def send(messages: list[tuple[bytes, bytes]]) -> None:
        await send_batched(producer, topic, ((None, k, v, ()) for k, v in messages))

    return send


def _tune_gc() -> None:
    """The state is millions of small long-lived objects made a few at a time: with the default
    thresholds the collector would keep walking them. What survives start-up is frozen now, what
    survives later every 10 s (freeze_survivors_forever), and young collections run less often."""
    freeze_startup_objects()
    gc.set_threshold(50_000, 20, 100)


def faust_app(settings: AggregateSettings) -> AggregateApp:
    """The faust app as the worker runs it (consumer, commits, credentials), without agents:
    ``bench.faust_limit`` measures what it costs to consume through it."""
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    return AggregateApp(
        settings.app_id,
        broker=[f"kafka://{s.strip()}" for s in settings.kafka_bootstrap_servers.split(",")],
        value_serializer="raw",
        key_serializer="raw",
        datadir=settings.data_dir,
        web_enabled=True,
        web_bind=settings.host,
        web_host=settings.host,
        web_port=settings.port,
        web_in_thread=False,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        broker_session_timeout=settings.session_timeout_seconds,
        broker_heartbeat_interval=1.0,
        producer_acks=-1,
        topic_allow_declare=False,  # topics are created by tools/topics.py with their partitions
        # what faust would declare itself (none while it may not declare): as many copies as ours
        topic_replication_factor=settings.kafka_replication_factor,
        topic_disable_leader=True,
        stream_wait_empty=False,
        broker_credentials=_faust_credentials(settings.kafka_credentials),
    )


def create_app(settings: AggregateSettings) -> faust.App:
    app = faust_app(settings)
    metrics = AggregateMetrics()
    runtime = Runtime(app, settings, metrics)
    reports = app.topic(settings.reports_topic, value_serializer="raw", key_serializer="raw")
    register_agents(app, reports, runtime)

    def _reports(tps: Any) -> set[int]:
        return {tp.partition for tp in tps if tp.topic == settings.reports_topic}

    def on_revoked(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        # Whoever owns a province's partition next restores it from the changelog.
        runtime.revoked(_reports(args[0] if args else kwargs.get("revoked", ())))

    def on_assigned(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        # Restoring starts now, not with the first message: a partition with nothing new to read
        # still gets its stored documents compared with its state (and repaired).
        runtime.assigned(_reports(args[0] if args else kwargs.get("assigned", ())))

    app.on_partitions_revoked.connect(on_revoked)
    app.on_partitions_assigned.connect(on_assigned)

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        checks = await runtime.readiness()
        ok = all(checks.values())
        return web.json({"status": "ready" if ok else "not ready", **checks}, status=200 if ok else 503)

    @app.page("/metrics")
    async def prometheus_metrics(web: Any, request: Any) -> Any:
        _update_lag(app, metrics)
        return web.bytes(generate_latest(metrics.registry), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    app.baocao_runtime = runtime  # type: ignore[attr-defined]
    return app


async def _follow_revocations(revocations: MongoRevocations, trust: Trust, every_s: float) -> None:
    """Tokens revoked through any service stop counting on the Kafka path within ``every_s`` plus
    one read: each read goes to MongoDB (``fresh``), not through the list's cache, whose own age
    limit would otherwise skip a read now and then and double the wait; while MongoDB does not
    answer, the last list stays."""
    while True:
        await asyncio.sleep(every_s)
        try:
            trust.revoked = await revocations.snapshot(fresh=True)
        except Exception:
            log.warning("revoked tokens not read; keeping the last list", exc_info=True)


def _faust_credentials(credentials: KafkaCredentials | None) -> faust.SASLCredentials | None:
    if credentials is None:
        return None
    if credentials.protocol not in ("SASL_PLAINTEXT", "SASL_SSL"):
        raise ValueError(
            f"the aggregator logs in with SASL: BAOCAO_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT or SASL_SSL, "
            f"not {credentials.protocol}"
        )
    # faust uses SASL_SSL exactly when it is given an SSL context
    return faust.SASLCredentials(
        username=credentials.username,
        password=credentials.password,
        mechanism=credentials.mechanism,
        ssl_context=credentials.ssl_context(),
    )


def _update_lag(app: faust.App, metrics: AggregateMetrics) -> None:
    """Consumer lag per assigned partition: broker high watermark minus our next offset."""
    try:
        consumer = app.consumer
        metrics.lag.clear()  # partitions this worker no longer owns must not linger
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            position = consumer._committed_offset.get(tp)  # type: ignore[attr-defined]  # faust's own record
            if high is None:
                continue
            behind = high - (position + 1 if position is not None else 0)
            metrics.lag.labels(tp.topic, str(tp.partition)).set(max(0, behind))
    except Exception:
        log.debug("lag not available", exc_info=True)
