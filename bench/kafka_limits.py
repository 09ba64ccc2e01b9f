"""The limits the services are compared with: what a bare aiokafka client does with the same
messages on the same broker, with nothing else in the way.

* produce: acks=all and idempotence, as ingest's publisher; sends are pipelined in windows.
* consume and decode: every message read from the start of the topic, parsed and validated as
  the aggregator's decoder does (json.loads, ReportEnvelope, REPORT_ADAPTER.validate_python).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import islice
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared.domain.partitions import partition_for
from shared.domain.reports import REPORT_ADAPTER, ReportEnvelope
from shared.domain.stamps import STAMP_HEADER, stamp

log = logging.getLogger(__name__)

SEND_WINDOW = 5_000  # messages in flight at most while producing
FETCH_MAX = 5_000  # records per getmany()


@dataclass(frozen=True)
class Timed:
    count: int
    seconds: float
    failures: int = 0

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "seconds": round(self.seconds, 3),
            "failures": self.failures,
            "rate": round(self.rate, 1),
        }


async def produce(
    bootstrap: str,
    topic: str,
    messages: Iterable[tuple[bytes, bytes]],
    timeout_s: float,
    options: dict[str, str] | None = None,
    stamp_key: bytes | None = None,
) -> Timed:
    """Send (key, value) pairs with acks=all; the time runs from the first send to the last ack
    (and includes making the messages when ``messages`` is a generator). ``options``: the Kafka
    login; ``stamp_key``: stamp each message as ingest does (shared/domain/stamps.py), so that the
    aggregator takes the envelopes as ingest's."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        client_id="baocao-bench",
        **(options or {}),
    )
    await producer.start()
    try:
        partitions = len(await producer.partitions_for(topic))  # metadata before the clock starts
        started = time.perf_counter()
        count = await asyncio.wait_for(_send_windows(producer, topic, messages, partitions, stamp_key), timeout_s)
        return Timed(count, time.perf_counter() - started)
    finally:
        await producer.stop()


async def _send_windows(
    producer: AIOKafkaProducer,
    topic: str,
    messages: Iterable[tuple[bytes, bytes]],
    partitions: int,
    stamp_key: bytes | None = None,
) -> int:
    """Send in windows of SEND_WINDOW, waiting for every ack of a window; return the count. Each
    message goes to its province's partition (``key``: the province code), as ingest sends them."""
    source = iter(messages)
    count = 0
    while window := list(islice(source, SEND_WINDOW)):
        acks = [
            await producer.send(
                topic,
                value=value,
                key=key,
                partition=partition_for(key.decode(), partitions),
                headers=[(STAMP_HEADER, stamp(stamp_key, value))] if stamp_key is not None else None,
            )
            for key, value in window
        ]
        await asyncio.gather(*acks)
        count += len(window)
    return count


def decode(value: bytes) -> Any:
    """What services/aggregate/decode.py does before the roll-up: parse, check, validate."""
    envelope = ReportEnvelope.model_validate(json.loads(value))
    return REPORT_ADAPTER.validate_python(envelope.report)


async def consume_and_decode(
    bootstrap: str, topic: str, expected: int, timeout_s: float, options: dict[str, str] | None = None
) -> Timed:
    """Read ``expected`` messages from the start of ``topic`` (no consumer group), decoding each.
    The time runs from the consumer being connected to the last message decoded."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id="baocao-bench",
        **(options or {}),
    )
    await consumer.start()
    try:
        started = time.perf_counter()
        deadline = started + timeout_s
        count = failures = 0
        while count < expected and time.perf_counter() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=FETCH_MAX)
            for records in batches.values():
                for record in records:
                    count += 1
                    try:
                        decode(record.value)
                    except ValueError:  # json and pydantic errors are ValueErrors
                        failures += 1
        if count < expected:
            log.warning("consumed only %d of %d messages before the deadline", count, expected)
        return Timed(count, time.perf_counter() - started, failures)
    finally:
        await consumer.stop()
