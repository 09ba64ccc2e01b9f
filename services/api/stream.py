"""Server-sent events of total changes: the API follows the compacted totals topic and fans each
change out to the subscribers whose unit is among the changed document's parents.

Here too are the rules of one stream: how many one token may hold open (:class:`StreamQuota`),
when it ends (:func:`end_reason`), and what it sends (:func:`sse_events`)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import Gauge

from services.api.cache import TotalsCache
from shared.adapters.kafka_credentials import KafkaCredentials, client_options
from shared.adapters.revocations import Revocations, RevocationsUnavailable, refused
from shared.domain.auth import Principal

log = logging.getLogger(__name__)
QUEUE_SIZE = 1000
# a comment line sent when nothing else was for this long, so that proxies and clients keep an idle
# stream open and a client that left is noticed
KEEP_ALIVE_SECONDS = 15.0


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
                **client_options(self.credentials),
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


class TooManyStreams(Exception):
    """The token already holds the most open streams allowed."""

    def __init__(self, held: int, most: int) -> None:
        super().__init__(
            f"this token already has {held} open streams, the most one token may hold "
            f"(BAOCAO_API_MAX_STREAMS_PER_TOKEN={most}); close one first"
        )


class StreamQuota:
    """The streams each token holds open, at most ``most`` at once."""

    def __init__(self, most: int) -> None:
        self.most = most
        self._open: dict[str, int] = {}  # token id -> open streams; tokens with none are absent

    def held(self, token_id: str) -> int:
        return self._open.get(token_id, 0)

    def __len__(self) -> int:
        """Tokens holding at least one stream."""
        return len(self._open)

    def take(self, token_id: str) -> Callable[[], None]:
        """Count one more stream for the token, or :class:`TooManyStreams`; returns the function
        that gives it back, to be called once when the stream is over."""
        held = self.held(token_id)
        if held >= self.most:
            raise TooManyStreams(held, self.most)
        self._open[token_id] = held + 1

        def release() -> None:
            left = self._open.pop(token_id, 1) - 1
            if left:
                self._open[token_id] = left

        return release


async def end_reason(principal: Principal, revocations: Revocations) -> str | None:
    """Why a stream opened with ``principal``'s token must end now, or None (the token itself was
    checked once, when the stream opened)."""
    if principal.expires_at < time.time():
        return "token expired"
    try:
        if await refused(revocations, principal):
            return "token revoked"
    except RevocationsUnavailable:
        return "the revocation list cannot be read; reconnect shortly"
    return None


async def sse_events(
    sub: Subscription,
    ended: Callable[[], Awaitable[str | None]],
    recheck_seconds: float,
    keep_alive_seconds: float = KEEP_ALIVE_SECONDS,
) -> AsyncIterator[str]:
    """The server-sent events of one subscription: ``: connected``, then an ``event: total`` per
    message (its id ``<document id>:<version>``), a keep-alive comment after ``keep_alive_seconds``
    without one, and ``event: end`` with the reason as soon as ``ended()``, asked every
    ``recheck_seconds``, gives one."""
    loop = asyncio.get_running_loop()
    yield ": connected\n\n"
    last_sent = next_check = loop.time()
    while True:
        now = loop.time()
        if now >= next_check:
            if (reason := await ended()) is not None:
                yield f"event: end\ndata: {json.dumps({'reason': reason})}\n\n"
                return
            next_check = now + recheck_seconds
        if now - last_sent >= keep_alive_seconds:
            yield ": keep-alive\n\n"
            last_sent = now
        wait = min(next_check, last_sent + keep_alive_seconds) - now
        try:
            message = await asyncio.wait_for(sub.queue.get(), timeout=max(wait, 0.0))
        except TimeoutError:
            continue
        event_id = f"{message['id']}:{message['version']}"
        data = json.dumps(message, ensure_ascii=False)
        yield f"event: total\nid: {event_id}\ndata: {data}\n\n"
        last_sent = loop.time()


async def unit_events(
    broadcaster: TotalsBroadcaster,
    unit: str,
    ended: Callable[[], Awaitable[str | None]],
    recheck_seconds: float,
    open_streams: Gauge,
) -> AsyncIterator[str]:
    """:func:`sse_events` of the changes in ``unit``'s subtree, counted in ``open_streams`` while
    the stream is open."""
    open_streams.inc()
    try:
        async with broadcaster.subscribe(unit) as sub:
            async for event in sse_events(sub, ended, recheck_seconds):
                yield event
    finally:
        open_streams.dec()
