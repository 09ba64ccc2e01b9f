"""A faust App whose consumer (1) starts partitions without a committed offset at the beginning
and (2) hands each fetched batch to the agents' channels in one task, not one task per message.

(1) Why: with faust-streaming 0.15.3 and aiokafka 0.14, a consumer group that has committed nothing
yet (a new deployment, or a partition that never had a message) misses the messages already in
the topic: faust only seeks partitions whose committed offset is > 0, and the records aiokafka
fetched from the reset position while faust was still recovering are dropped. (Seen here: a fresh
group consumed only messages produced after it started, despite auto_offset_reset=earliest.)
Seeking those partitions to the beginning, inside faust's own seek step, closes the gap. Applying
a report twice is harmless anyway (see state.py); skipping one is not.

(2) Why: faust's ``Consumer._drain_messages`` races the delivery of every message against the
flow being suspended (a rebalance) with ``Service.wait_first``, which starts four tasks and an
``asyncio.wait`` per message. A faust agent doing nothing but decode spent a fifth of its time
there (py-spy; bench.faust_limit). Racing each fetched batch once keeps what the race is for
(a rebalance or a stop interrupts a delivery blocked on a full channel; what was not delivered is
read again from the committed offsets by whoever owns the partition next) at a fraction of the
cost. And when every partition's channel is full, faust's getmany sleeps a whole second before
looking again; this loop waits BUFFER_FULL_PAUSE instead (with batches delivered at once, the
channels fill up, and that second stalled a fast agent: 1 s lost in every 1.5). The rest of the
loop is faust's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiokafka
import faust
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message

# seconds between looks at whether an agent made room, while every partition's channel is full
BUFFER_FULL_PAUSE = 0.005


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

    async def _drain_messages(self, fetcher: Any) -> None:  # faust's loop, see (2)
        getmany = self.getmany
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                if not self.app.client_only and not self._get_active_partitions():
                    # Every partition's channel is full (or none is assigned yet): faust's getmany
                    # would sleep a whole second; the agents free room much sooner.
                    await asyncio.sleep(BUFFER_FULL_PAUSE)
                    continue
                self.diag.set_flag(CONSUMER_FETCHING)
                batch = getmany(timeout=1.0)
                await self.sleep(0)  # faust's: getmany may return at once, again and again
                if not self.should_stop:
                    await self.wait_first(self._deliver(batch), self.suspend_flow.wait())
                    self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)

    async def _deliver(self, batch: AsyncIterator[tuple[TP, Message]]) -> None:
        """faust's per-message steps of _drain_messages: skip what was read already, note gaps,
        commit every ``commit_every`` acknowledgements, hand the message to the agents."""
        callback = self.callback
        read_offset = self._read_offset
        commit_every = self._commit_every
        since_yield = 0
        async for tp, message in batch:
            since_yield += 1
            if since_yield > 100:  # faust's: let the loop breathe in a long batch
                await asyncio.sleep(0)
                since_yield = 0
            offset = message.offset
            r_offset = read_offset[tp]
            if r_offset is not None and offset < r_offset:
                continue  # read before (faust logs it at its "dev" level)
            if r_offset and offset - r_offset > 1 and self.app.topics.acks_enabled_for(message.topic):
                await self._add_gap(tp, r_offset + 1, offset)
            if commit_every is not None and self._n_acked >= commit_every:
                self._n_acked = 0
                await self.commit()
            await callback(message)
            read_offset[tp] = offset


class RewindingTransport(faust_aiokafka.Transport):
    Consumer = RewindingConsumer


class AggregateApp(faust.App):
    def _new_transport(self) -> RewindingTransport:
        return RewindingTransport(self.conf.broker_consumer, self)
