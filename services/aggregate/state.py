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
their own, so they cannot drift from them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable
from typing import Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pydantic_core import to_json

from shared.adapters.kafka_batches import send_batched
from shared.adapters.kafka_credentials import KafkaCredentials, client_options
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
    async def append(self, records: list[Record]) -> None:
        """Returns once the broker has every record; raises if any could not be written."""
        ...

    def read(self, partitions: Iterable[int]) -> AsyncIterator[Record]:
        """Every record of the partitions, from the beginning to the end as it is now."""
        ...


class KafkaChangelog:
    def __init__(
        self, bootstrap: str, topic: str, producer: AIOKafkaProducer, credentials: KafkaCredentials | None = None
    ) -> None:
        self.bootstrap = bootstrap
        self.credentials = credentials
        self.topic = topic
        self.producer = producer

    async def append(self, records: list[Record]) -> None:
        if not records:
            return
        await send_batched(self.producer, self.topic, ((p, key, value, ()) for p, key, value in records))

    async def read(self, partitions: Iterable[int]) -> AsyncIterator[Record]:
        tps = [TopicPartition(self.topic, p) for p in partitions]
        if not tps:
            return
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=8 * 1024 * 1024,
            fetch_max_bytes=32 * 1024 * 1024,
            **client_options(self.credentials),  # type: ignore[arg-type]
        )
        await consumer.start()
        try:
            consumer.assign(tps)
            ends = await consumer.end_offsets(tps)
            await consumer.seek_to_beginning(*tps)
            remaining = {tp for tp in tps if ends[tp] > 0}
            for tp in tps:
                if tp in remaining and await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)  # compacted or deleted up to the end
            while remaining:
                batches = await consumer.getmany(*remaining, timeout_ms=1000, max_records=10_000)
                for tp, messages in batches.items():
                    for m in messages:
                        if m.offset < ends[tp] and m.key is not None and m.value is not None:
                            yield tp.partition, m.key, m.value
                    if messages and messages[-1].offset >= ends[tp] - 1:
                        remaining.discard(tp)
                for tp in list(remaining):
                    if await consumer.position(tp) >= ends[tp]:
                        remaining.discard(tp)
        finally:
            await consumer.stop()


class InMemoryChangelog:
    """The fake: a list per partition. ``fail_next`` makes the next append raise after writing
    ``written`` of its records (a broker that took some and then went away)."""

    def __init__(self) -> None:
        self.records: dict[int, list[tuple[bytes, bytes]]] = {}
        self.fail_next: int | None = None

    async def append(self, records: list[Record]) -> None:
        limit = len(records) if self.fail_next is None else self.fail_next
        for p, key, value in records[:limit]:
            self.records.setdefault(p, []).append((key, value))
        if self.fail_next is not None:
            self.fail_next = None
            raise ConnectionError("changelog append failed part-way")
        await asyncio.sleep(0)

    async def read(self, partitions: Iterable[int]) -> AsyncIterator[Record]:
        for p in list(partitions):
            for key, value in list(self.records.get(p, [])):
                yield p, key, value
