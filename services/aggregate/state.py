"""The aggregator's durable state: the latest revision of every report, on a compacted topic.

The aggregator (aggregator.py) keeps, per partition of ``reports``, a :class:`shared.domain.rollup.Rollup`
in memory. Every change of an entry (a new report, a correction, a withdrawal) is appended to the
same partition of ``<reports>.state``, keyed by ``<unit>/<report_id>``, and the batch that caused
it returns (so its offsets may be committed) only once the broker has the appends. So:

* killed before the appends were acknowledged: the batch's offsets were not committed, it is
  read again, and applied again from the state as the changelog has it;
* killed after: the changelog holds the new entries; the batch is read again and every message
  in it is a duplicate of what the restored state holds.

Restoring merges by revision (the higher wins), so the order of the changelog's records, a
record written twice, or by two workers that both believed they owned the partition for a
moment, all restore the same state. The totals are derived from the entries, never stored on
their own, so they cannot drift from them. A restore starts from the partition's latest snapshot
and replays only the records after it (snapshots.py), or replays them all when there is none.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable
from typing import Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pydantic_core import to_json

from shared.adapters.kafka_batches import Spans, send_batched_spans
from shared.adapters.kafka_credentials import KafkaCredentials, client_options
from shared.adapters.kafka_producer import RenewingProducer
from shared.domain.rollup import Entry

Record = tuple[int, bytes, bytes]  # (partition, key, value)


def state_topic(reports: str) -> str:
    """The aggregator's changelog: the latest revision of every report, compacted."""
    return f"{reports}.state"


def encode_entry(partition: int, key: str, entry: Entry) -> Record:
    return partition, key.encode(), to_json(entry.to_json())  # compact UTF-8 JSON, as json.dumps would


def decode_entry(key: bytes, value: bytes) -> tuple[str, Entry]:
    return key.decode(), Entry.from_json(json.loads(value))


class Changelog(Protocol):
    topic: str  # names the changelog (a snapshot is of one topic's partition)

    async def append(self, records: list[Record]) -> Spans:
        """Returns once the broker has every record, with where it put them (per partition, the
        offset and length of each batch); raises if any could not be written."""
        ...

    async def end_offsets(self, partitions: Iterable[int]) -> dict[int, int]:
        """Per partition, the offset the next record appended will get."""
        ...

    def read(self, partition: int, start: int, end: int) -> AsyncIterator[tuple[bytes, bytes]]:
        """The (key, value) of the records of a partition from offset ``start`` (or the first one
        kept after it) up to, not including, ``end``; tombstones left out."""
        ...


class KafkaChangelog:
    def __init__(
        self,
        bootstrap: str,
        topic: str,
        producer: AIOKafkaProducer | RenewingProducer,
        credentials: KafkaCredentials | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.credentials = credentials
        self.topic = topic
        self.producer = producer
        self._offsets: AIOKafkaConsumer | None = None
        self._offsets_lock = asyncio.Lock()

    async def append(self, records: list[Record]) -> Spans:
        if not records:
            return {}
        return await send_batched_spans(self.producer, self.topic, ((p, key, value, ()) for p, key, value in records))

    def _consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=8 * 1024 * 1024,
            fetch_max_bytes=32 * 1024 * 1024,
            **client_options(self.credentials),
        )

    async def end_offsets(self, partitions: Iterable[int]) -> dict[int, int]:
        tps = [TopicPartition(self.topic, p) for p in partitions]
        if not tps:
            return {}
        async with self._offsets_lock:  # one consumer, kept, asks for every restore's end
            if self._offsets is None:
                consumer = self._consumer()
                await consumer.start()
                self._offsets = consumer
            ends = await self._offsets.end_offsets(tps)
        return {tp.partition: int(offset) for tp, offset in ends.items()}

    async def close(self) -> None:
        if self._offsets is not None:
            await self._offsets.stop()
            self._offsets = None

    async def read(self, partition: int, start: int, end: int) -> AsyncIterator[tuple[bytes, bytes]]:
        if start >= end:
            return
        tp = TopicPartition(self.topic, partition)
        consumer = self._consumer()
        await consumer.start()
        try:
            consumer.assign([tp])
            consumer.seek(tp, start)
            while await consumer.position(tp) < end:  # compaction may have removed the last ones
                batches = await consumer.getmany(tp, timeout_ms=1000, max_records=10_000)
                for m in batches.get(tp, ()):
                    if m.offset >= end:
                        return
                    if m.key is not None and m.value is not None:
                        yield m.key, m.value
        finally:
            await consumer.stop()


class InMemoryChangelog:
    """The fake: a list per partition, offsets being positions in it. ``fail_next`` makes the
    next append raise after writing ``written`` of its records (a broker that took some and then
    went away)."""

    def __init__(self, topic: str = "memory.state") -> None:
        self.topic = topic
        self.records: dict[int, list[tuple[bytes, bytes | None]]] = {}
        self.fail_next: int | None = None

    async def append(self, records: list[Record]) -> Spans:
        limit = len(records) if self.fail_next is None else self.fail_next
        spans: Spans = {}
        for p, key, value in records[:limit]:
            log = self.records.setdefault(p, [])
            log.append((key, value))
            spans.setdefault(p, []).append((len(log) - 1, 1))
        if self.fail_next is not None:
            self.fail_next = None
            raise ConnectionError("changelog append failed part-way")
        await asyncio.sleep(0)
        return spans

    async def end_offsets(self, partitions: Iterable[int]) -> dict[int, int]:
        return {p: len(self.records.get(p, [])) for p in partitions}

    async def read(self, partition: int, start: int, end: int) -> AsyncIterator[tuple[bytes, bytes]]:
        for key, value in list(self.records.get(partition, []))[start:end]:
            if value is not None:
                yield key, value
