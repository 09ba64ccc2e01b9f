"""A three-broker cluster (deploy/stack.py, a ``*-cluster`` profile: three KRaft nodes, TLS,
three copies of every partition, two in sync) loses a broker and the system goes on:

- the broker leading most of the ``reports`` partitions is SIGKILLed while reports go in over HTTP
  and stays down: every report ingest acknowledged (202/duplicate) is in the totals, exactly as
  the oracle says, and the read API answers throughout;
- then the three brokers are restarted one after the other, each back in sync before the next
  goes, while reports go in: the same checks.

Each test prints what ingest and the reads saw meanwhile (failed attempts, slowest answers).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from deploy import stack
from shared.domain.hierarchy import load_vietnam
from tests.conftest import TEST_PROFILE, Namespace, _local_stack, refused_sockets_collected, wait_until

from .oracle import expected_totals
from .system import System, start_system
from .test_chaos import drain_and_compare, make_workload

pytestmark = [pytest.mark.e2e, pytest.mark.chaos]

CLUSTER_PROFILE = f"{TEST_PROFILE}-cluster"
BATCH = 20
PAUSE_S = 0.2  # between two batches: reports keep arriving while brokers go and come


@pytest.fixture(scope="module")
def cluster() -> Any:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        pytest.skip("the servers are external; these tests start and kill a local cluster")
    yield from _local_stack(CLUSTER_PROFILE)


@pytest.fixture(scope="module")
def system(cluster: dict[str, str]) -> Any:
    from tools.topics import create_topics

    assert cluster["BAOCAO_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert (cluster["BAOCAO_KAFKA_REPLICATION_FACTOR"], cluster["BAOCAO_KAFKA_MIN_INSYNC_REPLICAS"]) == ("3", "2")
    ns = Namespace(uuid.uuid4().hex[:8], cluster)
    create_topics(cluster["KAFKA_BOOTSTRAP_SERVERS"], 4, ns.env)
    system = start_system(ns)
    yield system
    system.stop()


@dataclass
class Ledger:
    """Every report ingest acknowledged in this module, and when the workloads were made."""

    clock: datetime = field(default_factory=lambda: datetime.now(UTC))
    acknowledged: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture(scope="module")
def ledger() -> Ledger:
    return Ledger()


@dataclass
class Observed:
    """What clients saw: (seconds taken, ok) per ingest batch attempt and per read."""

    ingest: list[tuple[float, bool]] = field(default_factory=list)
    reads: list[tuple[float, bool]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        def of(samples: list[tuple[float, bool]]) -> dict[str, Any]:
            times = sorted(t for t, _ in samples)
            return {
                "attempts": len(samples),
                "failed": sum(1 for _, ok in samples if not ok),
                "median_ms": round(1000 * times[len(times) // 2]) if times else None,
                "max_ms": round(1000 * times[-1]) if times else None,
            }

        return {"ingest batches": of(self.ingest), "reads": of(self.reads)}


def feed(system: System, messages: list[dict[str, Any]], ledger: Ledger, seen: Observed, stop: threading.Event) -> None:
    """Batches to ingest until ``messages`` run out or ``stop``; a batch is sent again until every
    report in it is acknowledged (a lost answer makes the resend a duplicate, which is fine)."""
    with system.client(system.ingest.url) as http:
        for i in range(0, len(messages), BATCH):
            if stop.is_set():
                return
            pending = messages[i : i + BATCH]
            while pending:
                began = time.monotonic()
                try:
                    results = http.post("/v1/reports/batch", json=pending).json()["results"]
                except Exception:  # noqa: BLE001 - an answer lost while a broker goes is retried
                    seen.ingest.append((time.monotonic() - began, False))
                    time.sleep(0.5)
                    continue
                done = {item["index"] for item in results if item["status"] in ("accepted", "duplicate")}
                seen.ingest.append((time.monotonic() - began, len(done) == len(pending)))
                ledger.acknowledged.extend(pending[k] for k in sorted(done))
                pending = [m for k, m in enumerate(pending) if k not in done]
                if pending:
                    time.sleep(0.5)
            time.sleep(PAUSE_S)


def read(system: System, year: str, seen: Observed, stop: threading.Event) -> None:
    """Reads a province's totals of the year (ones the workload changes) until ``stop``."""
    with system.client(system.api.url) as http:
        while not stop.is_set():
            began = time.monotonic()
            try:
                ok = http.get("/v1/units/38/totals", params={"period": year}).status_code == 200
            except Exception:  # noqa: BLE001 - counted as a failed read
                ok = False
            seen.reads.append((time.monotonic() - began, ok))
            time.sleep(0.1)


def live(ns: Namespace) -> Namespace:
    """``ns`` with the brokers that run now as its bootstrap: kafka-python's admin client fails a
    request sent to a broker that is down instead of trying another (the services use aiokafka)."""
    state = stack.Profile(CLUSTER_PROFILE).load()
    running = [f"127.0.0.1:{n['port']}" for _, n in sorted(stack.kafka_nodes(state).items()) if stack._running(n)]
    return Namespace(ns.suffix, {**ns.endpoints, "KAFKA_BOOTSTRAP_SERVERS": ",".join(running)})


def partitions(system: System, topic: str) -> list[dict[str, Any]]:
    """Each partition of ``topic``: its leader, replicas and in-sync replicas (node ids); [] when
    the request went to a broker that has just gone (the caller asks again)."""
    ns = live(system.namespace)
    try:
        with refused_sockets_collected():
            admin = KafkaAdminClient(bootstrap_servers=ns.env["KAFKA_BOOTSTRAP_SERVERS"], **ns.kafka_options("admin"))
            try:
                (described,) = admin.describe_topics([topic])
            finally:
                admin.close()
    except KafkaError:
        return []
    return [
        {
            "partition": p["partition_index"],
            "leader": p["leader_id"],
            "replicas": p["replica_nodes"],
            "isr": p["isr_nodes"],
        }
        for p in described["partitions"]
    ]


def all_in_sync(system: System) -> bool:
    ns = system.namespace
    # the brokers' own consumer offsets (the aggregator's commits) have three copies too
    topics = [ns.reports_topic, f"{ns.reports_topic}.state", ns.env["BAOCAO_TOTALS_TOPIC"], "__consumer_offsets"]
    described = [partitions(system, t) for t in topics]
    return all(described) and all(len(p["isr"]) == len(p["replicas"]) == 3 for ps in described for p in ps)


def run_with_sends(system: System, ledger: Ledger, seed: int, action: Any) -> Observed:
    """Sends reports over HTTP while ``action`` runs, and reads totals; the sends end with it."""
    messages = make_workload(seed, 4000, ledger.clock)  # more than the action lasts
    seen = Observed()
    stop_reads, stop_feed = threading.Event(), threading.Event()
    feeder = threading.Thread(target=feed, args=(system, messages, ledger, seen, stop_feed), daemon=True)
    reader = threading.Thread(target=read, args=(system, str(ledger.clock.year), seen, stop_reads), daemon=True)
    reader.start()
    feeder.start()
    try:
        action()
    finally:
        stop_feed.set()
        feeder.join(timeout=300)
        stop_reads.set()
    reader.join(timeout=30)
    assert not feeder.is_alive(), "the feeder did not finish"
    return seen


def check_totals(system: System, ledger: Ledger) -> None:
    expected = expected_totals(ledger.acknowledged, load_vietnam(), ledger.clock)
    with refused_sockets_collected():
        wrong = drain_and_compare(live(system.namespace), expected)
    assert not wrong, f"{len(wrong)} totals differ from the oracle, e.g. {list(wrong.items())[:3]}"


def test_the_leader_of_reports_killed_mid_send_and_left_down_loses_nothing(system, ledger):
    profile = stack.Profile(CLUSTER_PROFILE)
    wait_until(lambda: all_in_sync(system), timeout=60, interval=1, what="every partition to have three copies in sync")
    leaders = [p["leader"] for p in partitions(system, system.namespace.reports_topic)]
    victim = max(set(leaders), key=leaders.count)

    def kill_the_leader() -> None:
        wait_until(lambda: len(ledger.acknowledged) >= 3 * BATCH, timeout=60, what="reports to flow")
        stack.kill_kafka_node(profile, victim)
        # the partitions it led get other leaders among the two left
        wait_until(
            lambda: (
                (ps := partitions(system, system.namespace.reports_topic))
                and all(p["leader"] not in (victim, -1) for p in ps)
            ),
            timeout=60,
            what="new leaders for the partitions of the killed broker",
        )
        after = len(ledger.acknowledged)
        wait_until(
            lambda: len(ledger.acknowledged) >= after + 5 * BATCH,
            timeout=120,
            what="reports acknowledged by two brokers",
        )

    before = len(ledger.acknowledged)
    seen = run_with_sends(system, ledger, seed=41, action=kill_the_leader)
    print(f"broker {victim} killed (led {leaders.count(victim)} of {len(leaders)} partitions): {seen.summary()}")
    assert len(ledger.acknowledged) > before
    assert not stack._running(stack.kafka_nodes(profile.load())[victim]), "the killed broker is to stay down"
    check_totals(system, ledger)
    assert not [ok for _, ok in seen.reads if not ok], f"reads failed while a broker was down: {seen.summary()}"
    assert system.totals("38", str(ledger.clock.year))["metrics"]


def test_a_rolling_restart_of_every_broker_loses_nothing(system, ledger):
    profile = stack.Profile(CLUSTER_PROFILE)
    for node, entry in stack.kafka_nodes(profile.load()).items():
        if not stack._running(entry):  # the broker the test before left down
            stack.start_kafka_node(profile, node)
    wait_until(
        lambda: all_in_sync(system), timeout=120, interval=1, what="every partition to have three copies in sync"
    )

    def roll() -> None:
        for node in sorted(stack.kafka_nodes(profile.load())):
            flowing = len(ledger.acknowledged) + 2 * BATCH
            wait_until(lambda n=flowing: len(ledger.acknowledged) >= n, timeout=120, what="reports to flow")
            stack.stop_kafka_node(profile, node)
            stack.start_kafka_node(profile, node)
            wait_until(lambda: all_in_sync(system), timeout=120, interval=1, what=f"broker {node} back in sync")

    seen = run_with_sends(system, ledger, seed=43, action=roll)
    print(f"rolling restart of three brokers: {seen.summary()}")
    check_totals(system, ledger)
    assert not [ok for _, ok in seen.reads if not ok], f"reads failed during the restarts: {seen.summary()}"
