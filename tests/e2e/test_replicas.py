"""Two replicas of ingest and of the API on one Kafka and one database, as docker-compose.yml's
`--scale` and the chart's Deployments run them: reports go in through both ingests, one of which
is killed mid-load (its senders then go to the other, as the gateway sends them); the totals equal
the oracle of what was acknowledged, counted once; both APIs answer the same."""

from __future__ import annotations

import threading
import time
import zlib
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from deploy.processes import ServiceProcess, http_process
from shared.domain.hierarchy import load_vietnam
from tests.conftest import wait_until

from .oracle import expected_totals
from .system import System, start_system
from .test_chaos import drain_and_compare, make_workload

pytestmark = [pytest.mark.e2e, pytest.mark.chaos]


def replica(system: System, kind: str, extra: dict[str, str] | None = None) -> ServiceProcess:
    """A second process of ``kind`` on the same topics and database, with a log of its own."""
    proc = http_process(kind, system.run_dir, {**system.namespace.env, **(extra or {})})
    proc = replace(proc, name=f"{kind}-2", log_path=system.run_dir / "logs" / f"{kind}-2.log")
    proc.start()
    proc.wait_ready(60)
    return proc


def feed(system: System, urls: list[str], messages: list[dict[str, Any]], acknowledged: list[dict[str, Any]]) -> None:
    """Batches to the first URL; when it stops answering, to the next (a gateway's failover).
    Whatever was not acknowledged is sent again, so a report whose answer was lost with the
    killed replica is sent twice: counted once is the point."""
    current = 0
    with httpx.Client(headers={"Authorization": f"Bearer {system.admin_token}"}, timeout=10) as http:
        for i in range(0, len(messages), 20):
            pending = messages[i : i + 20]
            deadline = time.monotonic() + 120
            while pending and time.monotonic() < deadline:
                try:
                    r = http.post(f"{urls[current]}/v1/reports/batch", json=pending)
                    results = r.json()["results"]
                except (httpx.HTTPError, KeyError, ValueError):
                    current = (current + 1) % len(urls)
                    time.sleep(0.2)
                    continue
                done = {item["index"] for item in results if item["status"] in ("accepted", "duplicate")}
                acknowledged.extend(pending[k] for k in sorted(done))
                pending = [m for k, m in enumerate(pending) if k not in done]
                if pending:
                    time.sleep(0.3)
            assert not pending, f"never acknowledged: {pending[:2]}"
            time.sleep(0.02)


def test_two_replicas_of_each_count_once_and_agree(namespace):
    system = start_system(namespace)
    extra: list[ServiceProcess] = []
    try:
        ingest2 = replica(system, "ingest")
        extra.append(ingest2)
        api2 = replica(system, "api", {"BAOCAO_API_INGEST_URL": system.ingest.url})
        extra.append(api2)

        clock = datetime.now(UTC)
        messages = make_workload(seed=27, n_reports=300, now=clock)
        # each report's revisions through one sender; half the reports start on each ingest
        halves: list[list[dict[str, Any]]] = [[], []]
        for m in messages:
            halves[zlib.crc32(m["report_id"].encode()) % 2].append(m)
        acks: list[list[dict[str, Any]]] = [[], []]
        feeders = [
            threading.Thread(target=feed, args=(system, [system.ingest.url, ingest2.url], halves[0], acks[0])),
            threading.Thread(target=feed, args=(system, [ingest2.url, system.ingest.url], halves[1], acks[1])),
        ]
        for f in feeders:
            f.start()
        wait_until(lambda: len(acks[1]) > len(halves[1]) // 4, timeout=60, what="load on the second ingest")
        killed_at = len(acks[1])
        ingest2.kill()  # mid-load, without a goodbye
        for f in feeders:
            f.join(timeout=300)
        assert not any(f.is_alive() for f in feeders)
        acknowledged = acks[0] + acks[1]
        print(
            f"replicas: {len(messages)} messages, {len(acknowledged)} acknowledged "
            f"({len(acks[0])} + {len(acks[1])}), second ingest killed after {killed_at} of its half's"
        )
        assert {m["report_id"] for m in acknowledged} == {m["report_id"] for m in messages}

        expected = expected_totals(acknowledged, load_vietnam(), clock)
        wrong = drain_and_compare(system.namespace, expected)
        assert not wrong, f"{len(wrong)} totals differ from the oracle, e.g. {list(wrong.items())[:3]}"

        # both APIs serve the same totals (each follows the totals stream on its own)
        months = sorted({m["period"] for m in messages})

        def answers(url: str) -> list[Any]:
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {system.admin_token}"}) as http:
                return [http.get("/v1/units/VN/totals", params={"period": p}).json() for p in months]

        wait_until(lambda: answers(system.api.url) == answers(api2.url), timeout=60, what="the two APIs to agree")
    finally:
        for proc in extra:
            proc.stop()
        system.stop()
