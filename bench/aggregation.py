"""Aggregation throughput: one aggregator worker (or several in one consumer group) drains a
pre-produced backlog.

The workers' own counter baocao_aggregate_reports_total (summed over outcomes and workers) says
how many messages they have applied; it is sampled from /metrics while the backlog drains.
Messages counted twice are left out: forwarded to their province's partition (counted again
there), and duplicates and stale revisions (a message applied by one worker before a rebalance
and read again by the partition's next owner; the backlog itself has neither). The rate is the
backlog divided by the time from the last sample showing nothing applied to the first showing
everything applied, so the worker's start-up (imports, tree, rebalance) is left out. A backlog
not drained within the time limit gives the rate over what was applied. Kafka's committed
offsets (consumer-group lag) are checked afterwards.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.promtext import Scrape, scrape, scrape_all

log = logging.getLogger(__name__)

APPLIED = "baocao_aggregate_reports_total"
AGAIN = ("forwarded", "duplicate", "stale")  # outcomes of a message counted again elsewhere
FRESHNESS = "baocao_aggregate_freshness_seconds"
FLUSH_DOCUMENTS = "baocao_aggregate_flush_documents"
FLUSH_SECONDS = "baocao_aggregate_flush_duration_seconds"


def flush_summary(before: Scrape | None, after: Scrape, reports: float) -> dict[str, float | None]:
    """What the worker's flushes did between two scrapes (``before`` None: since it started):
    how many, documents written per flush and per report, seconds per flush."""

    def change(name: str) -> float:
        return after.total(name) - (before.total(name) if before is not None else 0.0)

    flushes, documents = change(f"{FLUSH_DOCUMENTS}_count"), change(f"{FLUSH_DOCUMENTS}_sum")
    seconds = change(f"{FLUSH_SECONDS}_sum")
    return {
        "flushes": flushes,
        "documents": documents,
        "documents_per_flush": documents / flushes if flushes else None,
        "documents_per_report": documents / reports if reports else None,
        "seconds_per_flush": seconds / flushes if flushes else None,
    }


class AggregatorDied(RuntimeError):
    pass


@dataclass
class Drain:
    """Samples (seconds since the worker was started, messages applied) and what they imply."""

    expected: int
    samples: list[tuple[float, float]] = field(default_factory=list)
    outcomes: dict[str, float] = field(default_factory=dict)

    @property
    def applied(self) -> float:
        return self.samples[-1][1] if self.samples else 0.0

    @property
    def done(self) -> bool:
        return self.applied >= self.expected

    def _first_at_least(self, count: float) -> float | None:
        return next((t for t, c in self.samples if c >= count), None)

    @property
    def window(self) -> tuple[float, float] | None:
        """(last sample at zero, first sample at the whole backlog), in seconds since start; when
        the backlog was not drained in time, the window ends at the last sample instead."""
        if not self.samples:
            return None
        end = self._first_at_least(self.expected)
        if end is None:
            end = self.samples[-1][0]
        start = max((t for t, c in self.samples if c <= 0 and t < end), default=0.0)
        return start, end

    @property
    def rate(self) -> float | None:
        """Messages applied per second over the window (a partial drain gives a partial rate)."""
        window = self.window
        applied = min(self.applied, self.expected)
        if window is None or window[1] <= window[0] or applied <= 0:
            return None
        return applied / (window[1] - window[0])

    def half_rates(self) -> tuple[float | None, float | None]:
        """Rates over the first and the second half of the backlog: a drop shows a slowdown as
        the state and the totals grow."""
        window, middle = self.window, self._first_at_least(self.expected / 2)
        if window is None or middle is None or not self.done:
            return None, None
        first = (self.expected / 2) / (middle - window[0]) if middle > window[0] else None
        second = (self.expected / 2) / (window[1] - middle) if window[1] > middle else None
        return first, second

    def as_dict(self) -> dict[str, Any]:
        first, second = self.half_rates()
        window = self.window
        return {
            "expected": self.expected,
            "applied": self.applied,
            "drained": self.done,
            "window_s": [round(w, 3) for w in window] if window else None,
            "rate": self.rate,
            "rate_first_half": first,
            "rate_second_half": second,
            "outcomes": self.outcomes,
            "samples": [(round(t, 2), c) for t, c in self.samples[:: max(1, len(self.samples) // 200)]],
        }


async def watch_drain(
    urls: list[str], alive: Callable[[], bool], expected: int, started: float, timeout_s: float, interval_s: float
) -> Drain:
    """Sample the workers' applied counters until their sum reaches ``expected`` or time runs out.

    ``alive()`` tells whether every worker process still runs; ``started`` is their start time
    (time.perf_counter())."""
    drain = Drain(expected)
    deadline = started + timeout_s
    last_log = 0.0
    async with httpx.AsyncClient() as http:
        while time.perf_counter() < deadline and not drain.done:
            if not alive():
                raise AggregatorDied("the aggregator exited while draining the backlog")
            try:
                page = await scrape_all(http, urls)
            except httpx.HTTPError:  # not listening yet
                await asyncio.sleep(interval_s)
                continue
            now = time.perf_counter() - started
            drain.outcomes = page.by_label(APPLIED, "outcome")
            twice = sum(drain.outcomes.get(outcome, 0.0) for outcome in AGAIN)
            drain.samples.append((now, page.total(APPLIED) - twice))
            if now - last_log >= 10:
                log.info("aggregator: %d of %d applied after %.0f s", drain.applied, expected, now)
                last_log = now
            await asyncio.sleep(interval_s)
    if not drain.done:
        log.warning("the backlog was not drained in %.0f s (%d of %d)", timeout_s, drain.applied, expected)
    return drain


UNPUBLISHED = "baocao_aggregate_unpublished_documents"
UNWRITTEN = "baocao_aggregate_view_unwritten_documents"


async def wait_view_written(urls: list[str], timeout_s: float) -> float | None:
    """Seconds until the workers have published everything the reports changed and written it
    all to MongoDB (their gauges of unpublished and of unwritten documents at 0 twice in a row),
    or None if that did not happen within the limit."""
    started = time.perf_counter()
    zeros = 0
    async with httpx.AsyncClient() as http:
        while time.perf_counter() - started < timeout_s:
            page = await scrape_all(http, urls)
            zeros = zeros + 1 if page.total(UNPUBLISHED) == 0 and page.total(UNWRITTEN) == 0 else 0
            if zeros >= 2:
                return time.perf_counter() - started
            await asyncio.sleep(0.1)
    return None


async def metrics_now(urls: list[str]) -> Scrape:
    """The metrics of the workers at ``urls``, summed."""
    async with httpx.AsyncClient() as http:
        return await scrape_all(http, urls)


# ---------------------------------------------------------------- consumer lag


def consumer_lag(bootstrap: str, group: str, topic: str, options: dict[str, str] | None = None) -> int:
    """End offsets minus the group's committed offsets, summed over the topic's partitions
    (``options``: a Kafka login allowed to see them, the admin's)."""
    from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="baocao-bench", **(options or {}))
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, client_id="baocao-bench", **(options or {}))
    try:
        committed = admin.list_group_offsets(group).get(group, {})
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        ends = consumer.end_offsets(parts)
        return int(sum(ends[tp] - (committed[tp].offset if tp in committed else 0) for tp in parts))
    finally:
        consumer.close()
        admin.close()


def wait_lag_zero(
    bootstrap: str, group: str, topic: str, timeout_s: float, options: dict[str, str] | None = None
) -> tuple[int, float]:
    """Poll the lag until it is 0 or ``timeout_s`` passes; return (last lag, seconds waited)."""
    started = time.perf_counter()
    lag = consumer_lag(bootstrap, group, topic, options)
    while lag > 0 and time.perf_counter() - started < timeout_s:
        time.sleep(0.5)
        lag = consumer_lag(bootstrap, group, topic, options)
    return lag, time.perf_counter() - started


async def wait_applied(url: str, expected: float, timeout_s: float) -> Scrape:
    """Scrape the worker until its applied counter reaches ``expected`` or ``timeout_s`` passes;
    return the last scrape."""
    deadline = time.perf_counter() + timeout_s
    async with httpx.AsyncClient() as http:
        page = await scrape(http, url)
        while page.total(APPLIED) < expected and time.perf_counter() < deadline:
            await asyncio.sleep(0.1)
            page = await scrape(http, url)
    if page.total(APPLIED) < expected:
        log.warning("aggregator applied %d of %d in time", page.total(APPLIED), expected)
    return page
