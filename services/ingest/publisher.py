"""The ingest service's port to Kafka: publish a report and wait for the broker's acknowledgement.

KafkaPublisher produces with acks=all and idempotence, keyed by province code, to the partition
of that province in the balanced table (shared/domain/partitions.py ``partition_for``): every
report of a province in one partition, in order, the one whose aggregator counts them
(services/aggregate/routing.py). Every message carries ingest's
stamp (shared/domain/stamps.py), by which the aggregator knows it was checked here. InMemoryPublisher is the fake;
both pass tests/contract/test_publisher_contract.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from shared.adapters.kafka_credentials import KafkaCredentials, client_options
from shared.adapters.kafka_producer import PRODUCER_STATE_LOST, RenewingProducer
from shared.domain.partitions import assignment, partition_for
from shared.domain.stamps import STAMP_HEADER, stamp


class PublishFailed(RuntimeError):
    """The broker did not acknowledge the message: the report is NOT accepted."""


@dataclass(frozen=True)
class Published:
    topic: str
    partition: int
    offset: int


class Publisher(Protocol):
    async def publish(self, key: bytes, value: bytes) -> Published: ...

    async def ready(self) -> bool: ...


class KafkaPublisher:
    def __init__(
        self,
        bootstrap: str,
        topic: str,
        timeout_s: float = 10.0,
        credentials: KafkaCredentials | None = None,
        *,
        stamp_key: bytes,
        on_renew: Callable[[], None] | None = None,
    ) -> None:
        self.topic = topic
        self.stamp_key = stamp_key
        self.timeout_s = timeout_s

        def make() -> AIOKafkaProducer:
            return AIOKafkaProducer(
                bootstrap_servers=bootstrap,
                acks="all",
                enable_idempotence=True,
                linger_ms=2,
                # Room for a whole batch of reports per partition: when a partition's buffer is
                # full, every waiting sender is woken each time it drains (aiokafka), which costs
                # more CPU than the sends themselves under load.
                max_batch_size=512 * 1024,
                request_timeout_ms=int(timeout_s * 1000),
                client_id="baocao-ingest",
                **client_options(credentials),
            )

        # renewed when the broker lost its state (shared/adapters/kafka_producer.py)
        self._producers = RenewingProducer(make, on_renew)
        self._started = False
        self._partitions: int | None = None

    async def start(self) -> None:
        await self._producers.start()
        self._started = True

    async def stop(self) -> None:
        if self._started:
            await self._producers.stop()  # flushes what is in flight

    async def publish(self, key: bytes, value: bytes) -> Published:
        producer = self._producers.current
        try:
            if self._partitions is None:  # read once: ingest is restarted after tools/partitions.py grows the topic
                known = await asyncio.wait_for(producer.partitions_for(self.topic), self.timeout_s)
                await asyncio.to_thread(assignment, len(known))  # the table, built off the event loop
                self._partitions = len(known)
            # as the aggregator routes (not the client's murmur2)
            partition = partition_for(key.decode(errors="replace"), self._partitions)
            meta = await asyncio.wait_for(
                producer.send_and_wait(
                    self.topic,
                    value=value,
                    key=key,
                    partition=partition,
                    headers=[(STAMP_HEADER, stamp(self.stamp_key, value))],
                ),
                self.timeout_s,
            )
        except (KafkaError, TimeoutError) as exc:
            if isinstance(exc, PRODUCER_STATE_LOST):
                await self._producers.renew(producer)  # not acknowledged: the client sends it again
            raise PublishFailed(f"Kafka did not acknowledge: {type(exc).__name__}") from exc
        return Published(meta.topic, meta.partition, meta.offset)

    async def ready(self) -> bool:
        try:
            partitions = await asyncio.wait_for(self._producers.current.partitions_for(self.topic), 5)
        except (KafkaError, TimeoutError):
            return False
        return bool(partitions)


class InMemoryPublisher:
    """Keeps messages in lists, one per partition, chosen as KafkaPublisher chooses."""

    def __init__(self, topic: str = "reports", partitions: int = 8) -> None:
        self.topic = topic
        self.partitions: list[list[tuple[bytes, bytes]]] = [[] for _ in range(partitions)]
        self.available = True

    async def publish(self, key: bytes, value: bytes) -> Published:
        if not self.available:
            raise PublishFailed("Kafka did not acknowledge: broker unavailable")
        p = partition_for(key.decode(errors="replace"), len(self.partitions))
        self.partitions[p].append((key, value))
        return Published(self.topic, p, len(self.partitions[p]) - 1)

    async def ready(self) -> bool:
        return self.available
