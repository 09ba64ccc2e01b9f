"""A deployment moved from 4 to 6 partitions of ``reports`` (tools/partitions.py), against real
Kafka, MongoDB and the three services:

- reports of provinces of both trees (revisions, withdrawals, duplicates) go in over HTTP and are
  applied; the tool refuses while a worker is in the group, and while reports wait unapplied;
- ingest and the worker stopped, the tool grows the topics, re-keys the changelog, drops the
  worker's snapshots and moves the stored documents (and a second run finds nothing left to do);
- ingest and the worker started again, revisions and withdrawals of reports sent BEFORE the move
  go in with new reports: every total equals the independent oracle (nothing lost, nothing
  counted twice), every changelog record and every stored document is on its province's
  partition under 6, and ingest writes each report to that partition.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType
from pymongo import MongoClient

from deploy.processes import aggregate_process
from services.aggregate import snapshots
from services.aggregate.state import state_topic
from shared.domain.hierarchy import load_vietnam
from shared.domain.partitions import communes_per_partition, partition_for
from tests.conftest import Namespace, wait_until
from tools.partitions import Deployment, grow

from .oracle import expected_totals
from .system import System, start_system
from .test_chaos import drain_and_compare, months_around

pytestmark = pytest.mark.e2e

BEFORE, AFTER = 4, 6
# provinces that move between 4 and 6 partitions (46: 1 -> 3, 48: 0 -> 2, 24: 3 -> 4, 52: 2 -> 5:
# two of them to the new partitions) and some that stay
MOVING, STAYING = ["46", "48", "24", "52"], ["01", "38", "40", "79"]
PROVINCES = MOVING + STAYING
LEGACY_MONTH = "2025-03"  # a period of the tree before July 2025


@pytest.fixture
def grown_system(infra: dict[str, str]) -> Any:
    from tools.topics import create_topics

    ns = Namespace(f"grow{random.randrange(10**6):06d}", infra)
    create_topics(infra["KAFKA_BOOTSTRAP_SERVERS"], BEFORE, ns.env)
    system = start_system(ns, aggregators=0)
    # a worker that saves snapshots of its partitions often: the move must drop them
    worker = aggregate_process(system.run_dir, {**ns.env, "BAOCAO_AGGREGATE_SNAPSHOT_EVERY": "5"}, name="aggregate0")
    system.aggregators.append(worker)
    worker.start()
    worker.wait_ready(90)
    yield system
    system.stop()


def workload(seed: int, clock: datetime) -> list[list[dict[str, Any]]]:
    """Per report, its revisions in the order they are sent: a few communes of each province, in
    a month of each tree; some revised, some withdrawn, some sent twice."""
    rng = random.Random(seed)
    tree = load_vietnam()
    months = [LEGACY_MONTH, *months_around(clock, 2)]
    reports = []
    for i in range(160):
        month = rng.choice(months)
        version = tree.for_period(month)
        province = rng.choice(PROVINCES)
        communes = [u.code for u in version.subtree(province) if u.level.value == "commune"][:8]
        unit = rng.choice(communes)
        revisions = []
        for rev in range(1, rng.choice([1, 2, 3]) + 1):
            req = rng.randint(10, 300)
            revisions.append(
                {
                    "report_id": f"grow-{seed}-{i}",
                    "revision": rev,
                    "unit": unit,
                    "kind": "reflection",
                    "period": month,
                    "submitted_at": clock.isoformat(),
                    "body": {"members_submitted": rng.randint(0, req), "members_required": req},
                }
            )
        if rng.random() < 0.15:
            revisions.append({**revisions[-1], "revision": len(revisions) + 1, "withdrawn": True})
        reports.append(revisions)
    return reports


def send(system: System, messages: list[dict[str, Any]]) -> None:
    with system.client(system.ingest.url) as http:
        for i in range(0, len(messages), 50):
            batch = messages[i : i + 50]
            results = http.post("/v1/reports/batch", json=batch).json()["results"]
            refused = [r for r in results if r["status"] not in ("accepted", "duplicate")]
            assert not refused, refused


def run_tool(ns: Namespace, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.partitions", *args],
        env={**os.environ, **ns.env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def every_record(ns: Namespace, topic: str, since: dict[int, int] | None = None) -> list[Any]:
    consumer = KafkaConsumer(bootstrap_servers=ns.env["KAFKA_BOOTSTRAP_SERVERS"], **ns.kafka_options("admin"))
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        ends = consumer.end_offsets(tps)
        out = []
        for tp in tps:
            consumer.seek(tp, max((since or {}).get(tp.partition, 0), consumer.beginning_offsets([tp])[tp]))
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            for batch in consumer.poll(timeout_ms=1000).values():
                out.extend(batch)
        return out
    finally:
        consumer.close()


def changelog_configs(ns: Namespace) -> dict[str, str]:
    """The changelog topic's own settings (those not left to the broker's defaults)."""
    admin = KafkaAdminClient(bootstrap_servers=ns.env["KAFKA_BOOTSTRAP_SERVERS"], **ns.kafka_options("admin"))
    try:
        topic = state_topic(ns.reports_topic)
        described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        admin.close()
    return {k: v["value"] for k, v in described["topic"][topic].items()}


def snapshot_heads(ns: Namespace) -> list[str]:
    with MongoClient(ns.env["MONGODB_URI"]) as mongo:
        return [d["_id"] for d in mongo[ns.database][snapshots.HEADS].find({}, {"_id": 1})]


def end_offsets(ns: Namespace, topic: str) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=ns.env["KAFKA_BOOTSTRAP_SERVERS"], **ns.kafka_options("admin"))
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return {tp.partition: n for tp, n in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()


def test_growing_from_4_to_6_partitions_loses_nothing_and_counts_nothing_twice(grown_system: System) -> None:
    system, ns = grown_system, grown_system.namespace
    clock = datetime.now(UTC)
    reports = workload(11, clock)
    rng = random.Random(11)
    # before the move: every revision but the last of each report, some twice
    before = [r for revisions in reports for r in revisions[:-1]] + [revisions[-1] for revisions in reports[:40]]
    before += rng.sample(before, 20)
    new_reports = workload(12, clock)
    # after it: the last revisions of reports sent before (corrections and withdrawals among them)
    after = [revisions[-1] for revisions in reports[40:] if len(revisions) > 1]
    after += [revisions[-1] for revisions in reports[40:] if len(revisions) == 1]
    after += [r for revisions in new_reports for r in revisions]
    assert any(r.get("withdrawn") for r in after) and any(r["revision"] > 1 for r in after)
    tree = load_vietnam()

    send(system, before[: len(before) // 2])
    assert not drain_and_compare(ns, expected_totals(before[: len(before) // 2], tree, clock))

    # a worker in the group: refused, nothing changed
    refused = run_tool(ns, "grow", "--to", str(AFTER))
    assert refused.returncode == 2, refused.stderr
    assert "active member" in refused.stderr and "stop every aggregator worker" in refused.stderr
    # the worker stopped with reports not yet applied: refused
    system.aggregators[0].stop()
    send(system, before[len(before) // 2 :])
    wait_until(lambda: "has not applied every report" in run_tool(ns, "grow", "--to", str(AFTER)).stderr, 30)
    assert len(end_offsets(ns, ns.reports_topic)) == BEFORE
    # applied, then everything stopped: the move
    system.aggregators[0].start()
    system.aggregators[0].wait_ready(90)
    assert not drain_and_compare(ns, expected_totals(before, tree, clock))
    system.ingest.stop()
    system.aggregators[0].stop()
    deployment = Deployment.from_env(ns.env)
    assert snapshot_heads(ns), "the worker saved no snapshot"
    configs_before = changelog_configs(ns)
    assert configs_before["cleanup.policy"] == "compact" and "retention.ms" not in configs_before
    report = grow(deployment, AFTER)
    print("\n".join(report.lines()))
    assert (report.before, report.after) == (BEFORE, AFTER)
    assert report.reports_moved > 0 and set(report.provinces_moved) == set(MOVING)
    assert report.documents_moved > 0
    assert report.snapshots_dropped > 0 and not snapshot_heads(ns)
    again = grow(deployment, AFTER)  # idempotent
    assert (again.records_written, again.reports_moved, again.documents_moved) == (0, 0, 0)
    assert changelog_configs(ns) == configs_before  # compaction only again
    moved_at = end_offsets(ns, ns.reports_topic)
    assert len(moved_at) == AFTER and len(end_offsets(ns, state_topic(ns.reports_topic))) == AFTER

    system.ingest.start()
    system.ingest.wait_ready(60)
    system.aggregators[0].start()
    system.aggregators[0].wait_ready(90)
    send(system, after)
    wrong = drain_and_compare(ns, expected_totals(before + after, tree, clock))
    assert not wrong, f"{len(wrong)} totals differ from the oracle, e.g. {list(wrong.items())[:3]}"

    # where everything is now: the changelog, the stored documents, what ingest wrote since
    for record in every_record(ns, state_topic(ns.reports_topic)):
        assert record.partition == partition_for(json.loads(record.value)["path"][-1], AFTER), record
    with MongoClient(ns.env["MONGODB_URI"]) as mongo:
        docs = list(mongo[ns.database]["totals"].find({}, {"province": 1, "part": 1}))
    assert docs and all(d["part"] == partition_for(d["province"], AFTER) for d in docs)
    sent_after = every_record(ns, ns.reports_topic, since=moved_at)
    assert len(sent_after) >= len(after)
    assert all(m.partition == partition_for(m.key.decode(), AFTER) for m in sent_after)
    assert {m.partition for m in sent_after} == set(range(AFTER))  # the new partitions too
    # and the table the deployment now uses is balanced in both trees
    for t in range(2):
        loads = [load[t] for load in communes_per_partition(AFTER)]
        mean = sum(loads) / AFTER
        assert max(abs(x - mean) for x in loads) <= 0.1 * mean, loads
