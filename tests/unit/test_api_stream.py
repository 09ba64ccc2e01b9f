"""One stream's rules (services/api/stream.py): the quota per token, when a stream ends, and the
events it sends, without HTTP."""

import asyncio
import json
import time

import pytest
from prometheus_client import CollectorRegistry, Gauge

from services.api.stream import (
    StreamQuota,
    Subscription,
    TooManyStreams,
    TotalsBroadcaster,
    end_reason,
    sse_events,
    unit_events,
)
from shared.adapters.revocations import InMemoryRevocations, RevocationsUnavailable
from shared.domain.auth import Principal, Scope


def principal(expires_in: float = 3600) -> Principal:
    return Principal("t1", "386", frozenset({Scope.STREAM}), int(time.time() + expires_in))


def test_a_token_holds_at_most_its_quota_and_each_release_gives_one_back():
    quota = StreamQuota(2)
    first, second = quota.take("t1"), quota.take("t1")
    with pytest.raises(TooManyStreams, match=r"already has 2 open streams.*MAX_STREAMS_PER_TOKEN=2"):
        quota.take("t1")
    quota.take("t2")  # another token has its own
    first()
    assert quota.held("t1") == 1
    quota.take("t1")
    second()
    assert quota.held("t1") == 1
    assert len(quota) == 2


def test_released_streams_leave_no_trace():
    quota = StreamQuota(1)
    quota.take("t1")()
    assert len(quota) == 0 and quota.held("t1") == 0


class Unreadable:
    async def is_revoked(self, token_id):
        raise RevocationsUnavailable("down")


async def test_a_stream_ends_when_its_token_expires_is_revoked_or_cannot_be_checked():
    revocations = InMemoryRevocations()
    assert await end_reason(principal(), revocations) is None
    assert await end_reason(principal(expires_in=-1), revocations) == "token expired"
    await revocations.revoke("t1", "lost")
    assert await end_reason(principal(), revocations) == "token revoked"
    assert "cannot be read" in await end_reason(principal(), Unreadable())


async def collect(events, until):
    out = []
    async for event in events:
        out.append(event)
        if until(out):
            break
    return out


MESSAGE = {"id": "386|study_session|2020", "version": 3, "parents": ["386", "38"], "unit": "386"}


async def test_events_are_connected_then_totals_with_their_id_then_end_with_the_reason():
    sub = Subscription("386")
    sub.queue.put_nowait(MESSAGE)
    reasons = iter([None, None, "token revoked"])

    async def ended():
        return next(reasons)

    out = await collect(sse_events(sub, ended, recheck_seconds=0.01), lambda _: False)
    assert out[0] == ": connected\n\n"
    assert out[1] == f"event: total\nid: 386|study_session|2020:3\ndata: {json.dumps(MESSAGE)}\n\n"
    assert out[-1] == 'event: end\ndata: {"reason": "token revoked"}\n\n'
    assert len(out) == 3


async def test_a_quiet_stream_sends_keep_alive_comments():
    async def never():
        return None

    events = sse_events(Subscription("386"), never, recheck_seconds=1, keep_alive_seconds=0.01)
    out = await asyncio.wait_for(collect(events, lambda out: len(out) == 3), timeout=5)
    assert out == [": connected\n\n", ": keep-alive\n\n", ": keep-alive\n\n"]


async def test_unit_events_get_the_changes_under_the_unit_and_count_the_open_streams():
    broadcaster = TotalsBroadcaster("unused:9092", "totals")
    gauge = Gauge("open", "open streams", registry=CollectorRegistry())

    async def never():
        return None

    events = unit_events(broadcaster, "38", never, 1.0, gauge)
    assert await anext(events) == ": connected\n\n"
    assert gauge._value.get() == 1 and len(broadcaster.subscriptions) == 1
    broadcaster.publish({**MESSAGE, "parents": ["388", "38"], "id": "388|x|2020"})
    broadcaster.publish({**MESSAGE, "parents": ["14", "1"], "id": "14|x|2020"})  # another province's
    assert (await anext(events)).startswith("event: total\nid: 388|x|2020:3\n")
    assert next(iter(broadcaster.subscriptions)).queue.empty()  # nothing of province 1
    await events.aclose()
    assert gauge._value.get() == 0 and not broadcaster.subscriptions
