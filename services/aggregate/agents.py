"""The faust agent: thin. It buffers events and hands each batch to the aggregator."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import faust

from services.aggregate.worker import RawMessage

if TYPE_CHECKING:
    from services.aggregate.app import Runtime


LOG_APPEND_TIME = 1  # Kafka's timestamp type of a message whose timestamp the broker set


def _headers(headers: Any) -> list[tuple[str, bytes | None]]:
    items = headers.items() if isinstance(headers, dict) else (headers or ())
    return [(str(k), v) for k, v in items]


def raw_messages(events: list[Any]) -> list[RawMessage]:
    return [
        RawMessage(
            topic=e.message.topic,
            partition=e.message.partition,
            offset=e.message.offset,
            key=e.message.key,
            value=e.value,
            timestamp_ms=int(e.message.timestamp * 1000) if e.message.timestamp else None,
            headers=tuple(_headers(e.message.headers)),
            log_append_time=e.message.timestamp_type == LOG_APPEND_TIME,
        )
        for e in events
    ]


def register_agents(app: faust.App, reports: faust.TopicT, runtime: Runtime) -> None:
    settings = runtime.settings

    # take_events yields lists of events; faust acknowledges them (and so may commit their
    # offsets) only after the loop body returns, i.e. after what handle() sent was acknowledged.
    @app.agent(reports, name="apply_reports")
    async def apply_reports(stream: faust.StreamT[Any]) -> None:
        aggregator = await runtime.start()
        async for events in stream.take_events(settings.batch_max, within=settings.batch_within):  # type: ignore[attr-defined]
            await aggregator.handle(raw_messages(events))
            await aggregator.backpressure(settings.flush_documents)
            await aggregator.snapshot_due()
