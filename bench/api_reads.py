"""Read API latency at a target request rate.

Open loop: the k-th request is due at start + k / rate, whatever the answers do. At most
MAX_IN_FLIGHT wait at once; beyond that the schedule slips, and the achieved rate shows it.
Latency runs from sending a request to having its whole answer, so it includes the client's own
work; the bucket bounds of the API's own histogram baocao_api_request_duration_seconds (server
side) are kept in the details next to it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import aiohttp
import httpx

from bench.clients import LeanPool, sleep_until
from bench.promtext import bucket_change, scrape
from bench.stats import histogram_bound, latency_summary
from bench.workload import READ_PERIODS, Workload

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 64
WARM_UP = 64
SERVER_HISTOGRAM = "baocao_api_request_duration_seconds"
ROUTES = {"totals": "/v1/units/{code}/totals", "children": "/v1/units/{code}/children/totals"}


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
    codes = [rng.choice(rng.choice(pools)) for _ in range(n)]
    return [f"/v1/units/{code}/children/totals?period={rng.choice(READ_PERIODS)}" for code in codes]


async def read_at_rate(
    url: str, token: str, paths: Sequence[str], rate: float, seconds: float, route: str
) -> dict[str, Any]:
    """GET the paths on schedule for ``seconds`` at most (when the API or the client cannot keep
    up, fewer are sent); latency percentiles, the achieved rate of 200 answers, and the
    server-side percentiles of ``route`` over the same requests."""
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    async with LeanPool(url, token, MAX_IN_FLIGHT) as pool, httpx.AsyncClient() as plain:
        await asyncio.gather(*(pool.request("GET", p) for p in paths[:WARM_UP]))
        before = await scrape(plain, url)

        async def one(borrowed: aiohttp.ClientSession, path: str) -> None:
            try:
                sent = time.perf_counter()
                status = await pool.send(borrowed, "GET", path)
                if status == 200:
                    latencies.append(time.perf_counter() - sent)
                statuses[str(status)] += 1
            except (aiohttp.ClientError, TimeoutError) as exc:
                statuses[type(exc).__name__] += 1
            finally:
                pool.give_back(borrowed)

        cpu = time.process_time()
        started = time.perf_counter()
        tasks = []
        for k, path in enumerate(paths):
            await sleep_until(started + k / rate)
            borrowed = await pool.borrow()
            if time.perf_counter() - started > seconds:
                pool.give_back(borrowed)  # the schedule slipped past its end
                break
            tasks.append(asyncio.create_task(one(borrowed, path)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu
        after = await scrape(plain, url)
    ok, sent = statuses.get("200", 0), len(tasks)
    if ok < sent:
        log.warning("read API: %d of %d failed: %s", sent - ok, sent, dict(statuses))
    server = bucket_change(before, after, SERVER_HISTOGRAM, route=route)
    return {
        # what the API's memory served: documents from the stream, answers already built
        **{
            f"{name}_{result}": after.by_label(f"{metric}_total", "result").get(result, 0.0)
            - before.by_label(f"{metric}_total", "result").get(result, 0.0)
            for name, metric, results in (
                ("cache", "baocao_api_cache_lookups", ("hit", "miss", "absent")),
                ("answers", "baocao_api_answers_lookups", ("hit", "miss")),
            )
            for result in results
        },
        "target_rate": rate,
        "scheduled": len(paths),
        "requests": sent,
        "statuses": dict(statuses),
        "seconds": elapsed,
        "client_cpu_s": cpu,
        "rate": ok / elapsed if elapsed > 0 else 0.0,
        **latency_summary(latencies),
        # upper bounds of the API histogram's buckets (1, 2.5, 5, 10, 20, 50, 100 ... ms)
        "server_p50_ms_at_most": _ms(histogram_bound(0.5, server)),
        "server_p99_ms_at_most": _ms(histogram_bound(0.99, server)),
    }


def _ms(bound: tuple[float, bool] | None) -> float | None:
    return None if bound is None or bound[1] else bound[0] * 1000


async def neighbour_under_search(
    url: str,
    neighbour_token: str,
    neighbour_path: str,
    searcher_token: str,
    search_path: str,
    clients: int = 4,
    seconds: float = 5.0,
    interval: float = 0.02,
) -> dict[str, Any]:
    """One token's reads of its own totals (``neighbour_path``, one every ``interval``) alone, then
    while ``clients`` connections of another token ask ``search_path`` as fast as the API answers
    (a hostile client ignores Retry-After): the neighbour's latency both times, their ratio, and
    what the searches got (200, or 429 once the searcher's budget of expensive reads is spent)."""

    async def neighbour(http: httpx.AsyncClient, until: float) -> list[float]:
        out: list[float] = []
        while time.perf_counter() < until:
            sent = time.perf_counter()
            r = await http.get(neighbour_path)
            if r.status_code == 200:
                out.append(time.perf_counter() - sent)
            await asyncio.sleep(max(0.0, interval - (time.perf_counter() - sent)))
        return out

    statuses: Counter[str] = Counter()

    async def searcher(until: float) -> None:
        headers = {"Authorization": f"Bearer {searcher_token}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as http:
            while time.perf_counter() < until:
                statuses[str((await http.get(search_path)).status_code)] += 1

    headers = {"Authorization": f"Bearer {neighbour_token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as http:
        await http.get(neighbour_path)
        quiet = await neighbour(http, time.perf_counter() + seconds)
        until = time.perf_counter() + seconds
        searchers = [asyncio.create_task(searcher(until)) for _ in range(clients)]
        loaded = await neighbour(http, until)
        await asyncio.gather(*searchers)
    alone, busy = latency_summary(quiet), latency_summary(loaded)

    def ratio(key: str) -> float | None:
        a, b = alone.get(key), busy.get(key)
        return b / a if a and b else None

    return {
        "clients": clients,
        "seconds": seconds,
        "neighbour_alone": alone,
        "neighbour_while_searching": busy,
        "p50_ratio": ratio("p50_ms"),
        "p99_ratio": ratio("p99_ms"),
        "search_statuses": dict(statuses),
        "searches_per_s": sum(statuses.values()) / seconds,
    }
