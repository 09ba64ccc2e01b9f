"""HTTP clients for the services, and pacing for open-loop load.

httpx's shared connection pool costs far more client CPU per request when many requests are in
flight than separate one-connection clients do (measured on the 2-core development VM: about
6.6 ms against 2.5 ms per request at 64 in flight). On a machine where the client shares two
cores with the services, that CPU comes straight off the figures, so the load generators lend
out one-connection clients from a ClientPool instead.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import aiohttp
import httpx

Token = str | Callable[[], str]  # one bearer token, or a function that mints one per client


def client(url: str, token: str | None = None, connections: int = 1) -> httpx.AsyncClient:
    """An async client for one service with a bearer token and ``connections`` kept open."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=30.0)


class ClientPool:
    """``size`` one-connection clients; each request borrows one, so at most ``size`` requests
    are in flight and a caller waits for a free client beyond that.

    ``token`` is one bearer token for all, or a function called once per client: many clients
    with a token each, as many units submitting at once are (ingest limits each token's rate).
    """

    def __init__(self, url: str, token: Token, size: int) -> None:
        self.size = size
        self._clients = [client(url, token if isinstance(token, str) else token()) for _ in range(size)]
        self._free: asyncio.Queue[httpx.AsyncClient] = asyncio.Queue()
        for c in self._clients:
            self._free.put_nowait(c)

    async def __aenter__(self) -> ClientPool:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.gather(*(c.aclose() for c in self._clients))

    async def borrow(self) -> httpx.AsyncClient:
        """Wait for a free client; give it back with ``give_back``."""
        return await self._free.get()

    def give_back(self, borrowed: httpx.AsyncClient) -> None:
        self._free.put_nowait(borrowed)

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        borrowed = await self.borrow()
        try:
            return await borrowed.request(method, path, **kwargs)
        finally:
            self.give_back(borrowed)


class LeanPool:
    """``size`` one-connection aiohttp sessions, each with its own token, lent out like
    ClientPool's. For the hot loops of the load generators: httpx cost about 2.5 ms of client
    CPU per request here, aiohttp a fraction of that, and the client shares the two cores with
    the services it measures."""

    def __init__(self, url: str, token: Token, size: int) -> None:
        self.size = size
        self._sessions = [
            aiohttp.ClientSession(
                base_url=url,
                connector=aiohttp.TCPConnector(limit=1),
                headers={"Authorization": f"Bearer {token if isinstance(token, str) else token()}"},
                timeout=aiohttp.ClientTimeout(total=30),
            )
            for _ in range(size)
        ]
        self._free: asyncio.Queue[aiohttp.ClientSession] = asyncio.Queue()
        for session in self._sessions:
            self._free.put_nowait(session)

    async def __aenter__(self) -> LeanPool:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.gather(*(s.close() for s in self._sessions))

    async def borrow(self) -> aiohttp.ClientSession:
        return await self._free.get()

    def give_back(self, borrowed: aiohttp.ClientSession) -> None:
        self._free.put_nowait(borrowed)

    @staticmethod
    async def send(session: aiohttp.ClientSession, method: str, path: str, body: bytes | None = None) -> int:
        """One request on a borrowed session; the status (the body is read and dropped)."""
        headers = {"Content-Type": "application/json"} if body is not None else None
        async with session.request(method, path, data=body, headers=headers) as response:
            await response.read()
            return response.status

    async def request(self, method: str, path: str, body: bytes | None = None) -> int:
        session = await self.borrow()
        try:
            return await self.send(session, method, path, body)
        finally:
            self.give_back(session)


async def sleep_until(moment: float) -> None:
    """Sleep until time.perf_counter() reaches ``moment`` (at once if it already has)."""
    delay = moment - time.perf_counter()
    if delay > 0:
        await asyncio.sleep(delay)
