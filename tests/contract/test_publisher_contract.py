"""One contract, two adapters: ingest's publisher, in memory and to a real Kafka broker."""

import pytest

from services.ingest.publisher import InMemoryPublisher, KafkaPublisher
from shared.domain.stamps import stamp_key
from tests.conftest import TEST_SECRET


@pytest.fixture(params=["memory", pytest.param("kafka", marks=pytest.mark.integration)])
async def publisher(request):
    if request.param == "memory":
        yield InMemoryPublisher(topic="reports", partitions=4)
        return
    ns = request.getfixturevalue("namespace")
    kafka = KafkaPublisher(
        ns.env["KAFKA_BOOTSTRAP_SERVERS"],
        ns.reports_topic,
        timeout_s=20,
        credentials=ns.credentials("ingest"),
        stamp_key=stamp_key(TEST_SECRET),
    )
    await kafka.start()
    yield kafka
    await kafka.stop()


async def test_it_is_ready_and_acknowledges_with_a_position(publisher):
    assert await publisher.ready()
    first = await publisher.publish(b"14923", b'{"n": 1}')
    second = await publisher.publish(b"14923", b'{"n": 2}')
    assert first.partition == second.partition  # one unit's reports stay in order, in one partition
    assert second.offset == first.offset + 1


async def test_units_spread_over_partitions(publisher):
    partitions = {(await publisher.publish(f"{u:05d}".encode(), b"{}")).partition for u in range(40)}
    assert len(partitions) > 1


async def test_a_key_goes_to_the_partition_the_aggregator_counts_it_on(publisher):
    from services.aggregate.routing import partition_for

    for province in ("01", "38", "79", "96"):
        assert (await publisher.publish(province.encode(), b"{}")).partition == partition_for(province, 4)
