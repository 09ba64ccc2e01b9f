"""A request-header deadline for uvicorn, against slowloris clients.

uvicorn 0.54 has none: ``timeout_keep_alive`` only closes connections idle between requests, so
a client that sends a request's headers a byte at a time holds its connection (and a file
descriptor, and a place under any connection limit) for as long as it likes. This is uvicorn's own
httptools protocol (the C parser) with one addition: from a connection's first moment, and from
the first byte of each following request on a kept-alive connection, the request line and headers
must be complete within ``seconds``, or the connection gets ``408 Request Timeout`` and is closed.
The first version of this was built on uvicorn's h11 protocol (pure Python), which cost a fifth
of ingest's single-report rate.

A body has a deadline of its own, which moves as its bytes arrive: from the end of the headers, it
must be complete within ``body_grace`` seconds plus one second for every ``body_min_rate`` bytes
received, or the connection gets 408 (when no answer has begun) and is closed. A large upload on a
slow line keeps its connection as long as it keeps sending at that rate; a body trickled a byte at
a time (held open by a client with or without a token) loses it after about ``body_grace``
seconds. The body size limit in shared/http/base.py bounds how much is read.

Both HTTP services run with it, through :func:`serve`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger(__name__)


def _timeout_response(detail: bytes) -> bytes:
    body = b'{"detail":"' + detail + b'"}'
    return (
        b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


TIMEOUT_RESPONSE = _timeout_response(b"request headers not received in time")
BODY_TIMEOUT_RESPONSE = _timeout_response(b"request body not received in time")


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline on each request's headers (see the module)."""

    header_timeout: float = 10.0
    body_grace: float = 10.0
    body_min_rate: float = 4096.0  # bytes per second

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_deadline: asyncio.TimerHandle | None = None
        self._awaiting_headers = False  # a request (or the connection's first) whose headers are not all in
        self._body_deadline: asyncio.TimerHandle | None = None
        self._awaiting_body = False  # a request whose headers are in and whose body is not all in
        self._body_started = 0.0
        self._body_received = 0

    # A stream transport, as uvicorn's own connection_made takes (it narrows asyncio's BaseTransport too).
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._awaiting_headers = True
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._disarm_body()
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
        # the body's clock starts; a request without one completes at once and stops it
        self._awaiting_body = True
        self._body_started = self.loop.time()
        self._body_received = 0
        self._arm_body(self.body_grace)
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self._body_received += len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._awaiting_body = False
        self._disarm_body()
        super().on_message_complete()

    def _arm_body(self, seconds: float) -> None:
        self._disarm_body()
        self._body_deadline = self.loop.call_later(seconds, self._body_check)

    def _disarm_body(self) -> None:
        if self._body_deadline is not None:
            self._body_deadline.cancel()
            self._body_deadline = None

    def _body_check(self) -> None:
        """At the body's deadline: move it on by what arrived since, or end the connection."""
        self._body_deadline = None
        if self.transport.is_closing() or not self._awaiting_body:
            return
        deadline = self._body_started + self.body_grace + self._body_received / self.body_min_rate
        remaining = deadline - self.loop.time()
        if remaining > 0:
            self._arm_body(remaining)
            return
        log.warning(
            "request body not complete in time; connection closed",
            extra={
                "client": f"{self.client[0]}:{self.client[1]}" if self.client else "?",
                "received_bytes": self._body_received,
                "seconds": round(self.loop.time() - self._body_started, 1),
            },
        )
        cycle = self.cycle
        if cycle is None or not cycle.response_started:
            self.transport.write(BODY_TIMEOUT_RESPONSE)
        self.transport.close()

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


def header_timeout_protocol(
    seconds: float, body_grace_seconds: float = 10.0, body_min_bytes_per_second: float = 4096.0
) -> type[HeaderTimeoutProtocol]:
    """The protocol class to hand uvicorn (``http=``), with its header deadline set to ``seconds``
    and its body deadline to ``body_grace_seconds`` plus a second per ``body_min_bytes_per_second``
    bytes received."""

    class Configured(HeaderTimeoutProtocol):
        header_timeout = float(seconds)
        body_grace = float(body_grace_seconds)
        body_min_rate = float(body_min_bytes_per_second)

    return Configured


def serve(
    app: Any,
    host: str,
    port: int,
    header_timeout_seconds: float,
    body_grace_seconds: float = 10.0,
    body_min_bytes_per_second: float = 4096.0,
) -> None:
    """Run an HTTP service's app under uvicorn as both services run: our logging, 10 s to finish
    requests on shutdown, and the request-header and body deadlines above."""
    import uvicorn

    uvicorn.run(
        app,
        host=host,
        port=port,
        log_config=None,
        timeout_graceful_shutdown=10,
        http=header_timeout_protocol(header_timeout_seconds, body_grace_seconds, body_min_bytes_per_second),
    )
