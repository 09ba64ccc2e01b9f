"""Stage one, as the faust agent calls it for each batch of ``reports``: decode, dead-letter,
forward to the province's partition (see routing.py). Returns only when the broker has every
forwarded message and every dead letter, so the batch's offsets are committed after that.

Kept apart from faust so that it can be driven by plain lists of messages in tests.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka.errors import KafkaError
from pymongo.errors import PyMongoError

from services.aggregate.decode import Rejected, decode
from services.aggregate.metrics import AggregateMetrics
from services.aggregate.routing import encode_routed, partition_for, route
from shared.catalog import Catalog
from shared.hierarchy import OrgTree

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RawMessage:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None

    @property
    def source(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"


# (key, value, headers) -> awaitable that completes once the broker has the dead letter
DeadLetterSink = Callable[[bytes | None, bytes | None, list[tuple[str, bytes]]], Awaitable[Any]]
# [(partition, key, value), ...] -> awaitable that completes once the broker has them all
RoutedSink = Callable[[list[tuple[int, bytes, bytes]]], Awaitable[Any]]
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
        ]

        async def send(m: RawMessage = m, headers: list[tuple[str, bytes]] = headers) -> Any:
            return await sink(m.key, m.value, headers)

        await retrying(metrics, "dead_letter", send, pause)
        metrics.dead_letters.labels(why.reason).inc()
        metrics.reports.labels("dead_letter").inc()
        log.warning("dead letter", extra={"reason": why.reason, "detail": why.detail[:300], "source": m.source})


class Router:
    def __init__(
        self,
        catalog: Catalog,
        tree: OrgTree,
        partitions: int,
        forward: RoutedSink,
        dead_letter: DeadLetterSink,
        metrics: AggregateMetrics,
        refresh_registry: RegistryRefresh | None = None,
        retry_pause: float = 0.5,
    ) -> None:
        self.catalog = catalog
        self.tree = tree
        self.partitions = partitions
        self.forward = forward
        self.dead_letter = dead_letter
        self.metrics = metrics
        self.refresh_registry = refresh_registry
        self.retry_pause = retry_pause

    async def handle(self, messages: Sequence[RawMessage]) -> None:
        routed: list[tuple[int, bytes, bytes]] = []
        bad: list[tuple[RawMessage, Rejected]] = []
        refreshed = False
        for m in messages:
            out = decode(m.value, m.timestamp_ms, self.catalog, self.tree)
            if isinstance(out, Rejected) and out.reason == "unknown_unit" and not refreshed and self.refresh_registry:
                # An agency registered moments ago through another service: look once more.
                refreshed = True
                await retrying(self.metrics, "registry", self.refresh_registry, self.retry_pause)
                out = decode(m.value, m.timestamp_ms, self.catalog, self.tree)
            if isinstance(out, Rejected):
                bad.append((m, out))
                continue
            r = route(out, m.source, self.tree, self.catalog)
            key, value = encode_routed(r)
            routed.append((partition_for(r.path[-1], self.partitions), key, value))
        if routed:
            await retrying(self.metrics, "route", lambda: self.forward(routed), self.retry_pause)
        await send_dead_letters(self.dead_letter, self.metrics, bad, self.retry_pause)
