"""What the faust agent calls for each batch: decode, dead-letter, project, measure.

Kept apart from faust so that it can be driven by faust's test context or by plain lists of
messages in tests.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from pymongo.errors import PyMongoError

from services.aggregate.decode import Rejected, decode
from services.aggregate.metrics import AggregateMetrics
from services.aggregate.projector import Positioned, Projector
from shared.catalog import Catalog
from shared.hierarchy import OrgTree
from shared.totals_stream import encode, totals_message

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RawMessage:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None


# (key, value, headers) -> awaitable that completes once the broker has the dead letter
DeadLetterSink = Callable[[bytes | None, bytes | None, list[tuple[str, bytes]]], Awaitable[Any]]
# [(key, value), ...] -> awaitable that completes once the broker has every totals message
TotalsSink = Callable[[list[tuple[bytes, bytes]]], Awaitable[Any]]
MAX_PUBLISH_ROUNDS = 5
RegistryRefresh = Callable[[], Awaitable[int]]


class BatchWorker:
    def __init__(
        self,
        projector: Projector,
        catalog: Catalog,
        tree: OrgTree,
        dead_letter: DeadLetterSink,
        metrics: AggregateMetrics,
        refresh_registry: RegistryRefresh | None = None,
        retry_pause: float = 0.5,
        publish_total: TotalsSink | None = None,
    ) -> None:
        self.projector = projector
        self.catalog = catalog
        self.tree = tree
        self.dead_letter = dead_letter
        self.metrics = metrics
        self.refresh_registry = refresh_registry
        self.retry_pause = retry_pause
        self.publish_total = publish_total
        self.last_applied: dict[int, int] = {}

    async def _decode(
        self, messages: Sequence[RawMessage]
    ) -> tuple[list[Positioned], list[tuple[RawMessage, Rejected]]]:
        good: list[Positioned] = []
        bad: list[tuple[RawMessage, Rejected]] = []
        refreshed = False
        for m in messages:
            out = decode(m.value, m.timestamp_ms, self.catalog, self.tree)
            if isinstance(out, Rejected) and out.reason == "unknown_unit" and not refreshed and self.refresh_registry:
                # An agency registered moments ago through another service: look once more.
                refreshed = True
                await self.refresh_registry()
                out = decode(m.value, m.timestamp_ms, self.catalog, self.tree)
            if isinstance(out, Rejected):
                bad.append((m, out))
            else:
                good.append(Positioned(m.partition, m.offset, out))
        return good, bad

    async def _send_dead_letters(self, rejected: list[tuple[RawMessage, Rejected]]) -> None:
        for m, why in rejected:
            headers = [
                ("baocao-reason", why.reason.encode()),
                ("baocao-detail", why.detail.encode()[:1000]),
                ("baocao-source", f"{m.topic}/{m.partition}/{m.offset}".encode()),
            ]
            await self.dead_letter(m.key, m.value, headers)
            self.metrics.dead_letters.labels(why.reason).inc()
            self.metrics.reports.labels("dead_letter").inc()
            log.warning(
                "dead letter",
                extra={"reason": why.reason, "detail": why.detail[:300], "source": f"{m.partition}/{m.offset}"},
            )

    async def _publish_totals(self, docs: dict[str, dict[str, Any]]) -> None:
        """Publish the current state of the documents a batch touched, on the compacted stream.

        Another worker may change a document between our write and our send, and its message
        may land before ours: so after sending we compare versions and resend what moved, until
        what we last sent is what is stored. Whoever writes last therefore also publishes last,
        and the newest message per key is the current state (the version field orders the rest).
        """
        if self.publish_total is None or not docs:
            return
        store = self.projector.store
        for _ in range(MAX_PUBLISH_ROUNDS):
            messages = [encode(totals_message(d)) for d in docs.values()]
            await self._retrying("publish", partial(self.publish_total, messages))
            versions = await self._retrying("publish", partial(store.read_versions, list(docs)))
            moved = [i for i, d in docs.items() if versions.get(i) != d.get("version")]
            if not moved:
                return
            docs = await self._retrying("publish", partial(store.read_totals, moved))

    async def _retrying(self, cause: str, op: Callable[[], Awaitable[Any]]) -> Any:
        attempt = 0
        while True:
            try:
                return await op()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Kafka or the database away: wait, retry
                attempt += 1
                self.metrics.retries.labels(cause).inc()
                log.warning("%s failed, retrying", cause, extra={"attempt": attempt, "error": repr(exc)[:300]})
                await asyncio.sleep(min(self.retry_pause * attempt, 5.0))

    async def handle(self, messages: Sequence[RawMessage]) -> None:
        """Apply one batch (messages of any of this worker's partitions), then dead-letter what
        was refused and publish the documents that changed. Returns only when all of it is done."""
        good, bad = await self._decode(messages)
        started = time.perf_counter()
        attempt = 0
        while True:
            try:
                result = await self.projector.apply(good)
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Never let an error escape: faust acknowledges a batch even when the agent
                # raises, and an acknowledged batch that was not applied is lost. The database
                # being away (restart, failover) is the usual cause; the writes are idempotent,
                # so the same batch is simply tried again. Anything else is a bug that stops this
                # worker's progress, loudly, rather than skipping reports.
                attempt += 1
                cause = "database" if isinstance(exc, PyMongoError) else "unexpected"
                self.metrics.retries.labels(cause).inc()
                log.warning(
                    "batch failed, retrying",
                    extra={"attempt": attempt, "error": repr(exc)[:300]},
                    exc_info=cause == "unexpected",
                )
                await asyncio.sleep(min(self.retry_pause * attempt, 5.0))
        source = {(m.partition, m.offset): m for m in messages}
        domain_rejects = [
            (source[(p.partition, p.offset)], Rejected("rejected", reason)) for p, reason in result.rejected
        ]
        await self._send_dead_letters(bad + domain_rejects)
        await self._publish_totals(result.touched)
        elapsed = time.perf_counter() - started
        self.metrics.flush_seconds.observe(elapsed)
        self.metrics.flush_size.observe(len(result.written))
        if result.attempts > 1:
            self.metrics.retries.labels("conflict").inc(result.attempts - 1)
        for outcome, n in result.outcomes.items():
            if outcome != "rejected":
                self.metrics.reports.labels(outcome).inc(n)
        now = datetime.now(UTC)
        for p in good:
            self.metrics.freshness.observe(max(0.0, (now - p.report.received_at).total_seconds()))
        for m in messages:
            self.last_applied[m.partition] = max(m.offset, self.last_applied.get(m.partition, m.offset))
