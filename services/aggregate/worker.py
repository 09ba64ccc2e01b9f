"""What the aggregator works with: the raw message as the agent hands it over, the sinks
it writes to, and retrying what must not be skipped."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiokafka.errors import KafkaError
from pymongo.errors import PyMongoError

from services.aggregate.decode import Origin, Rejected
from services.aggregate.metrics import AggregateMetrics
from shared.domain.stamps import STAMP_HEADER, TOKEN_HEADER

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RawMessage:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None
    headers: tuple[tuple[str, bytes | None], ...] = ()
    log_append_time: bool = False  # the timestamp is the broker's (LogAppendTime), not the producer's

    @property
    def source(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"

    @property
    def origin(self) -> Origin:
        return Origin(self.headers, self.log_append_time)


# (key, value, headers) -> awaitable that completes once the broker has the dead letter
DeadLetterSink = Callable[[bytes | None, bytes | None, list[tuple[str, bytes]]], Awaitable[Any]]
# [(partition, key, value, headers), ...] -> awaitable that completes once the broker has them all
ForwardSink = Callable[[list[tuple[int, bytes | None, bytes, list[tuple[str, bytes]]]]], Awaitable[Any]]
RegistryRefresh = Callable[[], Awaitable[int]]


async def retrying(metrics: AggregateMetrics, cause: str, op: Callable[[], Awaitable[Any]], pause: float) -> Any:
    """Run ``op`` until it succeeds: Kafka or the database away is waited out, never skipped.

    faust acknowledges a batch even when the agent raises, and an acknowledged batch that was not
    handled is lost; so no error of a sink escapes. What is retried is idempotent."""
    attempt = 0
    while True:
        try:
            return await op()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            attempt += 1
            # Kafka or the database away is expected now and then; anything else is a bug that
            # stops this worker's progress, loudly (alert BaocaoAggregateUnexpectedWriteErrors).
            expected = isinstance(exc, KafkaError | PyMongoError | OSError | TimeoutError)
            metrics.retries.labels(cause if expected else "unexpected").inc()
            log.warning(
                "%s failed, retrying",
                cause,
                extra={"attempt": attempt, "error": repr(exc)[:300]},
                exc_info=not expected,
            )
            await asyncio.sleep(min(pause * attempt, 5.0))


async def send_dead_letters(
    sink: DeadLetterSink, metrics: AggregateMetrics, rejected: list[tuple[RawMessage, Rejected]], pause: float
) -> None:
    for m, why in rejected:
        headers = [
            ("baocao-reason", why.reason.encode()),
            ("baocao-detail", why.detail.encode()[:1000]),
            ("baocao-source", m.source.encode()),
            # kept so that a replay (baocao dead-letters replay) is checked as the original was
            *((k, v) for k, v in m.headers if k in (TOKEN_HEADER, STAMP_HEADER) and v is not None),
        ]

        async def send(m: RawMessage = m, headers: list[tuple[str, bytes]] = headers) -> Any:
            return await sink(m.key, m.value, headers)

        await retrying(metrics, "dead_letter", send, pause)
        metrics.dead_letters.labels(why.reason).inc()
        metrics.reports.labels("dead_letter").inc()
        log.warning("dead letter", extra={"reason": why.reason, "detail": why.detail[:300], "source": m.source})
