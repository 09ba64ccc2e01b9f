"""Issue 13's defects, against the running services: a report whose revisions come on two
partitions counts once, messages that make a JSON parser raise are dead letters that lose none
of the reports around them, and a worker killed before it flushed leaves nothing stale."""

import json
import time

import pytest

from deploy.processes import aggregate_process
from services.aggregate.routing import partition_for
from tests.conftest import wait_until

from .system import start_system
from .test_chaos import consumer_lag
from .test_dead_letters_and_agencies import good, read_dead_letters

pytestmark = pytest.mark.e2e
PARTITIONS = 4  # the test namespace's topics


def producer(system):
    return system.unit_producer()


def test_a_report_whose_revisions_arrive_on_two_partitions_counts_once(system):
    home = partition_for("38", PARTITIONS)
    other = (home + 1) % PARTITIONS
    with system.client(system.ingest.url, system.token("14923", "submit")) as http:
        assert http.post("/v1/reports", json=good("S", "14923", attended=5)).status_code == 202
    p = producer(system)
    p.send(system.namespace.reports_topic, value=json.dumps(good("R", "14923", attended=10)).encode(), partition=other)
    p.flush()
    p.close()
    system.wait_for_metric("38", "2021-11", "study_session.members_attended", 15)
    with system.client(system.ingest.url, system.token("14923", "submit")) as http:
        r = http.post("/v1/reports", json=good("R", "14923", attended=20, rev=2))
        assert r.status_code == 202, r.text
    for unit in ("14923", "386", "38"):
        system.wait_for_metric(unit, "2021-11", "study_session.members_attended", 25)
    time.sleep(1)  # anything counted twice would have arrived by now
    assert system.totals("38", "2021-11")["metrics"]["study_session.members_attended"] == 25


def test_messages_a_json_parser_chokes_on_are_dead_letters_and_their_batch_still_counts(system):
    topic = system.namespace.reports_topic
    home = partition_for("38", PARTITIONS)
    p = producer(system)
    hostile = [b"[" * 100_000, b'{"report_id": ' + b"9" * 5000 + b"}", b"\xff\xfe\x00", b"null"]
    sent = 0
    for i in range(20):  # good and hostile interleaved in one partition: one batch
        p.send(topic, value=json.dumps(good(f"h{i}", "14923", attended=1)).encode(), partition=home)
        sent += 1
        if i % 5 == 0:
            p.send(topic, value=hostile[(i // 5) % len(hostile)], partition=home)
    p.flush()
    p.close()
    system.wait_for_metric("38", "2021-11", "study_session.members_attended", sent)
    reasons = [h["baocao-reason"] for h in read_dead_letters(system, 4)]
    assert sorted(reasons) == ["invalid_json", "invalid_json", "invalid_json", "invalid_report"]


@pytest.fixture
def no_aggregator(namespace):
    system = start_system(namespace, aggregators=0)
    yield system
    system.stop()


def test_a_worker_killed_after_its_changelog_and_before_its_flush_leaves_nothing_stale(no_aggregator):
    """The worker applies the report and its changelog has it (offsets committed), but it never
    flushes (its flush timer is an hour); SIGKILL. The next worker restores the partition,
    finds the view behind its state and writes and publishes what was missing."""
    system = no_aggregator
    env = system.namespace.env
    lazy = aggregate_process(system.run_dir, {**env, "BAOCAO_AGGREGATE_FLUSH_INTERVAL": "3600"}, name="lazy")
    system.aggregators.append(lazy)
    lazy.start()
    lazy.wait_ready(90)
    with system.client(system.ingest.url, system.token("14923", "submit")) as http:
        assert http.post("/v1/reports", json=good("k1", "14923", attended=3)).status_code == 202
    wait_until(
        lambda: (
            consumer_lag(
                env["KAFKA_BOOTSTRAP_SERVERS"],
                env["BAOCAO_AGGREGATE_APP_ID"],
                system.namespace.reports_topic,
                system.namespace.kafka_options("admin"),
            )
            == 0
        ),
        timeout=60,
        what="the lazy worker to apply and commit the report",
    )
    assert "study_session.members_attended" not in system.totals("38", "2021-11")["metrics"]  # not flushed
    lazy.kill()
    system.add_aggregator("after")
    system.wait_for_metric("38", "2021-11", "study_session.members_attended", 3)
    system.wait_for_metric("14923", "2021", "study_session.members_attended", 3)
