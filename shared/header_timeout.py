"""A request-header deadline for uvicorn, against slowloris clients.

uvicorn 0.54 has none: ``timeout_keep_alive`` only closes connections idle between requests, so
a client that sends a request's headers a byte at a time holds its connection (and a file
descriptor, and a place under any connection limit) for as long as it likes. This is uvicorn's own
h11 protocol with one addition: from a connection's first moment, and from the first byte of each
following request on a kept-alive connection, the request line and headers must be complete
within ``seconds``, or the connection gets ``408 Request Timeout`` and is closed. Bodies are not
under this deadline (a large upload on a slow line is legitimate; the body size limit in
shared/http.py bounds it).

Both HTTP services run with it (``uvicorn.run(..., http=header_timeout_protocol(seconds))``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

_TIMEOUT_BODY = b'{"detail":"request headers not received in time"}'
TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
    b"content-length: " + str(len(_TIMEOUT_BODY)).encode() + b"\r\n\r\n" + _TIMEOUT_BODY
)


class HeaderTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on each request's headers (see the module)."""

    header_timeout: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE:
            # a request begun and not yet whole: the first byte of a kept-alive connection's next
            # request starts its clock; one already running keeps it
            if self._header_deadline is None and not self.transport.is_closing():
                self._arm()
        else:
            self._disarm()  # the headers are in (a body, or the response, follows)

    def _arm(self) -> None:
        self._disarm()
        self._header_deadline = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
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
