"""One contract, two adapters: the aggregator's changelog, in memory and on a real Kafka topic."""

import pytest
from aiokafka import AIOKafkaProducer

from services.aggregate.state import InMemoryChangelog, KafkaChangelog, state_topic


@pytest.fixture(params=["memory", pytest.param("kafka", marks=pytest.mark.integration)])
async def changelog(request):
    if request.param == "memory":
        yield InMemoryChangelog()
        return
    ns = request.getfixturevalue("namespace")  # its topics have 4 partitions
    bootstrap = ns.env["KAFKA_BOOTSTRAP_SERVERS"]
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, **ns.kafka_options("aggregate")
    )
    await producer.start()
    yield KafkaChangelog(bootstrap, state_topic(ns.reports_topic), producer, credentials=ns.credentials("aggregate"))
    await producer.stop()


async def read_all(changelog, partitions):
    return [record async for record in changelog.read(partitions)]


async def test_appended_records_read_back_in_order_per_partition(changelog):
    await changelog.append([(1, b"a", b"1"), (2, b"b", b"2"), (1, b"a", b"3")])
    await changelog.append([(1, b"c", b"4")])
    assert await read_all(changelog, [1]) == [(1, b"a", b"1"), (1, b"a", b"3"), (1, b"c", b"4")]
    assert await read_all(changelog, [2]) == [(2, b"b", b"2")]
    got = await read_all(changelog, [1, 2])
    assert sorted(got) == sorted([(1, b"a", b"1"), (1, b"a", b"3"), (1, b"c", b"4"), (2, b"b", b"2")])


async def test_an_empty_partition_reads_as_nothing(changelog):
    assert await read_all(changelog, [3]) == []
    assert await read_all(changelog, []) == []
    await changelog.append([(0, b"k", b"v")])
    assert await read_all(changelog, [3]) == []
    assert await read_all(changelog, [0]) == [(0, b"k", b"v")]


async def test_reading_stops_at_the_end_as_it_was_when_reading_began(changelog):
    await changelog.append([(0, b"k", b"1"), (0, b"k", b"2")])
    seen = []
    async for record in changelog.read([0]):
        seen.append(record)
        if len(seen) == 1:
            await changelog.append([(0, b"k", b"late")])
    assert seen == [(0, b"k", b"1"), (0, b"k", b"2")]
