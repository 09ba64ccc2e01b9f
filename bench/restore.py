"""The restore phase: how long a worker takes to own partitions whose state the aggregation built.

Run after the aggregation phase, on its topics (its consumer group has nothing left to read):

    whole      a new worker restores all partitions from the whole changelog (snapshots off):
               the cost of history without snapshots, the limit the next one is compared with
    snapshot   a new worker restores them from the snapshots the aggregation's worker saved and
               the changelog after them
    join       a second worker joins the first: the partitions it takes, assignment to restored
    kill       that second worker SIGKILLed: the first takes its partitions back once the group
               notices (the session timeout), assignment to restored

Each worker's own figures (baocao_aggregate_partition_restore_seconds, restored_records) say
what it did; the process's start (imports, joining the group) is reported beside them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx

from bench.promtext import Scrape, scrape
from deploy.processes import ServiceProcess, answers_ready

log = logging.getLogger(__name__)

RESTORE_SECONDS = "baocao_aggregate_partition_restore_seconds"
RESTORED_RECORDS = "baocao_aggregate_restored_records_total"
OWNED = "baocao_aggregate_partitions_owned"


async def _scrape(url: str) -> Scrape:
    async with httpx.AsyncClient() as http:
        return await scrape(http, url)


def restore_figures(page: Scrape) -> dict[str, Any]:
    """What one worker's scrape says of its restores."""
    seconds = list(page.by_label(RESTORE_SECONDS, "partition").values())
    return {
        "partitions": len(seconds),
        "slowest_partition_s": round(max(seconds), 3) if seconds else None,
        "records_replayed": page.by_label(RESTORED_RECORDS, "start"),
    }


def wait_owning(proc: ServiceProcess, partitions: int, timeout_s: float) -> Scrape:
    """Scrape until the worker owns (restored) ``partitions`` partitions and says it is ready."""
    deadline = time.perf_counter() + timeout_s
    while True:
        try:
            page = asyncio.run(_scrape(proc.url))
        except httpx.HTTPError:  # not listening yet
            page = None
        if page is not None and page.total(OWNED) >= partitions and answers_ready(proc.url):
            return page
        if time.perf_counter() > deadline or not proc.alive():
            raise TimeoutError(f"{proc.name} did not own {partitions} partitions in time")
        time.sleep(0.1)


def start_and_restore(
    start: Any, name: str, env: dict[str, str], partitions: int, timeout_s: float
) -> tuple[ServiceProcess, dict[str, Any]]:
    """Start a worker (``start(name, env)``), wait until it owns every partition; its figures."""
    started = time.perf_counter()
    proc: ServiceProcess = start(name, env)
    page = wait_owning(proc, partitions, timeout_s)
    figures = {"ready_after_start_s": round(time.perf_counter() - started, 3), **restore_figures(page)}
    log.info("%s: %s", name, figures)
    return proc, figures


def join_and_kill(start: Any, stop: Any, partitions: int, timeout_s: float) -> dict[str, Any]:
    """One worker owning everything, a second joining, then the second SIGKILLed."""
    first, alone = start_and_restore(start, "restore-first", {}, partitions, timeout_s)
    joined_at = time.perf_counter()
    second: ServiceProcess = start("restore-second", {})
    second.wait_ready(timeout_s)  # listening, a member of the group, its share restored
    # both restored what the rebalance gave them
    deadline = time.perf_counter() + timeout_s
    while True:
        pages = [asyncio.run(_scrape(p.url)) for p in (first, second)]
        if sum(p.total(OWNED) for p in pages) >= partitions and answers_ready(first.url) and answers_ready(second.url):
            break
        if time.perf_counter() > deadline:
            raise TimeoutError("the two workers did not share the partitions in time")
        time.sleep(0.1)
    join = {
        "both_ready_after_join_s": round(time.perf_counter() - joined_at, 3),
        "first": restore_figures(pages[0]),
        "second": restore_figures(pages[1]),
    }
    log.info("join: %s", join)
    killed_at = time.perf_counter()
    second.kill()
    page = wait_owning(first, partitions, timeout_s)
    kill = {"all_owned_after_kill_s": round(time.perf_counter() - killed_at, 3), "first": restore_figures(page)}
    log.info("kill: %s", kill)
    stop(first)
    return {"alone": alone, "join": join, "kill": kill}
