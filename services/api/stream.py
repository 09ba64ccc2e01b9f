"""Server-sent events of total changes: the API follows the compacted totals topic and fans each
change out to the subscribers whose unit is among the changed document's parents."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer

from services.api.cache import TotalsCache
from shared.kafka_credentials import KafkaCredentials, client_options

log = logging.getLogger(__name__)
QUEUE_SIZE = 1000


@dataclass(eq=False)
class Subscription:
    unit: str
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    dropped: int = 0


class TotalsBroadcaster:
    def __init__(
        self, bootstrap: str, topic: str, cache: TotalsCache | None = None, credentials: KafkaCredentials | None = None
    ) -> None:
        self.bootstrap = bootstrap
        self.credentials = credentials
        self.topic = topic
        self.cache = cache  # the API's documents, kept current by the same messages
        self.subscriptions: set[Subscription] = set()
        self.ready = asyncio.Event()

    def publish(self, message: dict[str, Any]) -> None:
        if self.cache is not None:
            self.cache.offer_message(message)
        parents = set(message.get("parents", ()))
        for sub in self.subscriptions:
            if sub.unit in parents or sub.unit == "VN":
                try:
                    sub.queue.put_nowait(message)
                except asyncio.QueueFull:
                    sub.dropped += 1  # a slow client loses events, never the server's memory

    @asynccontextmanager
    async def subscribe(self, unit: str) -> AsyncIterator[Subscription]:
        sub = Subscription(unit)
        self.subscriptions.add(sub)
        try:
            yield sub
        finally:
            self.subscriptions.discard(sub)

    async def run(self) -> None:
        """Follow the topic from its end, reconnecting while Kafka is away."""
        while True:
            consumer = AIOKafkaConsumer(
                self.topic,
                bootstrap_servers=self.bootstrap,
                auto_offset_reset="latest",
                enable_auto_commit=False,
                **client_options(self.credentials),  # type: ignore[arg-type]
            )
            try:
                await consumer.start()
                if self.cache is not None:
                    self.cache.follower_started()
                self.ready.set()
                async for record in consumer:
                    try:
                        self.publish(json.loads(record.value))
                    except (ValueError, TypeError, KeyError):
                        log.warning("undecodable totals message", extra={"offset": record.offset})
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("totals stream consumer failed; retrying", exc_info=True)
                await asyncio.sleep(2)
            finally:
                if self.cache is not None:
                    self.cache.follower_lost()  # what comes meanwhile is unknown: read MongoDB
                await consumer.stop()
