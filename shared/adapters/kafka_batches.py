"""Sending many messages at once with aiokafka: straight into record batches, one per partition.

``AIOKafkaProducer.send`` does a lot of Python per message (a future, the partitioner, metadata
lookups, the accumulator), and the aggregator sends one changelog record per report and one totals
message per changed document. Here each partition's
messages go into a :class:`aiokafka.producer.message_accumulator.BatchBuilder` (its record
encoding is aiokafka's C extension) and each full batch is handed to ``send_batch``: one future
per batch. The producer's idempotence applies to these batches as to any other.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

from shared.adapters.kafka_producer import PRODUCER_STATE_LOST, RenewingProducer

# (partition or None for the key's partition, key, value, headers)
Message = tuple[int | None, bytes | None, bytes | None, Sequence[tuple[str, bytes]]]

_KEY_PARTITIONS: dict[tuple[bytes, int], int] = {}  # (key, partition count) -> partition
_KEY_PARTITIONS_MAX = 500_000


def partition_of_key(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (the Java client's, and aiokafka's) gives a key:
    murmur2, positive, modulo the partition count. Cached: the same documents change again and
    again, and murmur2 in Python costs a few µs."""
    cached = _KEY_PARTITIONS.get((key, partitions))
    if cached is None:
        if len(_KEY_PARTITIONS) >= _KEY_PARTITIONS_MAX:
            _KEY_PARTITIONS.clear()
        cached = _KEY_PARTITIONS[(key, partitions)] = (murmur2(key) & 0x7FFFFFFF) % partitions
    return cached


# partition -> [(offset of a batch's first record, records in the batch), ...], in sending order
Spans = dict[int, list[tuple[int, int]]]


async def send_batched(producer: AIOKafkaProducer | RenewingProducer, topic: str, messages: Iterable[Message]) -> int:
    """Send every message and return (their count) once the broker has acknowledged them all;
    raises what a batch's send raised. A message without a partition goes to its key's."""
    return sum(n for spans in (await send_batched_spans(producer, topic, messages)).values() for _, n in spans)


async def send_batched_spans(
    producer: AIOKafkaProducer | RenewingProducer, topic: str, messages: Iterable[Message]
) -> Spans:
    """:func:`send_batched`, returning where the broker put the records: per partition, the
    offset and length of each batch. A renewing producer is renewed when the broker lost its
    state, and the error raised: the caller sends again, through the new one."""
    if isinstance(producer, RenewingProducer):
        used = producer.current
        try:
            return await _send_spans(used, topic, messages)
        except PRODUCER_STATE_LOST:
            await producer.renew(used)
            raise
    return await _send_spans(producer, topic, messages)


async def _send_spans(producer: AIOKafkaProducer, topic: str, messages: Iterable[Message]) -> Spans:
    partitions: int | None = None
    builders: dict[int, Any] = {}
    futures: list[tuple[int, int, Any]] = []  # (partition, records, future)
    for p, key, value, given in messages:
        headers = given if type(given) is list else list(given)  # the C encoder takes lists only
        if p is None:
            if key is None:
                raise ValueError("a message without a partition needs a key")
            if partitions is None:
                partitions = len(await producer.partitions_for(topic))
            p = partition_of_key(key, partitions)
        builder = builders.get(p)
        if builder is None:
            builder = builders[p] = producer.create_batch()
        if builder.append(key=key, value=value, timestamp=None, headers=headers) is None:
            # full: send it and start the next one with this message
            futures.append((p, builder.record_count(), await producer.send_batch(builder, topic, partition=p)))
            builder = builders[p] = producer.create_batch()
            if builder.append(key=key, value=value, timestamp=None, headers=headers) is None:
                raise ValueError(f"a message of {len(value or b'')} bytes does not fit in a batch")
    for p, builder in builders.items():
        if builder.record_count():
            futures.append((p, builder.record_count(), await producer.send_batch(builder, topic, partition=p)))
    spans: Spans = {}
    for p, n, future in futures:
        meta = await future
        spans.setdefault(p, []).append((meta.offset, n))
    return spans
