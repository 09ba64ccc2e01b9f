"""A producer whose state the broker lost is replaced (shared/adapters/kafka_producer.py): the
failed send raises, and the next one goes through a new producer, made once however many
senders saw the failure."""

import asyncio

import pytest
from aiokafka.errors import KafkaTimeoutError, OutOfOrderSequenceNumber

from services.ingest.publisher import KafkaPublisher, PublishFailed
from shared.adapters.kafka_batches import send_batched
from shared.adapters.kafka_producer import RenewingProducer


class Builder:
    def __init__(self) -> None:
        self.records: list[bytes | None] = []

    def append(self, key, value, timestamp, headers):
        self.records.append(value)
        return object()

    def record_count(self) -> int:
        return len(self.records)


class Meta:
    topic, partition, offset = "t", 0, 7


class FakeProducer:
    """Fails every send with ``error`` (None: succeeds), as an idempotent producer whose
    sequence numbers the broker no longer knows does."""

    def __init__(self, error: type[Exception] | None) -> None:
        self.error, self.started, self.stopped, self.sent = error, False, False, 0

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def partitions_for(self, topic):
        return {0, 1}

    def create_batch(self):
        return Builder()

    async def _answer(self):
        await asyncio.sleep(0)
        if self.error is not None:
            raise self.error()
        return Meta()

    async def send_batch(self, builder, topic, partition):
        self.sent += builder.record_count()
        return asyncio.ensure_future(self._answer())

    async def send_and_wait(self, topic, value, key, partition, headers):
        self.sent += 1
        return await self._answer()


def renewing(*errors, on_renew=None):
    made: list[FakeProducer] = []

    def make():
        made.append(FakeProducer(errors[len(made)] if len(made) < len(errors) else None))
        return made[-1]

    return RenewingProducer(make, on_renew), made  # type: ignore[arg-type]


async def test_a_batch_refused_for_lost_state_renews_the_producer_and_the_resend_goes_through():
    producer, made = renewing(OutOfOrderSequenceNumber)
    await producer.start()
    with pytest.raises(OutOfOrderSequenceNumber):
        await send_batched(producer, "t", [(0, b"k", b"v", ())])
    assert len(made) == 2 and made[0].stopped and made[1].started and producer.renewals == 1
    assert await send_batched(producer, "t", [(0, b"k", b"v", ())]) == 1
    assert made[1].sent == 1


async def test_other_errors_keep_the_producer():
    producer, made = renewing(KafkaTimeoutError)
    await producer.start()
    with pytest.raises(KafkaTimeoutError):
        await send_batched(producer, "t", [(0, b"k", b"v", ())])
    assert len(made) == 1 and producer.renewals == 0


async def test_many_senders_meeting_the_error_make_one_new_producer_and_count_it_once():
    counted: list[int] = []
    producer, made = renewing(OutOfOrderSequenceNumber, on_renew=lambda: counted.append(1))
    await producer.start()
    broken = producer.current
    await asyncio.gather(*(producer.renew(broken) for _ in range(5)))
    assert len(made) == 2 and producer.renewals == 1 and producer.current is made[1] and counted == [1]


async def test_ingest_answers_unavailable_then_publishes_through_the_new_producer():
    publisher = KafkaPublisher("unused:9092", "reports", stamp_key=b"k" * 32)
    producer, made = renewing(OutOfOrderSequenceNumber)
    publisher._producers = producer
    await publisher.start()
    with pytest.raises(PublishFailed, match="OutOfOrderSequenceNumber"):
        await publisher.publish(b"38", b"{}")
    assert (await publisher.publish(b"38", b"{}")).offset == 7 and producer.renewals == 1
    assert made[0].stopped and made[1].sent == 1
