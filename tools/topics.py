"""Create baocao's Kafka topics (kafka-python admin). Idempotent.

python -m tools.topics [--partitions 8]
"""

from __future__ import annotations

import argparse
import logging
import os

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

log = logging.getLogger(__name__)

DEFAULT_PARTITIONS = 8


def topic_names(env: dict[str, str] | None = None) -> tuple[str, str, str]:
    env = dict(os.environ) if env is None else env
    return (
        env.get("BAOCAO_REPORTS_TOPIC", "reports"),
        env.get("BAOCAO_DEAD_LETTER_TOPIC", "reports.dead-letter"),
        env.get("BAOCAO_TOTALS_TOPIC", "totals"),
    )


def state_topic(reports: str) -> str:
    """The aggregator's changelog: the latest revision of every report, compacted."""
    return f"{reports}.state"


def topic_specs(partitions: int, env: dict[str, str] | None = None) -> list[NewTopic]:
    reports, dead, totals = topic_names(env)
    return [
        # Ingest writes each report to its province's partition (services/aggregate/routing.py);
        # other producers may key as they like: the aggregator forwards what it finds elsewhere.
        NewTopic(reports, partitions, 1, topic_configs={"retention.ms": str(-1)}),
        NewTopic(dead, 1, 1, topic_configs={"retention.ms": str(-1)}),
        # Keyed by unit|series|period, compacted: reading from the start ends with current totals.
        NewTopic(totals, partitions, 1, topic_configs={"cleanup.policy": "compact"}),
        # The aggregator's changelog: the state of partition p of reports in its partition p.
        NewTopic(state_topic(reports), partitions, 1, topic_configs={"cleanup.policy": "compact"}),
    ]


def create_topics(bootstrap: str, partitions: int = DEFAULT_PARTITIONS, env: dict[str, str] | None = None) -> list[str]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="baocao-topics")
    created = []
    try:
        for spec in topic_specs(partitions, env):
            try:
                admin.create_topics([spec])
                created.append(spec.name)
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()
    return created


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
