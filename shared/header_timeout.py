"""A request-header deadline for uvicorn, against slowloris clients.

uvicorn 0.54 has none: ``timeout_keep_alive`` only closes connections idle between requests, so
a client that sends a request's headers a byte at a time holds its connection (and a file
descriptor, and a place under any connection limit) for as long as it likes. This is uvicorn's own
httptools protocol (the C parser) with one addition: from a connection's first moment, and from
the first byte of each following request on a kept-alive connection, the request line and headers
must be complete within ``seconds``, or the connection gets ``408 Request Timeout`` and is closed.
Bodies are not under this deadline (a large upload on a slow line is legitimate; the body size
limit in shared/http.py bounds it). The first version of this was built on uvicorn's h11 protocol
(pure Python): single-report POSTs to ingest fell from 1,899 to 1,539 per second (`make bench`).

Both HTTP services run with it, through :func:`serve`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger(__name__)

_TIMEOUT_BODY = b'{"detail":"request headers not received in time"}'
TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
    b"content-length: " + str(len(_TIMEOUT_BODY)).encode() + b"\r\n\r\n" + _TIMEOUT_BODY
)


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline on each request's headers (see the module)."""

    header_timeout: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_deadline: asyncio.TimerHandle | None = None
        self._awaiting_headers = False  # a request (or the connection's first) whose headers are not all in

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._awaiting_headers = True
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._awaiting_headers = True
        # the first byte of a kept-alive connection's next request starts its clock; one already
        # running (the connection's first request) keeps it
        if self._header_deadline is None and not self.transport.is_closing():
            self._arm()

    def on_headers_complete(self) -> None:
        self._awaiting_headers = False
        self._disarm()  # the headers are in (a body, or the response, follows)
        super().on_headers_complete()

    def _arm(self) -> None:
        self._disarm()
        self._header_deadline = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if self.transport.is_closing() or not self._awaiting_headers:
            return
        log.warning(
            "request headers not complete in time; connection closed",
            extra={
                "client": f"{self.client[0]}:{self.client[1]}" if self.client else "?",
                "seconds": self.header_timeout,
            },
        )
        self.transport.write(TIMEOUT_RESPONSE)
        self.transport.close()


def header_timeout_protocol(seconds: float) -> type[HeaderTimeoutProtocol]:
    """The protocol class to hand uvicorn (``http=``), with its deadline set to ``seconds``."""

    class Configured(HeaderTimeoutProtocol):
        header_timeout = float(seconds)

    return Configured


def serve(app: Any, host: str, port: int, header_timeout_seconds: float) -> None:
    """Run an HTTP service's app under uvicorn as both services run: our logging, 10 s to finish
    requests on shutdown, and the request-header deadline above."""
    import uvicorn

    uvicorn.run(
        app,
        host=host,
        port=port,
        log_config=None,
        timeout_graceful_shutdown=10,
        http=header_timeout_protocol(header_timeout_seconds),
    )
