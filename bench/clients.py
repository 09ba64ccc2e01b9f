"""HTTP clients for the services and pacing for open-loop load."""

from __future__ import annotations

import asyncio
import time

import httpx


def client(url: str, token: str, connections: int) -> httpx.AsyncClient:
    """An async client for one service with a bearer token and ``connections`` kept open."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {token}"}, limits=limits, timeout=30.0
    )


async def sleep_until(moment: float) -> None:
    """Sleep until time.perf_counter() reaches ``moment`` (at once if it already has)."""
    delay = moment - time.perf_counter()
    if delay > 0:
        await asyncio.sleep(delay)
