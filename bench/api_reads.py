"""Read API latency at a target request rate (open loop: requests start on a fixed schedule,
whatever the answers do; at most MAX_IN_FLIGHT wait at once, beyond that the schedule slips and
the achieved rate shows it). Latency runs from sending a request to having its whole answer."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import httpx

from bench.clients import client, sleep_until
from bench.stats import latency_summary
from bench.workload import READ_PERIODS, Workload

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 64
WARM_UP = 20


def totals_paths(workload: Workload, n: int, seed: int) -> list[str]:
    """Totals of provinces, districts and communes (1 : 2 : 3), periods of the backlog."""
    rng = random.Random(seed)
    pools = [workload.provinces, workload.districts, workload.communes]
    codes = [rng.choice(rng.choices(pools, [1, 2, 3])[0]) for _ in range(n)]
    return [f"/v1/units/{code}/totals?period={rng.choice(READ_PERIODS)}" for code in codes]


def children_paths(workload: Workload, n: int, seed: int) -> list[str]:
    """Drill-down rows of provinces (a row per district) and districts (a row per commune)."""
    rng = random.Random(seed)
    pools = [workload.provinces, workload.districts]
    return [
        f"/v1/units/{rng.choice(rng.choice(pools))}/children/totals?period={rng.choice(READ_PERIODS)}"
        for _ in range(n)
    ]


async def read_at_rate(url: str, token: str, paths: Sequence[str], rate: float) -> dict[str, Any]:
    """GET every path, the k-th at start + k / rate; return latency percentiles and the rate of
    successful answers."""
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    gate = asyncio.Semaphore(MAX_IN_FLIGHT)
    async with client(url, token, MAX_IN_FLIGHT) as http:
        for path in paths[:WARM_UP]:  # open the connections before the clock starts
            await http.get(path)

        async def one(path: str) -> None:
            try:
                sent = time.perf_counter()
                response = await http.get(path)
                if response.status_code == 200:
                    latencies.append(time.perf_counter() - sent)
                statuses[str(response.status_code)] += 1
            except httpx.HTTPError as exc:
                statuses[type(exc).__name__] += 1
            finally:
                gate.release()

        started = time.perf_counter()
        tasks = []
        for k, path in enumerate(paths):
            await sleep_until(started + k / rate)
            await gate.acquire()
            tasks.append(asyncio.create_task(one(path)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - started
    ok = statuses.get("200", 0)
    if ok < len(paths):
        log.warning(
            "read API: %d of %d requests failed: %s", len(paths) - ok, len(paths), dict(statuses)
        )
    return {
        "target_rate": rate,
        "requests": len(paths),
        "statuses": dict(statuses),
        "seconds": elapsed,
        "rate": ok / elapsed if elapsed > 0 else 0.0,
        **latency_summary(latencies),
    }
