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

from aiokafka import AIOKafkaConsumer, TopicPartition

from services.api.cache import TotalsCache
from shared.adapters.kafka_credentials import KafkaCredentials, client_options

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

    def publish(self, message: dict[str, Any], news: bool = True) -> None:
        """A message from the topic to the cache, and to the subscribers when it is ``news``
        (published after the follower started, not replayed)."""
        if self.cache is not None:
            self.cache.offer_message(message)
        if not news:
            return
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
        """Follow the topic, reconnecting while Kafka is away. Each time, the topic is first read
        from its beginning into the cache (services/api/cache.py), then followed: only what is
        published after the start goes to the subscribers."""
        while True:
            consumer = AIOKafkaConsumer(
                self.topic,
                bootstrap_servers=self.bootstrap,
                auto_offset_reset="earliest",  # no group, no committed offsets: from the beginning
                enable_auto_commit=False,
                **client_options(self.credentials),  # type: ignore[arg-type]
            )
            try:
                await consumer.start()
                partitions = await self._partitions(consumer)
                # where the topic ended as the replay began: records from there on are news
                ends = await consumer.end_offsets(partitions)
                behind = {tp for tp, end in ends.items() if end > 0}
                if self.cache is None:  # no cache to fill (turned off): follow from the end
                    for tp, end in ends.items():
                        consumer.seek(tp, end)
                    behind = set()
                else:
                    self.cache.follower_replaying()
                    if not behind:
                        self.cache.follower_replayed()
                self.ready.set()
                while True:
                    batches = await consumer.getmany(timeout_ms=500)
                    for tp, records in batches.items():
                        for record in records:
                            try:
                                self.publish(json.loads(record.value), news=record.offset >= ends[tp])
                            except (ValueError, TypeError, KeyError):
                                log.warning("undecodable totals message", extra={"offset": record.offset})
                    if behind:
                        # by position, not by the last record seen: the records just before the
                        # end may have been compacted away, or be transaction markers, never delivered
                        behind = {tp for tp in behind if await consumer.position(tp) < ends[tp]}
                        if not behind and self.cache is not None:
                            self.cache.follower_replayed()
                            log.info("totals stream replayed", extra={"documents": len(self.cache)})
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("totals stream consumer failed; retrying", exc_info=True)
                await asyncio.sleep(2)
            finally:
                if self.cache is not None:
                    self.cache.follower_lost()  # what comes meanwhile is unknown: read MongoDB
                await consumer.stop()

    async def _partitions(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        """The topic's partitions, all assigned to this consumer (it has no group) once the
        broker's metadata names them."""
        for _ in range(100):
            if partitions := consumer.assignment():
                return sorted(partitions)
            await asyncio.sleep(0.1)
        raise RuntimeError(f"topic {self.topic} has no partitions (does it exist?)")
