"""Who may do what on Kafka, against the running broker (SASL/SCRAM, ACLs) and services: only the
aggregator writes totals, a unit's system can write reports and nothing else, and what it writes
there counts only with a valid token of its own subtree, on time only by the broker's clock."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import TopicAuthorizationFailedError

from shared.domain.auth import Scope, mint
from shared.domain.hierarchy import load_vietnam
from tests.conftest import wait_until

from .oracle import closes_at
from .test_dead_letters_and_agencies import good, read_dead_letters

pytestmark = pytest.mark.e2e


def producer_as(namespace, principal, **overrides):
    # not idempotent: a principal that may write no topic at all is refused its producer id
    # (ClusterAuthorizationFailed) before any topic is asked for
    options = {**namespace.kafka_options(principal), "enable_idempotence": False, "max_block_ms": 10_000, **overrides}
    return KafkaProducer(bootstrap_servers=namespace.env["KAFKA_BOOTSTRAP_SERVERS"], acks="all", **options)


def test_a_unit_principal_cannot_write_the_totals_topic(namespace):
    forged = {"id": "38|study_session|2021", "unit": "38", "version": 10**18, "periods": {}}
    producer = producer_as(namespace, "unit")
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            producer.send(namespace.env["BAOCAO_TOTALS_TOPIC"], json.dumps(forged).encode()).get(timeout=10)
    finally:
        producer.close()


@pytest.mark.parametrize(
    ("principal", "topic"),
    [
        ("ingest", "BAOCAO_TOTALS_TOPIC"),  # only the aggregator writes totals
        ("reader", "BAOCAO_TOTALS_TOPIC"),
        ("reader", "BAOCAO_REPORTS_TOPIC"),
        ("unit", "BAOCAO_DEAD_LETTER_TOPIC"),
    ],
)
def test_principals_cannot_write_topics_they_were_not_granted(namespace, principal, topic):
    producer = producer_as(namespace, principal)
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            producer.send(namespace.env[topic], b"{}").get(timeout=10)
    finally:
        producer.close()


def test_a_unit_principal_cannot_read_the_reports(namespace):
    consumer = KafkaConsumer(
        bootstrap_servers=namespace.env["KAFKA_BOOTSTRAP_SERVERS"],
        enable_auto_commit=False,
        **namespace.kafka_options("unit"),
    )
    try:
        consumer.assign([TopicPartition(namespace.reports_topic, 0)])
        consumer.seek(TopicPartition(namespace.reports_topic, 0), 0)
        with pytest.raises(TopicAuthorizationFailedError):
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                consumer.poll(timeout_ms=500)
    finally:
        consumer.close()


def test_the_totals_topic_is_invisible_to_a_unit_principal(namespace):
    """Without even Describe on it, the broker does not tell a unit's system that the topic has
    partitions, while a reader sees them and reads what is there."""
    totals = namespace.env["BAOCAO_TOTALS_TOPIC"]
    admin = producer_as(namespace, "admin")
    try:
        admin.send(totals, b"{}", key=b"k", partition=0).get(timeout=10)
    finally:
        admin.close()

    def read(principal: str) -> tuple[set[int] | None, int]:
        consumer = KafkaConsumer(
            bootstrap_servers=namespace.env["KAFKA_BOOTSTRAP_SERVERS"],
            enable_auto_commit=False,
            **namespace.kafka_options(principal),
        )
        try:
            partitions = consumer.partitions_for_topic(totals)
            if not partitions:
                return partitions, 0
            tp = TopicPartition(totals, 0)
            consumer.assign([tp])
            consumer.seek(tp, 0)
            got = consumer.poll(timeout_ms=10_000)
            return partitions, sum(len(records) for records in got.values())
        finally:
            consumer.close()

    assert read("reader") == ({0, 1, 2, 3}, 1)
    assert not read("unit")[0]


LOGIN_ATTEMPT = """
import json, sys
from kafka import KafkaProducer
from kafka.errors import KafkaError
options = json.loads(sys.argv[1])
if options.get("ssl_cafile"):  # an SSL context does not cross the command line; its CA does
    from aiokafka.helpers import create_ssl_context
    options["ssl_context"] = create_ssl_context(cafile=options.pop("ssl_cafile"))
try:
    producer = KafkaProducer(max_block_ms=5000, bootstrap_timeout_ms=5000, **options)
    producer.send(sys.argv[2], b"{}").get(timeout=5)
except KafkaError as exc:
    print("refused:", type(exc).__name__)
else:
    print("written")
"""


@pytest.mark.parametrize("login", ["none", "wrong password"])
def test_a_client_without_a_login_or_with_a_wrong_password_gets_nothing(namespace, login):
    # in a process of its own: kafka-python leaves the sockets of a client that could not
    # bootstrap to the garbage collector
    options = {"bootstrap_servers": namespace.env["KAFKA_BOOTSTRAP_SERVERS"]}
    if login == "wrong password":
        options |= {**namespace.kafka_options("unit"), "sasl_plain_password": "not-the-password"}
        if options.pop("ssl_context", None) is not None:  # over TLS: the password is what is wrong
            options["ssl_cafile"] = namespace.credentials("unit").cafile
    attempt = subprocess.run(
        [sys.executable, "-c", LOGIN_ATTEMPT, json.dumps(options), namespace.reports_topic],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert attempt.stdout.strip() == "refused: KafkaTimeoutError", attempt.stderr[-2000:]


def sibling_of(unit: str) -> str:
    tree = load_vietnam(["38"])
    parent = tree.path(unit)[1]
    return next(c.code for c in tree.children(parent) if c.code != unit)


def test_reports_produced_with_a_forged_a_foreign_or_no_token_are_dead_letters_and_count_nothing(system):
    ns = system.namespace
    topic = ns.reports_topic
    sibling = sibling_of("14923")
    cases = [
        # a commune's own token, for its sibling's report
        (system.unit_producer("14923"), good("squat", sibling, attended=11), "forbidden_unit"),
        # a country token signed with another key
        (
            system.unit_producer(token=mint("another-secret-" + "y" * 40, "VN", [Scope.SUBMIT], 3600)),
            good("forged", "14923", attended=12),
            "invalid_token",
        ),
        # the commune's token, expired an hour ago
        (
            system.unit_producer(
                token=mint(
                    system.namespace.env["BAOCAO_AUTH_SECRET"], "14923", [Scope.SUBMIT], 60, now=time.time() - 3600
                )
            ),
            good("expired", "14923", attended=13),
            "invalid_token",
        ),
        # a read-only token
        (
            system.unit_producer(token=system.token("14923", Scope.READ)),
            good("reader", "14923", attended=14),
            "forbidden_scope",
        ),
        # no token at all
        (system.unit_producer(token=None), good("anonymous", "14923", attended=15), "no_token"),
    ]
    for producer, report, _ in cases:
        producer.send(topic, json.dumps(report).encode(), key=report["unit"].encode())
        producer.flush()
        producer.close()
    honest = system.unit_producer("14923")
    honest.send(topic, json.dumps(good("honest", "14923", attended=7)).encode(), key=b"14923")
    honest.flush()
    honest.close()

    system.wait_for_metric("386", "2021-11", "study_session.members_attended", 7)
    headers = read_dead_letters(system, len(cases))
    assert sorted(h["baocao-reason"] for h in headers) == sorted(reason for *_, reason in cases)
    squat = next(h for h in headers if h["baocao-reason"] == "forbidden_unit")
    assert f"token of unit 14923 may not submit for unit {sibling}" in squat["baocao-detail"]
    time.sleep(1)  # anything wrongly counted would have arrived with the honest report
    totals = system.totals("386", "2021-11")
    assert totals["metrics"]["study_session.members_attended"] == 7
    assert totals["completeness"]["study_session"]["units_reported"] == 1
    with system.client(system.api.url) as api:
        sibling_totals = api.get(f"/v1/units/{sibling}/totals", params={"period": "2021-11"}).json()
    assert "study_session.members_attended" not in sibling_totals["metrics"]


def open_month(now: datetime) -> str:
    """The first month from now whose deadline is at least two days away."""
    year, month = now.year, now.month
    while closes_at(f"{year}-{month:02d}") - now < timedelta(days=2):
        year, month = (year, month + 1) if month < 12 else (year + 1, 1)
    return f"{year}-{month:02d}"


def in_period(report: dict, period: str) -> dict:
    return {
        **report,
        "period": period,
        "submitted_at": datetime.now(UTC).isoformat(),
        "body": {**report["body"], "held_on": f"{period}-01"},  # not after today: no date from the future
    }


def test_on_time_is_decided_by_the_broker_clock_not_by_what_a_producer_writes(system):
    """A direct producer cannot make a late report on time: an envelope carrying its own
    received_at is refused (only ingest's, stamped, are trusted), and the message timestamp it
    sets is replaced by the broker's (LogAppendTime)."""
    ns = system.namespace
    topic = ns.reports_topic
    closed = "2021-11"  # long past its deadline (2021-12-15)
    before_deadline = datetime(2021, 11, 10, tzinfo=UTC)
    producer = system.unit_producer("38")  # the province's system (its units in both trees)
    envelope = {"report": good("backdated-envelope", "14923", attended=5), "received_at": before_deadline.isoformat()}
    producer.send(topic, json.dumps(envelope).encode(), key=b"14923")
    producer.producer.send(  # a bare report whose producer claims it was sent before the deadline
        topic,
        value=json.dumps(good("backdated-timestamp", "14923", attended=3)).encode(),
        key=b"14923",
        headers=producer.headers,
        timestamp_ms=int(before_deadline.timestamp() * 1000),
    )
    opened = open_month(datetime.now(UTC))
    # an open month is in the 2025 tree, where 14923 is Xã Bá Thước under Thanh Hóa (38)
    producer.send(topic, json.dumps(in_period(good("in-time", "14923", attended=4), opened)).encode(), key=b"14923")
    producer.flush()
    producer.close()

    late = system.wait_for_metric("14923", closed, "study_session.members_attended", 3)
    assert late["completeness"]["study_session"]["units_reported"] == 1
    assert late["completeness"]["study_session"]["units_on_time"] == 0
    assert [h["baocao-reason"] for h in read_dead_letters(system, 1)] == ["unsigned_envelope"]
    on_time = wait_until(
        lambda: (t := system.totals("14923", opened))["metrics"].get("study_session.members_attended") == 4 and t,
        timeout=60,
        what=f"the report of {opened} to be counted",
    )
    assert on_time["completeness"]["study_session"]["units_on_time"] == 1


def revoke_with_the_cli(ns, token: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "tools.cli", "token", "revoke", token, "--reason", "test"],
        env={**ns.env, "PATH": ""},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )


def test_a_token_revoked_meanwhile_stops_counting_on_the_kafka_path(system):
    ns = system.namespace
    token = system.token("14923", Scope.SUBMIT)
    producer = system.unit_producer(token=token)
    producer.send(ns.reports_topic, json.dumps(good("before", "14923", attended=2)).encode(), key=b"14923")
    producer.flush()
    system.wait_for_metric("14923", "2021-11", "study_session.members_attended", 2)
    revoke_with_the_cli(ns, token)
    sent = [0]

    def revoked_letters() -> int:
        return sum(h.get("baocao-detail") == "baocao-token: token revoked" for h in read_dead_letters(system, 0))

    def refused() -> bool:
        sent[0] += 1  # a new report each time, until the worker has read the revocation
        report = good(f"after-{sent[0]}", "14923", attended=10)
        producer.send(ns.reports_topic, json.dumps(report).encode(), key=b"14923")
        producer.flush()
        return revoked_letters() > 0

    wait_until(refused, timeout=60, interval=1, what="reports with the revoked token to be dead letters")
    # from now on nothing it sends counts: the last report (1 member) is a dead letter, and the
    # total stays 2 plus tens (what was sent before the worker knew)
    before = revoked_letters()
    producer.send(ns.reports_topic, json.dumps(good("last", "14923", attended=1)).encode(), key=b"14923")
    producer.flush()
    producer.close()
    wait_until(lambda: revoked_letters() == before + 1, timeout=60, what="the last report to be a dead letter")
    assert system.totals("14923", "2021-11")["metrics"]["study_session.members_attended"] % 10 == 2


# README (Security, the Kafka path): a revocation reaches the workers within this many seconds
REVOCATION_BOUND_S = 5.0


def test_a_report_sent_straight_to_kafka_after_the_stated_bound_of_a_revocation_is_a_dead_letter(system):
    ns = system.namespace
    token = system.token("14944", Scope.SUBMIT)
    producer = system.unit_producer(token=token)
    producer.send(ns.reports_topic, json.dumps(good("bound-before", "14944", attended=3)).encode(), key=b"14944")
    producer.flush()
    system.wait_for_metric("14944", "2021-11", "study_session.members_attended", 3)
    revoke_with_the_cli(ns, token)
    time.sleep(REVOCATION_BOUND_S)  # the bound the README states (a wait, not an assertion on time)
    producer.send(ns.reports_topic, json.dumps(good("bound-after", "14944", attended=40)).encode(), key=b"14944")
    producer.flush()
    producer.close()
    # then a report with a valid token, behind it in the same partition: once it counts, the one
    # before it has been judged
    marker = system.unit_producer("14944")
    marker.send(ns.reports_topic, json.dumps(good("bound-marker", "14944", attended=5)).encode(), key=b"14944")
    marker.flush()
    marker.close()
    totals = wait_until(
        lambda: (
            (t := system.totals("14944", "2021-11"))["metrics"].get("study_session.members_attended") in (8, 48) and t
        ),
        timeout=90,
        what="the report after the revocation and the one behind it to be judged",
    )
    assert totals["metrics"]["study_session.members_attended"] == 8  # 3 + 5: the revoked token's report did not count
