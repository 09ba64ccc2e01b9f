"""Move a deployment to more partitions of ``reports``, its state re-keyed, nothing lost or counted twice.

    python -m tools.partitions grow --to N [--bootstrap HOST:PORT]

Run it with the aggregator workers and ingest STOPPED (it refuses while the aggregator's consumer
group has members, or while the group has not committed everything on ``reports``: what ingest
acknowledged must have been applied first). Then start ingest and the workers again: they read the
new count at start. Environment as tools/topics.py (KAFKA_BOOTSTRAP_SERVERS, the admin's Kafka
credentials, BAOCAO_REPORTS_TOPIC, BAOCAO_AGGREGATE_APP_ID) and MONGODB_URI, MONGODB_DATABASE.

Each province's partition comes from the balanced table for the new count
(shared/domain/partitions.py), so provinces move between old partitions too, not only to the new
ones. The steps, each safe to run again after an interruption (the whole command is idempotent):

1. add partitions to ``reports`` and ``<reports>.state`` up to N (``totals`` is left as it is: it is
   keyed by document, not by province, and more partitions would split a document's history);
2. read the whole changelog and take, for every report, its latest revision as a restore would
   (the higher revision wins; a null value deletes the key, as compaction does);
3. when anything is to change, drop the workers' snapshots of the changelog's partitions
   (services/aggregate/snapshots.py): they hold a partition's state as it was, other provinces
   included; the workers then restore from the changelog;
4. write each report's latest record to its province's partition under N, and every report of a
   partition that loses any again to that same partition, and wait for the acknowledgements;
5. delete, on each partition that lost reports, everything before the end it had at step 2 (Kafka
   deletes records only from a topic whose cleanup policy includes ``delete``: the changelog is
   ``compact,delete`` with no time or size limit for that moment, then ``compact`` again, which
   every run makes sure of). A tombstone would not do: a restore reads every record up to the
   end, and until compaction runs the moved report's earlier record would still be there for the
   old partition's worker;
6. set the ``part`` of the stored totals documents (MongoDB ``totals``) to the new partition of
   their province: a worker deletes or rewrites the documents of its partition that its state
   does not hold, and must find exactly its provinces' documents there.

With N equal to the current count it re-keys only: the way from the placement of earlier versions
(CRC-32 of the province code) to the balanced table. Every report's latest record is held in
memory for the time of the command (about half a kilobyte each).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from services.aggregate import snapshots
from services.aggregate.placement import record_placement
from services.aggregate.state import state_topic
from shared.adapters.kafka_credentials import KafkaCredentials, client_options, principal_credentials
from shared.adapters.mongo import TOTALS, redact_uri
from shared.domain.partitions import partition_for
from tools.topics import COMPACTED_CONFIGS

# (partition, offset, key, value): one record of the changelog as read
Read = tuple[int, int, bytes, bytes | None]


class Refused(RuntimeError):
    """The deployment is not in a state to be moved: nothing was changed."""


@dataclass(frozen=True)
class Latest:
    """A report's latest record in one partition (or across them): its revision and bytes."""

    revision: int
    province: str
    value: bytes
    partition: int


@dataclass
class Plan:
    """What re-keying the changelog to ``partitions`` partitions writes and deletes."""

    partitions: int
    writes: list[tuple[int, bytes, bytes]] = field(default_factory=list)  # (partition, key, value)
    truncate: dict[int, int] = field(default_factory=dict)  # partition -> delete records before this offset
    moved: int = 0  # reports whose partition changes
    provinces: set[str] = field(default_factory=set)  # provinces whose reports move


def _latest(value: bytes, partition: int) -> Latest:
    raw: Any = json.loads(value)
    return Latest(int(raw["rev"]), str(raw["path"][-1]), value, partition)


def plan_rekey(records: Iterable[Read], ends: Mapping[int, int], partitions: int) -> Plan:
    """The writes and deletions that leave every report's latest record (the entry a restore
    would keep) in the partition of its province under ``partitions``, and nothing else in the
    partitions it left. ``records`` are every record below ``ends`` (partition -> end offset)."""
    per_partition: dict[int, dict[bytes, Latest]] = {p: {} for p in ends}
    for partition, offset, key, value in records:
        if offset >= ends[partition]:
            continue
        held = per_partition[partition]
        if value is None:  # a tombstone: compaction removes the key's records before it
            held.pop(key, None)
            continue
        entry = _latest(value, partition)
        before = held.get(key)
        if before is None or entry.revision >= before.revision:  # a later record of one revision wins
            held[key] = entry
    plan = Plan(partitions)
    # every report once, in the partition its province has under the new count
    wanted: dict[tuple[int, bytes], Latest] = {}
    for partition in sorted(per_partition):
        for key, entry in per_partition[partition].items():
            target = partition_for(entry.province, partitions)
            if target != partition:
                plan.truncate[partition] = ends[partition]
            best = wanted.get((target, key))
            # of one revision, the record already in place (a run interrupted after its writes)
            if best is None or (entry.revision, entry.partition == target) > (best.revision, best.partition == target):
                wanted[(target, key)] = entry
    for (target, key), entry in sorted(wanted.items()):
        if entry.partition != target:
            plan.moved += 1
            plan.provinces.add(entry.province)
        if target in plan.truncate:  # all of it goes: its reports are written again after the end
            plan.writes.append((target, key, entry.value))
            continue
        in_place = per_partition.get(target, {}).get(key)
        if in_place is None or in_place.revision < entry.revision:
            plan.writes.append((target, key, entry.value))
    return plan


@dataclass(frozen=True)
class Deployment:
    bootstrap: str
    credentials: KafkaCredentials | None
    reports: str
    group: str
    mongodb_uri: str
    database: str

    @classmethod
    def from_env(cls, env: Mapping[str, str], bootstrap: str | None = None) -> Deployment:
        servers = bootstrap or env.get("KAFKA_BOOTSTRAP_SERVERS", "")
        if not servers:
            raise Refused("set KAFKA_BOOTSTRAP_SERVERS or pass --bootstrap")
        uri = env.get("MONGODB_URI", "")
        if not uri:
            raise Refused("set MONGODB_URI: the stored totals documents are moved with their provinces")
        return cls(
            servers,
            principal_credentials(env, "admin"),
            env.get("BAOCAO_REPORTS_TOPIC", "reports"),
            env.get("BAOCAO_AGGREGATE_APP_ID", "baocao-aggregate"),
            uri,
            env.get("MONGODB_DATABASE", "baocao"),
        )

    def options(self) -> dict[str, Any]:
        return client_options(self.credentials)


@dataclass
class Report:
    """What a run did, as it prints it."""

    before: int
    after: int
    records_written: int = 0
    reports_moved: int = 0
    provinces_moved: list[str] = field(default_factory=list)
    partitions_truncated: list[int] = field(default_factory=list)
    documents_moved: int = 0
    snapshots_dropped: int = 0

    def lines(self) -> list[str]:
        grown = f"{self.before} -> {self.after}" if self.after != self.before else f"{self.after} (re-keyed only)"
        return [
            f"partitions of reports and its changelog: {grown}",
            f"reports moved to their province's partition: {self.reports_moved} "
            f"({self.records_written} records written)",
            f"provinces moved: {len(self.provinces_moved)} {' '.join(self.provinces_moved)}".rstrip(),
            "changelog partitions cut below their old end: "
            + (", ".join(map(str, self.partitions_truncated)) or "none"),
            f"totals documents given their new partition: {self.documents_moved}",
            f"snapshots of the state dropped (restored from the changelog next): {self.snapshots_dropped}",
        ]


def grow(deployment: Deployment, to: int) -> Report:
    admin = KafkaAdminClient(
        bootstrap_servers=deployment.bootstrap, client_id="baocao-partitions", **deployment.options()
    )
    try:
        state = state_topic(deployment.reports)
        counts = _partition_counts(admin, [deployment.reports, state])
        current = counts[deployment.reports]
        if to < current:
            raise Refused(
                f"--to {to}: {deployment.reports} has {current} partitions; Kafka cannot take partitions away"
            )
        if counts[state] > to:
            raise Refused(f"--to {to}: {state} has {counts[state]} partitions, more than {to}")
        _refuse_unless_idle(admin, deployment)
        grown = {t: to for t, n in counts.items() if n < to}
        if grown:
            admin.create_partitions(grown)
            _wait_for_partitions(admin, list(counts), to)
        report = Report(current, to)
        plan = _plan_from_changelog(deployment, state, to)
        if plan.writes or plan.truncate:
            # before the changelog changes: a snapshot holds a partition's state as it was
            report.snapshots_dropped = _drop_snapshots(deployment, state, to)
        _write(deployment, state, plan.writes)
        if plan.truncate:
            _truncate(admin, state, plan.truncate)
        _compact_only(admin, state)  # also after a run interrupted while truncating
        report.records_written = len(plan.writes)
        report.reports_moved = plan.moved
        report.provinces_moved = sorted(plan.provinces)
        report.partitions_truncated = sorted(plan.truncate)
        report.documents_moved = _move_documents(deployment, to)
        _record_placement(deployment, to)  # last: workers start again only on a whole move
        return report
    finally:
        admin.close()


def _partition_counts(admin: KafkaAdminClient, topics: list[str]) -> dict[str, int]:
    out = {}
    for described in admin.describe_topics(topics):
        if described.get("error_code"):
            raise Refused(f"topic {described['name']} not found (create the topics first: python -m tools.topics)")
        out[described["name"]] = len(described["partitions"])
    return out


def _wait_for_partitions(admin: KafkaAdminClient, topics: list[str], count: int, timeout_s: float = 30.0) -> None:
    """Returns once the brokers' metadata shows ``count`` partitions of every topic."""
    deadline = time.monotonic() + timeout_s
    while (counts := _partition_counts(admin, topics)) and any(n < count for n in counts.values()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"partitions not in the metadata {timeout_s:.0f} s after Kafka added them: {counts}")
        time.sleep(0.2)


def _refuse_unless_idle(admin: KafkaAdminClient, deployment: Deployment) -> None:
    """No worker in the consumer group, and every message of ``reports`` committed by it."""
    group = admin.describe_groups([deployment.group]).get(deployment.group, {})
    members = group.get("members") or []
    if members:
        raise Refused(
            f"consumer group {deployment.group} has {len(members)} active member(s): stop every aggregator "
            "worker (and ingest) first"
        )
    committed = admin.list_group_offsets({deployment.group: None}).get(deployment.group, {})
    consumer = KafkaConsumer(bootstrap_servers=deployment.bootstrap, **deployment.options())
    try:
        tps = [TopicPartition(deployment.reports, p) for p in sorted(consumer.partitions_for_topic(deployment.reports))]
        ends = consumer.end_offsets(tps)
        starts = consumer.beginning_offsets(tps)
    finally:
        consumer.close()
    behind = {}
    for tp in tps:
        done = committed[tp].offset if tp in committed and committed[tp].offset >= 0 else starts[tp]
        if ends[tp] > done:
            behind[tp.partition] = ends[tp] - done
    if behind:
        detail = ", ".join(f"partition {p}: {n}" for p, n in sorted(behind.items()))
        raise Refused(
            f"consumer group {deployment.group} has not applied every report of {deployment.reports} "
            f"({sum(behind.values())} behind; {detail}): start the workers until the lag is 0, stop them, run again"
        )


def _plan_from_changelog(deployment: Deployment, topic: str, partitions: int) -> Plan:
    """plan_rekey over the whole changelog as it is now, read as it is planned (only each
    report's latest record is kept)."""
    consumer = KafkaConsumer(
        bootstrap_servers=deployment.bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **deployment.options(),
    )
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        ends = {tp.partition: n for tp, n in consumer.end_offsets(tps).items()}
        consumer.seek_to_beginning(*tps)
        return plan_rekey(_every_record(consumer, tps, ends), ends, partitions)
    finally:
        consumer.close()


def _every_record(consumer: KafkaConsumer, tps: list[TopicPartition], ends: dict[int, int]) -> Iterator[Read]:
    remaining = {tp for tp in tps if consumer.position(tp) < ends[tp.partition]}
    while remaining:
        for tp, messages in consumer.poll(timeout_ms=1000, max_records=10_000).items():
            for m in messages:
                if m.offset < ends[tp.partition] and m.key is not None:
                    yield tp.partition, m.offset, m.key, m.value
        remaining = {tp for tp in remaining if consumer.position(tp) < ends[tp.partition]}


def _write(deployment: Deployment, topic: str, writes: list[tuple[int, bytes, bytes]]) -> None:
    if not writes:
        return
    producer = KafkaProducer(
        bootstrap_servers=deployment.bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        client_id="baocao-partitions",
        **deployment.options(),
    )
    try:
        sent = [producer.send(topic, key=key, value=value, partition=p) for p, key, value in writes]
        producer.flush()
        for future in sent:
            future.get(timeout=60)  # raises if the broker did not take it: nothing is deleted then
    finally:
        producer.close()


def _truncate(admin: KafkaAdminClient, topic: str, before: dict[int, int]) -> None:
    # a record is deleted only from a topic whose policy includes delete; no time or size limit
    # meanwhile, so nothing but what is asked here goes
    policy = {"cleanup.policy": "compact,delete", "retention.ms": "-1", "retention.bytes": "-1"}
    admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, policy)])
    try:
        admin.delete_records({TopicPartition(topic, p): offset for p, offset in before.items()})
    finally:
        _compact_only(admin, topic)


def _compact_only(admin: KafkaAdminClient, topic: str) -> None:
    """The changelog's policy as tools/topics.py makes it: compaction, no retention limit."""
    policy: dict[str, Any] = {
        **COMPACTED_CONFIGS,
        "retention.ms": ("DELETE", None),
        "retention.bytes": ("DELETE", None),
    }
    admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, policy)])


def _drop_snapshots(deployment: Deployment, topic: str, partitions: int) -> int:
    """Deletes every snapshot of the changelog's partitions (services/aggregate/snapshots.py):
    the workers then restore from the re-keyed changelog itself."""
    client: MongoClient[dict[str, Any]] = MongoClient(deployment.mongodb_uri, serverSelectionTimeoutMS=10_000)
    try:
        db = client[deployment.database]
        mine = {"$in": [f"{topic}/{p}" for p in range(partitions)]}  # a head's id (snapshots.py)
        dropped = db[snapshots.HEADS].delete_many({"_id": mine}).deleted_count
        db[snapshots.CHUNKS].delete_many({"head": mine})
        return dropped
    except PyMongoError as exc:
        raise RuntimeError(f"MongoDB at {redact_uri(deployment.mongodb_uri)}: {exc}") from exc
    finally:
        client.close()


def _record_placement(deployment: Deployment, partitions: int) -> None:
    client: MongoClient[dict[str, Any]] = MongoClient(deployment.mongodb_uri, serverSelectionTimeoutMS=10_000)
    try:
        record_placement(client, deployment.database, deployment.reports, partitions)
    except PyMongoError as exc:
        raise RuntimeError(f"MongoDB at {redact_uri(deployment.mongodb_uri)}: {exc}") from exc
    finally:
        client.close()


def _move_documents(deployment: Deployment, partitions: int) -> int:
    client: MongoClient[dict[str, Any]] = MongoClient(deployment.mongodb_uri, serverSelectionTimeoutMS=10_000)
    try:
        totals = client[deployment.database][TOTALS]
        moved = 0
        for province in sorted(totals.distinct("province")):
            part = partition_for(province, partitions)
            moved += totals.update_many(
                {"province": province, "part": {"$ne": part}}, {"$set": {"part": part}}
            ).modified_count
        return moved
    except PyMongoError as exc:
        raise RuntimeError(f"MongoDB at {redact_uri(deployment.mongodb_uri)}: {exc}") from exc
    finally:
        client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.partitions", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    grow_cmd = commands.add_parser("grow", help="move to N partitions (N at least the current count)")
    grow_cmd.add_argument("--to", type=int, required=True, metavar="N")
    grow_cmd.add_argument("--bootstrap", default=None, help="Kafka bootstrap servers (KAFKA_BOOTSTRAP_SERVERS)")
    args = parser.parse_args(argv)
    if args.to < 1:
        parser.error(f"--to must be at least 1, not {args.to}")
    try:
        report = grow(Deployment.from_env(os.environ, args.bootstrap), args.to)
    except Refused as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    for line in report.lines():
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
