"""The API's follower of the totals topic, on the real broker: it replays the topic into the cache
before serving from it, so the cache knows which documents exist; subscribers get only what is
published after it started."""

import asyncio
import json

import pytest
from aiokafka import AIOKafkaProducer

from services.api.cache import TotalsCache
from services.api.stream import TotalsBroadcaster

pytestmark = pytest.mark.integration


def message(unit: str, attended: int, version: int, periods: bool = True) -> dict:
    return {
        "schema_version": 2,
        "id": f"{unit}|study_session|2020",
        "unit": unit,
        "series": "study_session",
        "span": "2020",
        "parents": [unit, "389", "38"],
        "version": version,
        "periods": {"2020-12": {"sums": {"members_attended": attended}, "reports": 1}} if periods else {},
    }


async def until(check) -> None:
    for _ in range(300):
        if check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("not within 30 s")


async def send(namespace, topic: str, *messages: dict) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=namespace.env["KAFKA_BOOTSTRAP_SERVERS"], **namespace.kafka_options("aggregate")
    )
    await producer.start()
    try:
        for m in messages:
            await producer.send_and_wait(topic, json.dumps(m).encode(), key=m["id"].encode())
    finally:
        await producer.stop()


async def test_the_follower_replays_the_topic_into_the_cache_and_only_news_reach_subscribers(namespace):
    topic = namespace.env["BAOCAO_TOTALS_TOPIC"]
    # 14929's only report was withdrawn: published emptied, deleted from the database
    await send(namespace, topic, message("14923", 5, 1), message("14926", 3, 1), message("14923", 6, 2))
    await send(namespace, topic, message("14929", 2, 1), message("14929", 0, 2, periods=False))
    cache = TotalsCache(max_documents=100)
    follower = TotalsBroadcaster(
        namespace.env["KAFKA_BOOTSTRAP_SERVERS"], topic, cache, credentials=namespace.credentials("reader")
    )
    task = asyncio.create_task(follower.run())
    try:
        async with follower.subscribe("38") as sub:
            await until(lambda: cache.complete)
            assert cache.serving
            assert cache.get("14923|study_session|2020")["version"] == 2  # the latest of two
            assert cache.exists("14926|study_session|2020")
            assert not cache.exists("14929|study_session|2020")  # emptied
            assert not cache.exists("14932|study_session|2020")  # never published
            assert sub.queue.empty()  # the replay is not news

            await send(namespace, topic, message("14932", 4, 1))
            news = await asyncio.wait_for(sub.queue.get(), timeout=30)
            assert news["id"] == "14932|study_session|2020"
            assert cache.exists("14932|study_session|2020")
            assert sub.queue.empty()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert not cache.serving and not cache.complete  # stopped: nothing is served from memory


async def test_without_a_cache_the_follower_starts_at_the_end(namespace, caplog):
    """Nothing to fill, so the topic is not replayed: an old message is never even read."""
    topic = namespace.env["BAOCAO_TOTALS_TOPIC"]
    producer = AIOKafkaProducer(
        bootstrap_servers=namespace.env["KAFKA_BOOTSTRAP_SERVERS"], **namespace.kafka_options("aggregate")
    )
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"not json", key=b"x")
    finally:
        await producer.stop()
    follower = TotalsBroadcaster(
        namespace.env["KAFKA_BOOTSTRAP_SERVERS"], topic, None, credentials=namespace.credentials("reader")
    )
    task = asyncio.create_task(follower.run())
    try:
        async with follower.subscribe("38") as sub:
            await until(follower.ready.is_set)
            await send(namespace, topic, message("14926", 3, 1))
            news = await asyncio.wait_for(sub.queue.get(), timeout=30)
            assert news["id"] == "14926|study_session|2020"
            assert sub.queue.empty()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert "undecodable totals message" not in caplog.text
