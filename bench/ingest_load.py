"""Ingest throughput: reports per second acknowledged, one report per POST or 1,000 per batch.

A fixed number of client tasks share one queue of work and keep one request each in flight
(a closed loop) for a fixed time or until the work runs out: the rate is what the service
sustains, not a rate we chose.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import httpx

from bench.clients import ClientPool, LeanPool, Token
from bench.stats import latency_summary
from bench.workload import Report

log = logging.getLogger(__name__)


@dataclass
class LoadResult:
    accepted: int = 0
    requests: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    latencies_s: list[float] = field(default_factory=list)
    seconds: float = 0.0
    client_cpu_s: float = 0.0  # CPU this process spent, i.e. the load generator's share
    complete: bool = True

    @property
    def rate(self) -> float:
        return self.accepted / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "requests": self.requests,
            "statuses": dict(self.statuses),
            "seconds": round(self.seconds, 3),
            "client_cpu_s": round(self.client_cpu_s, 3),
            "rate": round(self.rate, 1),
            "complete": self.complete,
            "request_latency": latency_summary(self.latencies_s),
        }


async def _run_workers(work: deque[Any], concurrency: int, timeout_s: float, one: Any) -> LoadResult:
    """Run ``concurrency`` tasks that pop items from ``work`` and await ``one(item, result)``
    until the queue is empty or ``timeout_s`` has passed (requests then in flight finish and
    count)."""
    result = LoadResult()
    cpu = time.process_time()
    started = time.perf_counter()
    deadline = started + timeout_s

    async def worker() -> None:
        while work and time.perf_counter() < deadline:
            item = work.popleft()
            sent = time.perf_counter()
            await one(item, result)
            result.latencies_s.append(time.perf_counter() - sent)
            result.requests += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - started
    result.client_cpu_s = time.process_time() - cpu
    result.complete = not work
    failed = {status: n for status, n in result.statuses.items() if status not in ("200", "202")}
    if failed:
        log.warning("ingest answered %d of %d requests with %s", sum(failed.values()), result.requests, failed)
    return result


async def single_reports(
    url: str, token: Token, reports: Sequence[Report], concurrency: int, timeout_s: float
) -> LoadResult:
    """POST /v1/reports once per report; acknowledged = 202 accepted.

    The client is aiohttp (LeanPool) with bodies encoded beforehand: with httpx the load
    generator capped the measured rate near 400/s whatever the service could do. Each client
    task has its own connection and token, as separate units submitting at once would."""
    bodies = deque(json.dumps(r, ensure_ascii=False).encode() for r in reports)
    async with LeanPool(url, token, concurrency) as pool:

        async def one(body: bytes, result: LoadResult) -> None:
            try:
                status = await pool.request("POST", "/v1/reports", body)
            except (aiohttp.ClientError, TimeoutError) as exc:
                result.statuses[type(exc).__name__] += 1
                return
            result.statuses[str(status)] += 1
            if status == 202:
                result.accepted += 1

        return await _run_workers(bodies, concurrency, timeout_s, one)


async def batches(
    url: str, token: Token, reports: Sequence[Report], size: int, concurrency: int, timeout_s: float
) -> LoadResult:
    """POST /v1/reports/batch with ``size`` reports each; acknowledged = items accepted."""
    chunks = deque(list(reports[i : i + size]) for i in range(0, len(reports), size))
    async with ClientPool(url, token, concurrency) as http:

        async def one(chunk: list[Report], result: LoadResult) -> None:
            try:
                response = await http.request("POST", "/v1/reports/batch", json=chunk, timeout=120.0)
            except httpx.HTTPError as exc:
                result.statuses[type(exc).__name__] += 1
                return
            result.statuses[str(response.status_code)] += 1
            if response.status_code in (200, 503):  # 503: some items were not acknowledged
                result.accepted += int(response.json().get("accepted", 0))

        return await _run_workers(chunks, concurrency, timeout_s, one)
