"""Restarting the database and then the broker mid-stream loses nothing acknowledged and counts
nothing twice: reports go in over HTTP while the servers go down and come back; the totals then
equal the oracle computed from the reports ingest acknowledged (202/duplicate)."""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from deploy import stack
from shared.domain.hierarchy import load_vietnam
from tests.conftest import TEST_PROFILE

from .oracle import expected_totals
from .system import start_system
from .test_chaos import drain_and_compare, make_workload

pytestmark = [pytest.mark.e2e, pytest.mark.chaos]


@pytest.fixture
def system(namespace):
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        pytest.skip("the servers are external; this test restarts the local ones")
    system = start_system(namespace)
    yield system
    system.stop()


def feed(
    system,
    messages: list[dict[str, Any]],
    acknowledged: list[dict[str, Any]],
    stop: threading.Event,
    refused: dict[str, Any] | None = None,
) -> None:
    """Send in batches as a unit's software would: whatever was not acknowledged (503, a lost
    answer) is sent again until it is. A lost answer may hide a report that did get through;
    the resend is then a duplicate, which is the point. ``refused`` keeps the last answer of each
    report not acknowledged yet (report_id/revision -> the batch item), to say why when one never is."""
    with system.client(system.ingest.url) as http:
        for i in range(0, len(messages), 25):
            pending = messages[i : i + 25]
            while pending and not stop.is_set():
                try:
                    results = http.post("/v1/reports/batch", json=pending).json()["results"]
                except Exception as exc:  # noqa: BLE001 - the service may be slow while a server restarts
                    if refused is not None:
                        refused.update({f"{m['report_id']}/{m['revision']}": repr(exc)[:200] for m in pending})
                    time.sleep(0.5)
                    continue
                done = {item["index"] for item in results if item["status"] in ("accepted", "duplicate")}
                if refused is not None:
                    for item in results:
                        m = pending[item["index"]]
                        key = f"{m['report_id']}/{m['revision']}"
                        if item["index"] in done:
                            refused.pop(key, None)
                        else:
                            refused[key] = item
                acknowledged.extend(pending[k] for k in sorted(done))
                pending = [m for k, m in enumerate(pending) if k not in done]
                if pending:
                    time.sleep(0.5)
            time.sleep(0.05)


@pytest.mark.timeout(600)  # the feeder's 420 s, then the drain
def test_database_and_broker_restarts_lose_nothing_acknowledged(system):
    profile = stack.Profile(TEST_PROFILE)
    clock = datetime.now(UTC)
    messages = make_workload(seed=5, n_reports=400, now=clock)
    acknowledged: list[dict[str, Any]] = []
    refused: dict[str, Any] = {}
    stop = threading.Event()
    feeder = threading.Thread(target=feed, args=(system, messages, acknowledged, stop, refused), daemon=True)
    feeder.start()
    try:
        time.sleep(2)
        stack.stop(profile, only="mongodb")
        time.sleep(3)
        stack.start(profile)
        time.sleep(3)
        stack.stop(profile, only="kafka")
        time.sleep(3)
        stack.start(profile)
        feeder.join(timeout=420)  # a unit's software keeps trying; so does the feeder, until then
    finally:
        stop.set()
        feeder.join(timeout=10)
        stack.start(profile)  # leave the servers up for the other tests whatever happened
    assert len(acknowledged) == len(messages), (
        f"{len(messages) - len(acknowledged)} reports never acknowledged; last answers: {list(refused.items())[:5]}"
    )

    expected = expected_totals(acknowledged, load_vietnam(), clock)
    wrong = drain_and_compare(system.namespace, expected)
    print(f"restarts: {len(acknowledged)} of {len(messages)} messages acknowledged, {len(expected)} documents checked")
    assert not wrong, f"{len(wrong)} totals differ from the oracle, e.g. {list(wrong.items())[:3]}"
