"""Live updates of a unit's page: a server-sent event stream per open page, counted per session
and per token (the token's quota is the API's own, shared with its streams), ended when the session
ends (logout, revocation: ``StreamGuard``) or expires."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from services.api.stream import StreamQuota, TooManyStreams, TotalsBroadcaster
from services.api.web.session import SessionStore, StoredSession, StreamGuard

KEEP_ALIVE_SECONDS = 15  # a comment line at least this often keeps proxies from closing an idle stream
EXPIRED = "Phiên đăng nhập đã hết hạn."
ENDED = "Phiên đăng nhập đã kết thúc (đăng xuất hoặc mã truy cập bị thu hồi)."


class SessionFull(Exception):
    """The session, or its token, already holds the most streams allowed."""

    def __init__(self, held: int) -> None:
        super().__init__(held)
        self.held = held  # the streams the session holds


class LiveStreams:
    def __init__(self, per_session: int, per_token: StreamQuota, guard: StreamGuard) -> None:
        self.max_per_session = per_session
        self.session_streams: dict[str, int] = {}  # open streams per session key
        self.per_token = per_token
        self.guard = guard

    def take(self, session_key: str, token_id: str) -> Callable[[], None]:
        """Counts one more stream for the session and its token and returns what gives it back
        (to be called once); SessionFull when either already holds the most allowed."""
        held = self.session_streams.get(session_key, 0)
        if held >= self.max_per_session:
            raise SessionFull(held)
        try:
            release_token = self.per_token.take(token_id)
        except TooManyStreams:
            raise SessionFull(held) from None
        self.session_streams[session_key] = held + 1

        def release() -> None:
            left = self.session_streams.pop(session_key, 1) - 1
            if left > 0:
                self.session_streams[session_key] = left
            release_token()

        return release

    async def events(
        self, broadcaster: TotalsBroadcaster, code: str, store: SessionStore, stored: StoredSession, deadline: float
    ) -> AsyncIterator[str]:
        """The stream of ``code``'s changes until ``deadline`` (unix seconds) or the session's end,
        whichever comes first; its last event says which."""
        handle, ended = self.guard.watch(store, stored)
        ender = asyncio.ensure_future(ended.wait())
        getter: asyncio.Future[Any] | None = None
        try:
            async with broadcaster.subscribe(code) as sub:
                yield ": connected\n\n"
                while True:
                    left = deadline - time.time()
                    if left <= 0:
                        reason = EXPIRED
                        break
                    if getter is None:
                        getter = asyncio.ensure_future(sub.queue.get())
                    done, _ = await asyncio.wait(
                        {getter, ender}, timeout=min(left, KEEP_ALIVE_SECONDS), return_when=asyncio.FIRST_COMPLETED
                    )
                    if ender in done:
                        reason = ENDED
                        break
                    if getter in done:
                        message, getter = getter.result(), None
                        yield total_event(message)
                    elif time.time() < deadline:
                        yield ": keep-alive\n\n"
                yield f"event: end\ndata: {json.dumps({'reason': reason}, ensure_ascii=False)}\n\n"
        finally:
            for task in (getter, ender):
                if task is not None:
                    task.cancel()
            self.guard.unwatch(handle)


def total_event(message: dict[str, Any]) -> str:
    """A change of totals as the page's script reads it: the series and the periods it touched."""
    change = {"series": message.get("series"), "periods": sorted(message.get("periods") or {})}
    return f"event: total\ndata: {json.dumps(change)}\n\n"
