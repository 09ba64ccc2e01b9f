"""A faust App whose consumer starts partitions without a committed offset at the beginning.

Why: with faust-streaming 0.15.3 and aiokafka 0.14, a consumer group that has committed nothing
yet (a new deployment, or a partition that never had a message) misses the messages already in
the topic: faust only seeks partitions whose committed offset is > 0, and the records aiokafka
fetched from the reset position while faust was still recovering are dropped. (Seen here: a fresh
group consumed only messages produced after it started, despite auto_offset_reset=earliest.)
Seeking those partitions to the beginning, inside faust's own seek step, closes the gap. Applying
a report twice is harmless anyway (see state.py); skipping one is not.
"""

from __future__ import annotations

from collections.abc import Mapping

import aiokafka
import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP


class RewindingConsumer(faust_aiokafka.Consumer):
    async def seek_to_committed(self) -> Mapping[TP, int]:
        committed = await super().seek_to_committed()
        fresh = [
            aiokafka.TopicPartition(tp.topic, tp.partition)
            for tp, offset in committed.items()
            if not offset or offset <= 0
        ]
        if fresh:
            await self._thread.seek_to_beginning(*fresh)
        return committed


class RewindingTransport(faust_aiokafka.Transport):
    Consumer = RewindingConsumer


class AggregateApp(faust.App):
    def _new_transport(self) -> RewindingTransport:
        return RewindingTransport(self.conf.broker_consumer, self)
