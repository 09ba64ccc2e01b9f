"""An idempotent aiokafka producer that is replaced when the broker has lost its producer state.

An idempotent producer numbers each partition's batches. When a broker restarts or a leader moves
at the wrong moment, the broker may no longer hold the producer's numbers and answers
``OutOfOrderSequenceNumber`` (or ``UnknownProducerId``). aiokafka treats that as final for the
batch and keeps the numbers it had, so every later send fails the same way, until the process
restarts (aio-libs/aiokafka#1017): ingest answered 503 to every report after a broker restart on
a loaded machine (tests/e2e/test_server_restarts.py).

:class:`RenewingProducer` holds the producer; a sender that meets one of those errors calls
:meth:`RenewingProducer.renew` with the producer it used, and the next send uses a new producer
(a new producer id, numbering from zero). The failed send is not acknowledged, so its sender sends
it again (ingest's client, the aggregator's retry): nothing acknowledged is lost, and a message
written twice is a duplicate the aggregator counts once, as any resend is.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiokafka import AIOKafkaProducer
from aiokafka.errors import OutOfOrderSequenceNumber, UnknownProducerId

log = logging.getLogger(__name__)

# what a producer does not recover from by itself
PRODUCER_STATE_LOST = (OutOfOrderSequenceNumber, UnknownProducerId)
STOP_SECONDS = 5.0  # how long a replaced producer may take to stop


class RenewingProducer:
    def __init__(self, make: Callable[[], AIOKafkaProducer], on_renew: Callable[[], None] | None = None) -> None:
        self._make = make
        self._on_renew = on_renew  # e.g. a metric's inc: how often the broker lost our state
        self._current: AIOKafkaProducer | None = None  # made when started
        self.renewals = 0
        self._lock = asyncio.Lock()

    @property
    def current(self) -> AIOKafkaProducer:
        if self._current is None:
            raise RuntimeError("the producer is not started")
        return self._current

    async def start(self) -> None:
        producer = self._make()
        await producer.start()
        self._current = producer

    async def stop(self) -> None:
        if self._current is not None:
            await self._current.stop()

    async def renew(self, broken: AIOKafkaProducer) -> None:
        """Replace ``broken`` with a started new producer, unless another sender already has."""
        replaced: AIOKafkaProducer = broken
        async with self._lock:
            if self._current is not broken:
                return
            fresh = self._make()
            await fresh.start()
            self._current = fresh
            self.renewals += 1
            if self._on_renew is not None:
                self._on_renew()
        log.warning("the broker lost this producer's state: a new producer replaces it")
        try:
            await asyncio.wait_for(replaced.stop(), STOP_SECONDS)
        except Exception as exc:  # noqa: BLE001 - what the old one holds is not acknowledged, and is sent again
            log.warning("the replaced producer did not stop cleanly", extra={"error": repr(exc)[:200]})
