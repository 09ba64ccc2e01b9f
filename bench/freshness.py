"""Freshness: from ingest's acknowledgement of a report to the change being visible in its
province's total through the read API, at a steady rate of reports.

Reports go to ingest in small batches on a fixed schedule (open loop: the schedule does not wait
for answers). Every n-th report is a *probe*. Probes are grouped, up to GROUP_SIZE to a group,
and each group owns a (province, month) that no other report touches; each probe of a group sets
study_session.delegates to its own power of two. One GET of the province's total for that month
therefore tells exactly which of the group's probes are visible: the bits of the sum. A probe's
freshness is the time of the first answer that shows it minus the time its batch was
acknowledged, so it is measured to within one polling interval plus one API call.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.clients import ClientPool, Token, sleep_until
from bench.stats import latency_summary
from bench.workload import Report, Workload

log = logging.getLogger(__name__)

GROUP_SIZE = 20  # bits 0..19: the sum stays below study_session.delegates' maximum (10**7)
TICK_S = 0.05  # one batch POST per tick at most
POLL_S = 0.02
POLL_TIMEOUT_S = 5.0  # a slow answer must not hold up the polls of the other groups for long
MAX_IN_FLIGHT = 32  # batch POSTs awaiting an answer
POLLERS = 16  # GETs of group totals in flight at most
METRIC = "study_session.delegates"


@dataclass
class Probe:
    group: int
    bit: int
    acked_at: float | None = None
    visible_at: float | None = None


class ProbeBoard:
    """Hands out probes, records acknowledgements, and reads visibility off group totals."""

    def __init__(self, workload: Workload) -> None:
        self.workload = workload
        self.probes: list[Probe] = []

    def new_probe(self) -> tuple[Probe, Report]:
        group, bit = divmod(len(self.probes), GROUP_SIZE)
        probe = Probe(group, bit)
        self.probes.append(probe)
        return probe, self.workload.probe(group, bit)

    def waiting(self) -> dict[int, list[Probe]]:
        """Acknowledged probes not yet seen, by group."""
        out: dict[int, list[Probe]] = {}
        for p in self.probes:
            if p.acked_at is not None and p.visible_at is None:
                out.setdefault(p.group, []).append(p)
        return out

    def observe(self, group: int, value: int, at: float) -> None:
        for p in self.probes[group * GROUP_SIZE : (group + 1) * GROUP_SIZE]:
            if p.acked_at is not None and p.visible_at is None and value >> p.bit & 1:
                p.visible_at = at

    def freshness(self, gave_up_at: float) -> tuple[list[float], int]:
        """Freshness of every acknowledged probe, and how many were never seen. An unseen probe
        counts as ``gave_up_at - acked_at``: a lower bound, which keeps the percentiles honest
        (never better than the truth) when the pipeline falls behind."""
        values, unseen = [], 0
        for p in self.probes:
            if p.acked_at is None:
                continue
            if p.visible_at is None:
                unseen += 1
                values.append(max(0.0, gave_up_at - p.acked_at))
            else:
                values.append(max(0.0, p.visible_at - p.acked_at))
        return values, unseen


@dataclass
class Sending:
    accepted: int = 0
    posted: int = 0
    failed_posts: Counter[str] = field(default_factory=Counter)  # by status code or exception
    started: float = 0.0
    last_ack: float = 0.0
    ack_latencies_s: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        elapsed = self.last_ack - self.started
        return self.accepted / elapsed if elapsed > 0 else 0.0


async def send_at_rate(ingest: ClientPool, board: ProbeBoard, rate: float, seconds: float, probe_every: int) -> Sending:
    """Send ``rate * seconds`` reports in batches on a fixed schedule, for ``seconds`` at most
    (when ingest cannot keep up, fewer are sent); record when each probe was acknowledged."""
    per_post = max(1, round(rate * TICK_S))
    interval = per_post / rate
    posts = math.ceil(rate * seconds / per_post)
    sending = Sending(started=time.perf_counter())
    serial = 0

    async def post(borrowed: httpx.AsyncClient, batch: list[Report], probes: dict[int, Probe]) -> None:
        try:
            sent = time.perf_counter()
            response = await borrowed.post("/v1/reports/batch", json=batch)
            acked = time.perf_counter()
            if response.status_code not in (200, 503):
                sending.failed_posts[str(response.status_code)] += 1
                return
            results = response.json()["results"]
            sending.accepted += sum(r["status"] == "accepted" for r in results)
            sending.ack_latencies_s.append(acked - sent)
            sending.last_ack = max(sending.last_ack, acked)
            for index, probe in probes.items():
                if results[index]["status"] == "accepted":
                    probe.acked_at = acked
        except httpx.HTTPError as exc:
            sending.failed_posts[type(exc).__name__] += 1
        finally:
            ingest.give_back(borrowed)

    tasks = []
    for k in range(posts):
        await sleep_until(sending.started + k * interval)
        borrowed = await ingest.borrow()  # waits while MAX_IN_FLIGHT posts are unanswered
        if time.perf_counter() - sending.started > seconds:
            ingest.give_back(borrowed)  # ingest fell behind the schedule: the time is up anyway
            break
        batch: list[Report] = []
        probes: dict[int, Probe] = {}
        for _ in range(per_post):
            serial += 1
            if serial % probe_every == 0:
                probe, report = board.new_probe()
                probes[len(batch)] = probe
            else:
                report = board.workload.study_sessions(1, tag="fr")[0]
            batch.append(report)
        sending.posted += len(batch)
        tasks.append(asyncio.create_task(post(borrowed, batch, probes)))
    await asyncio.gather(*tasks)
    return sending


async def poll_visibility(api: ClientPool, board: ProbeBoard, sending_done: asyncio.Event, deadline: float) -> int:
    """Poll the totals of every group with waiting probes until none wait after the sender has
    finished, or the deadline. Returns the number of GETs made."""
    gets = 0

    async def check(group: int) -> None:
        nonlocal gets
        province, month = board.workload.probe_target(group)
        path = f"/v1/units/{province}/totals"
        response = await api.request("GET", path, params={"period": month}, timeout=POLL_TIMEOUT_S)
        gets += 1
        seen = time.perf_counter()
        if response.status_code == 200:
            board.observe(group, int(response.json()["metrics"].get(METRIC) or 0), seen)

    while time.perf_counter() < deadline:
        waiting = board.waiting()
        if not waiting and sending_done.is_set():
            break
        try:
            await asyncio.gather(*(check(g) for g in waiting))
        except httpx.HTTPError as exc:
            log.warning("freshness poll failed: %r", exc)
        await asyncio.sleep(POLL_S)
    return gets


async def measure(
    ingest_url: str,
    api_url: str,
    token: Token,
    workload: Workload,
    rate: float,
    seconds: float,
    probe_every: int,
    drain_s: float,
) -> dict[str, Any]:
    """Run the sender and the poller together; return the figures and the detail."""
    board = ProbeBoard(workload)
    done = asyncio.Event()
    async with (
        ClientPool(ingest_url, token, MAX_IN_FLIGHT) as ingest,
        ClientPool(api_url, token, POLLERS) as api,
    ):
        deadline = time.perf_counter() + seconds + drain_s
        poller = asyncio.create_task(poll_visibility(api, board, done, deadline))
        try:
            sending = await send_at_rate(ingest, board, rate, seconds, probe_every)
        finally:
            done.set()
        gets = await poller
    freshness, unseen = board.freshness(gave_up_at=time.perf_counter())
    if unseen:
        log.warning(
            "%d acknowledged probes were not visible through the API after %.0f s more; their "
            "freshness counts as a lower bound",
            unseen,
            drain_s,
        )
    return {
        "target_rate": rate,
        "seconds": seconds,
        "sent": sending.posted,
        "accepted": sending.accepted,
        "failed_posts": dict(sending.failed_posts),
        "load_started": sending.started,  # time.perf_counter() of the first post
        "send_rate": sending.rate,
        "batch_ack_latency": latency_summary(sending.ack_latencies_s),
        "probes": len(board.probes),
        "probes_acknowledged": sum(1 for p in board.probes if p.acked_at is not None),
        "probes_unseen": unseen,
        "lower_bound": bool(unseen),
        "api_polls": gets,
        "poll_interval_ms": POLL_S * 1000,
        "freshness": latency_summary(freshness),
    }
