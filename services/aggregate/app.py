"""The faust app factory: the composition root of the aggregate worker.

`create_app(settings)` builds the app, its topics, the agent and the web pages; nothing connects
until the worker starts. The MongoDB client and the registry open when the agent starts and close
when it stops.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import faust
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.aggregate.agents import register_agents
from services.aggregate.faust_kafka import AggregateApp
from services.aggregate.metrics import AggregateMetrics
from services.aggregate.projector import Projector
from services.aggregate.settings import AggregateSettings
from services.aggregate.store import MongoTotalsStore
from services.aggregate.worker import BatchWorker
from shared.catalog import load_catalog
from shared.hierarchy import load_vietnam
from shared.mongo import ensure_indexes, make_client, ping
from shared.registry import AgencyRegistry
from shared.startup import freeze_startup_objects

log = logging.getLogger(__name__)


class Runtime:
    """Resources opened once per worker process, on first use by the agent."""

    def __init__(self, app: faust.App, settings: AggregateSettings, metrics: AggregateMetrics) -> None:
        self.app = app
        self.settings = settings
        self.metrics = metrics
        self.worker: BatchWorker | None = None
        self.mongo: Any = None
        self._lock = asyncio.Lock()
        self._refresher: asyncio.Task[None] | None = None

    async def start(self) -> BatchWorker:
        async with self._lock:
            if self.worker is not None:
                return self.worker
            catalog = load_catalog()
            tree = load_vietnam(self.settings.province_codes)
            self.mongo = make_client(self.settings.mongodb_uri, "baocao-aggregate")
            await ensure_indexes(self.mongo, self.settings.mongodb_database)
            registry = AgencyRegistry(self.mongo, self.settings.mongodb_database, tree)
            await registry.refresh()
            dead_letters = self.app.topic(self.settings.dead_letter_topic, value_serializer="raw", key_serializer="raw")

            async def send_dead_letter(key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> Any:
                fut = await dead_letters.send(key=key, value=value, headers=headers)
                return await fut  # wait for the broker before the source message is acknowledged

            async def send_totals(messages: list[tuple[bytes, bytes]]) -> None:
                # Straight to the producer (faust's topic and channel layers cost as much again
                # per message), one after the other into its buffer, then wait for them all.
                # Sending them concurrently instead makes every sender wake up each time a full
                # batch drains: that cost more than half the worker's CPU.
                producer = self.app.producer
                topic = self.settings.totals_topic
                pending = [await producer.send(topic, key, value, None, None, None) for key, value in messages]
                # then wait for the buffer to drain and look at each result (asyncio.gather over
                # tens of thousands of futures cost a tenth of the worker's CPU in callbacks)
                await producer.flush()
                for future in pending:
                    await future  # done by now: returns at once, or raises what the send raised

            store = MongoTotalsStore(self.mongo, self.settings.mongodb_database)
            self.worker = BatchWorker(
                Projector(store, tree, catalog, self.settings.cache_documents, self.settings.cache_ledger_entries),
                catalog,
                tree,
                send_dead_letter,
                self.metrics,
                refresh_registry=registry.refresh,
                publish_total=send_totals,
            )
            self._refresher = asyncio.create_task(registry.refresh_forever(self.settings.registry_refresh_seconds))
            freeze_startup_objects()
            log.info("aggregate runtime ready", extra={"units": len(tree)})
            return self.worker

    async def ready(self) -> bool:
        if self.mongo is None:
            return False
        try:
            await ping(self.mongo)
        except Exception:  # noqa: BLE001 - readiness reports, it does not raise
            return False
        return True

    async def close(self) -> None:
        if self._refresher:
            self._refresher.cancel()
        if self.mongo is not None:
            await self.mongo.close()


def create_app(settings: AggregateSettings) -> faust.App:
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    app = AggregateApp(
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
        topic_disable_leader=True,
        stream_wait_empty=False,
    )
    metrics = AggregateMetrics()
    runtime = Runtime(app, settings, metrics)
    reports = app.topic(settings.reports_topic, value_serializer="raw", key_serializer="raw")
    register_agents(app, reports, runtime)

    def forget_cached(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        # A partition this worker gets back may have moved on elsewhere in between: what the
        # projector cached about it is no longer known to be current.
        if runtime.worker is not None:
            runtime.worker.projector.forget()

    app.on_partitions_revoked.connect(forget_cached)
    app.on_partitions_assigned.connect(forget_cached)

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        ok = await runtime.ready()
        return web.json({"status": "ready" if ok else "not ready", "mongodb": ok}, status=200 if ok else 503)

    @app.page("/metrics")
    async def prometheus_metrics(web: Any, request: Any) -> Any:
        _update_lag(app, metrics)
        return web.bytes(generate_latest(metrics.registry), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    app.baocao_runtime = runtime  # type: ignore[attr-defined]
    return app


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
            metrics.lag.labels(str(tp.partition)).set(max(0, behind))
    except Exception:
        log.debug("lag not available", exc_info=True)
