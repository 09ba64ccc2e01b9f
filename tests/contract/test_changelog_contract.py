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
    changelog = KafkaChangelog(
        bootstrap, state_topic(ns.reports_topic), producer, credentials=ns.credentials("aggregate")
    )
    yield changelog
    await changelog.close()
    await producer.stop()


async def read_all(changelog, partition, start=0):
    end = (await changelog.end_offsets([partition]))[partition]
    return [record async for record in changelog.read(partition, start, end)]


async def test_appended_records_read_back_in_order_per_partition(changelog):
    await changelog.append([(1, b"a", b"1"), (2, b"b", b"2"), (1, b"a", b"3")])
    await changelog.append([(1, b"c", b"4")])
    assert await read_all(changelog, 1) == [(b"a", b"1"), (b"a", b"3"), (b"c", b"4")]
    assert await read_all(changelog, 2) == [(b"b", b"2")]


async def test_an_empty_partition_reads_as_nothing(changelog):
    assert await changelog.end_offsets([3]) == {3: 0}
    assert await read_all(changelog, 3) == []
    await changelog.append([(0, b"k", b"v")])
    assert await read_all(changelog, 3) == []
    assert await read_all(changelog, 0) == [(b"k", b"v")]


async def test_append_says_where_the_records_went(changelog):
    first = await changelog.append([(0, b"a", b"1"), (1, b"b", b"2"), (0, b"c", b"3")])
    second = await changelog.append([(0, b"d", b"4")])
    # per partition, (offset, length) of consecutive runs: the offsets are those the records got
    assert sorted((o + i for o, n in first[0] for i in range(n))) == [0, 1]
    assert sorted((o + i for o, n in first[1] for i in range(n))) == [0]
    assert [o + i for o, n in second[0] for i in range(n)] == [2]
    assert await changelog.end_offsets([0, 1, 2]) == {0: 3, 1: 1, 2: 0}
    assert await read_all(changelog, 0, start=2) == [(b"d", b"4")]
    assert [r async for r in changelog.read(0, 1, 2)] == [(b"c", b"3")]


async def test_reading_stops_at_the_end_it_was_given(changelog):
    await changelog.append([(0, b"k", b"1"), (0, b"k", b"2")])
    end = (await changelog.end_offsets([0]))[0]
    seen = []
    async for record in changelog.read(0, 0, end):
        seen.append(record)
        if len(seen) == 1:
            await changelog.append([(0, b"k", b"late")])
    assert seen == [(b"k", b"1"), (b"k", b"2")]
