"""Chaos: a randomized workload with duplicates, corrections, withdrawals, out-of-order revisions
and late arrivals flows into Kafka while aggregator workers are killed with SIGKILL and
restarted. After the stream is drained, every totals document at every level must equal the
independent oracle (tests/e2e/oracle.py).

    make chaos    # the long version: BAOCAO_CHAOS_SCALE=long, more reports and more kills
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from shared.domain.auth import Scope
from shared.domain.hierarchy import load_vietnam
from tests.conftest import Namespace, wait_until

from .oracle import closes_at, differences, expected_totals
from .system import System, UnitProducer, start_system

pytestmark = [pytest.mark.e2e, pytest.mark.chaos]
log = logging.getLogger(__name__)

LONG = os.environ.get("BAOCAO_CHAOS_SCALE") == "long"
SCALE = {"reports": 8000, "kills": 8} if LONG else {"reports": 700, "kills": 3}
DISTRICTS = ["386", "388", "467"]  # in the tree before July 2025
PROVINCES_2025 = ["38", "40"]  # in the tree from July 2025 (no districts): their first communes
MARGIN = timedelta(days=2)  # no month whose deadline is this close to the workload's clock


def months_around(now: datetime, count: int = 6) -> list[str]:
    """Months up to ``now``'s own (in Vietnam time), oldest first: some already closed, the
    current one still open (none has not begun: such a report is refused), across a year's end
    when ``now`` is near one; leaving out any whose deadline is within MARGIN of ``now``, so
    whether a report arrives on time does not depend on how long the test takes."""
    out: list[str] = []
    local = now.astimezone(timezone(timedelta(hours=7)))
    y, m = local.year, local.month
    while len(out) < count:
        label = f"{y}-{m:02d}"
        if abs(closes_at(label) - now) > MARGIN:
            out.append(label)
        y, m = (y, m - 1) if m > 1 else (y - 1, 12)
    return out[::-1]


def make_workload(seed: int, n_reports: int, now: datetime | None = None) -> list[dict[str, Any]]:
    """Messages in the order they will be sent. Several revisions per report, some withdrawn,
    some sent twice, some revisions swapped, some held back to arrive last. ``now`` is the
    workload's clock (submission times, and the months it reports on)."""
    rng = random.Random(seed)
    tree = load_vietnam()
    clock = now or datetime.now(UTC)
    months = months_around(clock)
    # units of the tree each month belongs to (the one valid at its end)
    units: dict[str, tuple[list[str], list[str]]] = {}
    for month in months:
        version = tree.for_period(month)
        if all(d in version for d in DISTRICTS):
            units[month] = ([c.code for d in DISTRICTS for c in version.children(d)], DISTRICTS)
        else:
            communes = [c.code for p in PROVINCES_2025 for c in version.children(p)[:30]]
            units[month] = (communes, PROVINCES_2025)  # beds: no districts, the provinces report
    submitted = clock.isoformat()
    sent: list[dict[str, Any]] = []
    late: list[dict[str, Any]] = []
    for i in range(n_reports):
        month = rng.choice(months)
        kind = rng.choices(["study_session", "reflection", "beds"], [5, 2, 1])[0]
        communes, bed_units = units[month]
        unit = rng.choice(bed_units) if kind == "beds" else rng.choice(communes)
        rid = f"chaos-{seed}-{i}"
        revisions = []
        for rev in range(1, rng.choice([1, 1, 2, 3]) + 1):
            if kind == "study_session":
                total = rng.randint(20, 400)
                body = {
                    "resolution": "NQ",
                    "held_on": f"{month}-01",  # not after the clock's day: no date from the future
                    "format": "online",
                    "bridge_points": rng.randint(0, 5),
                    "delegates": rng.randint(0, 50),
                    "members_attended": rng.randint(0, total),
                    "members_total": total,
                }
                if rng.random() < 0.3:  # one point of a conference its district, province or neighbour held
                    path = tree.for_period(month).path(unit)
                    organiser = rng.choice([path[1], path[-1], rng.choice(communes)])
                    if organiser != unit:
                        body["joined"] = f"{organiser}/conference-{month}"
            elif kind == "reflection":
                req = rng.randint(10, 300)
                body = {"members_submitted": rng.randint(0, req), "members_required": req}
            else:
                body = {"indicator": "hospital_beds", "value": rng.randint(50, 200)}
            revisions.append(
                {
                    "report_id": rid,
                    "revision": rev,
                    "unit": unit,
                    "kind": "indicator" if kind == "beds" else kind,
                    "period": month,
                    "submitted_at": submitted,
                    "body": body,
                }
            )
        if rng.random() < 0.1:
            revisions.append({**revisions[-1], "revision": len(revisions) + 1, "withdrawn": True})
        if len(revisions) > 1 and rng.random() < 0.3:
            a, b = rng.sample(range(len(revisions)), 2)
            revisions[a], revisions[b] = revisions[b], revisions[a]  # out of order
        for r in revisions:
            (late if rng.random() < 0.05 else sent).append(r)
            if rng.random() < 0.15:
                sent.append(r)  # a retry after a bad connection
    return sent + late


def consumer_lag(bootstrap: str, group: str, topic: str, options: dict[str, str] | None = None) -> int:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, **(options or {}))
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, **(options or {}))
    try:
        committed = admin.list_group_offsets(group).get(group, {})
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        ends = consumer.end_offsets(parts)
        return sum(ends[tp] - (committed[tp].offset if tp in committed else 0) for tp in parts)
    finally:
        consumer.close()
        admin.close()


def drain_and_compare(ns: Namespace, expected: dict[str, dict[str, int]], timeout: float = 240) -> dict[str, Any]:
    """Wait until the aggregators have committed everything (lag 0 on ``reports``, forwarded
    reports included), then until the view holds what the oracle says or ``timeout`` passes (the
    view is written by a flush after the commit); return what still differs."""
    bootstrap, group = ns.env["KAFKA_BOOTSTRAP_SERVERS"], ns.env["BAOCAO_AGGREGATE_APP_ID"]
    wait_until(
        lambda: consumer_lag(bootstrap, group, ns.reports_topic, ns.kafka_options("admin")) == 0,
        timeout=timeout,
        interval=1,
        what="the aggregators to drain the topic",
    )
    deadline = time.monotonic() + 60
    wrong = differences(ns.env["MONGODB_URI"], ns.database, expected)
    while wrong and time.monotonic() < deadline:
        time.sleep(0.5)
        wrong = differences(ns.env["MONGODB_URI"], ns.database, expected)
    return wrong


def produce(producer: UnitProducer, topic: str, messages: list[dict[str, Any]], pace_s: float) -> None:
    try:
        for i, m in enumerate(messages):
            producer.send(topic, key=m["unit"].encode(), value=json.dumps(m).encode())
            if pace_s and i % 50 == 0:
                producer.flush()
                time.sleep(pace_s)
        producer.flush()
    finally:
        producer.close()


def run_chaos(system: System, seed: int, victims: int) -> dict[str, int]:
    ns = system.namespace
    clock = datetime.now(UTC)
    messages = make_workload(seed, SCALE["reports"], clock)
    # as a province's own system would: the province tokens would do; the country's covers all three
    producer = UnitProducer(ns, system.token("VN", Scope.SUBMIT), enable_idempotence=True, linger_ms=5)
    feeder = threading.Thread(target=produce, args=(producer, ns.reports_topic, messages, 0.05), daemon=True)
    feeder.start()
    rng = random.Random(seed)
    kills = 0
    while kills < SCALE["kills"]:
        time.sleep(rng.uniform(1.0, 3.0))
        victim = system.aggregators[rng.randrange(victims)]
        victim.kill()  # SIGKILL: no flush, no commit, no goodbye
        kills += 1
        victim.start()
        victim.wait_ready(90)
    feeder.join(timeout=300)
    assert not feeder.is_alive(), "producer did not finish"

    tree = load_vietnam()
    expected = expected_totals(messages, tree, clock)
    wrong = drain_and_compare(ns, expected)
    summary = {
        "messages": len(messages),
        "reports": SCALE["reports"],
        "kills": kills,
        "documents_checked": len(expected),
        "figures_checked": sum(len(v) for v in expected.values()),
    }
    print(f"chaos summary: {summary}")  # the long run prints what it checked (make chaos runs with -s)
    assert not wrong, f"{len(wrong)} totals differ from the oracle, e.g. {list(wrong.items())[:3]}"
    return summary


@pytest.fixture
def one_worker(namespace):
    system = start_system(namespace, aggregators=1)
    yield system
    system.stop()


@pytest.fixture
def two_workers(namespace):
    system = start_system(namespace, aggregators=2)
    yield system
    system.stop()


def test_one_worker_killed_repeatedly_loses_and_double_counts_nothing(one_worker):
    summary = run_chaos(one_worker, seed=11, victims=1)
    assert summary["documents_checked"] > 500


def test_two_workers_sharing_partitions_with_one_killed_stay_exact(two_workers):
    summary = run_chaos(two_workers, seed=23, victims=1)
    assert summary["documents_checked"] > 500
