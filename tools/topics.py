"""Create baocao's Kafka topics and grant who may use them (kafka-python admin, as the ``admin``
principal). Idempotent.

python -m tools.topics [--partitions 8]

Every topic gets the replication factor and ``min.insync.replicas`` of the environment (Replication):

    BAOCAO_KAFKA_REPLICATION_FACTOR   copies of each partition (1 on one broker; 3 on a cluster)
    BAOCAO_KAFKA_MIN_INSYNC_REPLICAS  copies an acks=all write waits for (1 on one broker; 2 on a
                                      cluster, so one broker may be down and writes go on)

The broker refuses every request no ACL allows (allow.everyone.if.no.acl.found=false):

    reports            ingest, unit: write · aggregate: read, write (forwarding)
    reports.state      aggregate: read, write
    reports.dead-letter aggregate: write (listed and replayed by admin)
    totals             aggregate: write · reader: read
    totals.approvals   aggregate: write · reader: read
    group <app id>     aggregate

So only the aggregator writes ``totals`` and ``totals.approvals`` (the approvals stream, named
after the totals topic: shared/domain/approvals.py; published from the API's approvals in MongoDB),
and a unit's system can write ``reports`` and nothing
else (what it writes there is still checked: services/aggregate/decode.py).
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass

from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ConfigResource,
    ConfigResourceType,
    KafkaAdminClient,
    NewTopic,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
)
from kafka.errors import TopicAlreadyExistsError

from services.aggregate.state import state_topic
from shared.adapters.kafka_credentials import KafkaCredentials, client_options, principal_credentials
from shared.domain.approvals import approvals_topic

log = logging.getLogger(__name__)

DEFAULT_PARTITIONS = 8
REPLICATION_FACTOR = "BAOCAO_KAFKA_REPLICATION_FACTOR"
MIN_INSYNC_REPLICAS = "BAOCAO_KAFKA_MIN_INSYNC_REPLICAS"


@dataclass(frozen=True)
class Replication:
    """How many copies of each partition the topics have (``factor``) and how many of them hold a
    message before an acks=all producer gets its acknowledgement (``min_insync``). With
    ``min_insync`` < ``factor``, a broker may be lost and writes go on; an acknowledged message is
    on ``min_insync`` brokers."""

    factor: int = 1
    min_insync: int = 1

    def __post_init__(self) -> None:
        if self.factor < 1:
            raise ValueError(f"{REPLICATION_FACTOR} must be at least 1, not {self.factor}")
        if not 1 <= self.min_insync <= self.factor:
            raise ValueError(
                f"{MIN_INSYNC_REPLICAS} must be between 1 and {REPLICATION_FACTOR} ({self.factor}), "
                f"not {self.min_insync}"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Replication:
        """From the two variables; without them 1/1 (one broker). ``min_insync`` defaults to 2
        when the factor is 2 or more: one copy besides the leader's before a write counts."""
        env = os.environ if env is None else env
        factor = _positive_int(env, REPLICATION_FACTOR, 1)
        return cls(factor, _positive_int(env, MIN_INSYNC_REPLICAS, min(factor, 2)))

    def env(self) -> dict[str, str]:
        return {REPLICATION_FACTOR: str(self.factor), MIN_INSYNC_REPLICAS: str(self.min_insync)}


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, not {raw!r}") from None


def topic_names(env: Mapping[str, str] | None = None) -> tuple[str, str, str]:
    env = dict(os.environ) if env is None else env
    return (
        env.get("BAOCAO_REPORTS_TOPIC", "reports"),
        env.get("BAOCAO_DEAD_LETTER_TOPIC", "reports.dead-letter"),
        env.get("BAOCAO_TOTALS_TOPIC", "totals"),
    )


REPORTS_CONFIGS = {"retention.ms": str(-1), "message.timestamp.type": "LogAppendTime"}
# Compacted topics read from the start (the API's follower, a restore without a snapshot): a
# segment is rolled every 15 minutes and cleaned once a fifth of it is superseded, so such a read
# costs about one record per key, not every record ever written, however long the history.
COMPACTED_CONFIGS = {"cleanup.policy": "compact", "segment.ms": str(15 * 60 * 1000), "min.cleanable.dirty.ratio": "0.2"}


def acl_grants(env: dict[str, str] | None = None) -> list[ACL]:
    """Every ACL the principals need on the topics (and consumer group) named by ``env``."""
    env = dict(os.environ) if env is None else env
    reports, dead, totals = topic_names(env)
    group = env.get("BAOCAO_AGGREGATE_APP_ID", "baocao-aggregate")
    read, write, describe = ACLOperation.READ, ACLOperation.WRITE, ACLOperation.DESCRIBE
    grants: list[tuple[str, ResourceType, str, tuple[ACLOperation, ...]]] = [
        ("ingest", ResourceType.TOPIC, reports, (write, describe)),
        ("unit", ResourceType.TOPIC, reports, (write, describe)),
        ("aggregate", ResourceType.TOPIC, reports, (read, write, describe)),
        ("aggregate", ResourceType.TOPIC, state_topic(reports), (read, write, describe)),
        ("aggregate", ResourceType.TOPIC, dead, (write, describe)),
        ("aggregate", ResourceType.TOPIC, totals, (write, describe)),
        ("aggregate", ResourceType.TOPIC, approvals_topic(totals), (write, describe)),
        ("aggregate", ResourceType.GROUP, group, (read, describe)),
        ("reader", ResourceType.TOPIC, totals, (read, describe)),
        ("reader", ResourceType.TOPIC, approvals_topic(totals), (read, describe)),
    ]
    return [
        ACL(f"User:{who}", "*", op, ACLPermissionType.ALLOW, ResourcePattern(kind, name))
        for who, kind, name, ops in grants
        for op in ops
    ]


def topic_specs(
    partitions: int, env: Mapping[str, str] | None = None, replication: Replication | None = None
) -> list[NewTopic]:
    """The project's topics, named by ``env``, each with ``replication`` (by default from ``env``
    and the environment: Replication.from_env)."""
    reports, dead, totals = topic_names(env)
    if replication is None:
        replication = Replication.from_env({**os.environ, **(env or {})})
    factor = replication.factor
    isr = {"min.insync.replicas": str(replication.min_insync)}
    return [
        # Ingest writes each report to its province's partition (services/aggregate/routing.py);
        # other producers may key as they like: the aggregator forwards what it finds elsewhere.
        # LogAppendTime: a message's timestamp is when the broker appended it, which a producer
        # cannot set; it is the receipt time of a report sent straight to Kafka (on time or late).
        NewTopic(reports, partitions, factor, topic_configs={**REPORTS_CONFIGS, **isr}),
        NewTopic(dead, 1, factor, topic_configs={"retention.ms": str(-1), **isr}),
        # Keyed by unit|series|period, compacted: reading from the start ends with current totals.
        NewTopic(totals, partitions, factor, topic_configs={**COMPACTED_CONFIGS, **isr}),
        # Keyed by unit/series/period, compacted: the last message of a key is its approval state;
        # a few messages a day, one partition.
        NewTopic(approvals_topic(totals), 1, factor, topic_configs={**COMPACTED_CONFIGS, **isr}),
        # The aggregator's changelog: the state of partition p of reports in its partition p.
        NewTopic(state_topic(reports), partitions, factor, topic_configs={**COMPACTED_CONFIGS, **isr}),
    ]


def create_topics(
    bootstrap: str,
    partitions: int = DEFAULT_PARTITIONS,
    env: dict[str, str] | None = None,
    credentials: KafkaCredentials | None = None,
) -> list[str]:
    """Creates the topics that do not exist, sets the configuration of those that do (the reports
    topic's LogAppendTime, every topic's min.insync.replicas: on a topic created before these
    rules too; a topic's replication factor is not changed here) and grants the ACLs. ``credentials``: the admin's, by
    default from ``env`` and the environment (the profile's credentials folder, else
    BAOCAO_KAFKA_USERNAME/PASSWORD)."""
    if credentials is None:
        credentials = principal_credentials({**os.environ, **(env or {})}, "admin")
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="baocao-topics", **client_options(credentials))
    created = []
    try:
        for spec in topic_specs(partitions, env):
            try:
                admin.create_topics([spec])
                created.append(spec.name)
            except TopicAlreadyExistsError:
                # the whole of the topic's own configuration: alter_configs replaces, not merges
                admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, spec.name, spec.topic_configs)])
        grants = acl_grants(env)
        result = admin.create_acls(grants)
        if result.get("failed"):
            raise RuntimeError(f"Kafka refused ACLs: {result['failed']}")
        _wait_for_acls(admin, grants)
    finally:
        admin.close()
    return created


def _acl_key(acl: ACL) -> tuple[str, str, str, str]:
    pattern = acl.resource_pattern
    return (acl.principal, acl.operation.name, pattern.resource_type.name, pattern.resource_name)


def _wait_for_acls(admin: KafkaAdminClient, grants: list[ACL], timeout_s: float = 30.0) -> None:
    """Returns once the broker enforces every grant: a broker applies new ACLs from the metadata
    log a moment after the controller accepted them, and a client that comes at once would be
    refused."""
    wanted = {_acl_key(acl) for acl in grants}
    every = ACLFilter(
        principal=None,
        host="*",
        operation=ACLOperation.ANY,
        permission_type=ACLPermissionType.ANY,
        resource_pattern=ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY),
    )
    deadline = time.monotonic() + timeout_s
    while True:
        found, _ = admin.describe_acls(every)
        missing = wanted - {_acl_key(acl) for acl in found}
        if not missing:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"ACLs not in force {timeout_s:.0f} s after Kafka accepted them: {sorted(missing)[:3]}")
        time.sleep(0.1)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"))
    parser.add_argument("--partitions", type=int, default=DEFAULT_PARTITIONS)
    args = parser.parse_args(argv)
    if not args.bootstrap:
        parser.error("set KAFKA_BOOTSTRAP_SERVERS or pass --bootstrap")
    created = create_topics(args.bootstrap, args.partitions)
    log.info("topics created: %s", ", ".join(created) or "none (all existed)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
