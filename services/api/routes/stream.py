"""The stream: server-sent events of every change of a total in a unit's subtree."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Send
from starlette.types import Scope as AsgiScope

from services.api.deps import Code, Components, CurrentPrincipal, Tree, known
from services.api.stream import TooManyStreams, end_reason, unit_events
from shared.domain.auth import Scope
from shared.http.base import authorize, error

router = APIRouter()


class _ReleasingStream(StreamingResponse):
    """Calls ``release`` once the response is over, however it ends. (A generator's ``finally``
    does not run when the client leaves before its first item.)"""

    def __init__(self, content: AsyncIterator[str], release: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self._release = release

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


@router.get(
    "/v1/units/{code}/stream",
    summary="Server-sent events: every change of a total in the unit's subtree (stream scope)",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "event: total, data: a totals message (schema v1); event: end, data: "
            '{"reason": ...} when the token expires or is revoked (checked every few seconds)',
        },
        429: error("the token already holds the most open streams allowed"),
    },
)
async def stream_totals(
    code: Code, tree: Tree, principal: CurrentPrincipal, components: Components
) -> StreamingResponse:
    authorize(principal, Scope.STREAM, tree, code)
    known(tree, code)
    try:
        release = components.streams.take(principal.token_id)
    except TooManyStreams as exc:
        raise HTTPException(429, str(exc), headers={"Retry-After": "5"}) from None
    revocations = components.auth.revocations

    async def ended() -> str | None:
        return await end_reason(principal, revocations)

    events = unit_events(
        components.broadcaster,
        code,
        ended,
        components.settings.stream_recheck_seconds,
        components.metrics.sse_clients,
    )
    return _ReleasingStream(events, release, media_type="text/event-stream", headers={"Cache-Control": "no-store"})
