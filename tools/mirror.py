"""Example consumer of the rolled-up stream: mirror one province's totals and approvals into SQLite.

    python -m tools.mirror --province 38 --db mirror.sqlite [--follow]

Reads the compacted totals topic from the beginning (kafka-python, no consumer group: the
mirror's state is the SQLite file) and keeps, per document id (unit|series|year or term), the
message with the highest version; each message holds every period of its document. It reads the
approvals topic next to it (``<totals>.approvals``, shared/data/approval-message.schema.json)
the same way and keeps, per approval id (unit/series/period), the last message: whether it is
approved now, by whom and when, or who unapproved it. Without --follow it stops once it has read
everything present when it started. ``read_mirror`` gives the totals per period,
``read_approvals`` the approvals that stand.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sqlite3
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from shared.adapters.kafka_credentials import KafkaCredentials, client_options, principal_credentials
from shared.domain.approvals import approvals_topic
from shared.domain.totals_stream import periods_of

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS totals (
    id TEXT PRIMARY KEY,
    unit TEXT NOT NULL,
    series TEXT NOT NULL,
    span TEXT NOT NULL,
    version INTEGER NOT NULL,
    message TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS approvals (
    id TEXT PRIMARY KEY,
    approved INTEGER NOT NULL,
    message TEXT NOT NULL
)
"""


def apply(db: sqlite3.Connection, message: dict[str, Any]) -> None:
    db.execute(
        """INSERT INTO totals (id, unit, series, span, version, message) VALUES (?, ?, ?, ?, ?, ?)
           ON CONFLICT(id) DO UPDATE SET version = excluded.version, message = excluded.message
           WHERE excluded.version > totals.version""",
        (message["id"], message["unit"], message["series"], message["span"], message["version"], json.dumps(message)),
    )


def apply_approval(db: sqlite3.Connection, message: dict[str, Any]) -> None:
    """The last message of an approval id is its state (the topic is read in order)."""
    db.execute(
        """INSERT INTO approvals (id, approved, message) VALUES (?, ?, ?)
           ON CONFLICT(id) DO UPDATE SET approved = excluded.approved, message = excluded.message""",
        (message["id"], int(message["approved"]), json.dumps(message)),
    )


def mirror(
    bootstrap: str,
    topic: str,
    province: str,
    db_path: str,
    follow: bool = False,
    credentials: KafkaCredentials | None = None,
) -> int:
    """Returns how many messages of the province it applied (totals and approvals). ``credentials``:
    a login allowed to read the two topics (the ``reader`` principal), by default from
    BAOCAO_KAFKA_USERNAME/PASSWORD."""
    db = sqlite3.connect(db_path)
    db.executescript(SCHEMA)
    if credentials is None:
        credentials = principal_credentials(os.environ, "reader")
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **client_options(credentials))
    applied = 0
    try:
        approvals = approvals_topic(topic)
        parts = [
            TopicPartition(t, p) for t in (topic, approvals) for p in sorted(consumer.partitions_for_topic(t) or ())
        ]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        end = consumer.end_offsets(parts)
        while follow or any(consumer.position(tp) < end[tp] for tp in parts):
            for records in consumer.poll(timeout_ms=1000).values():
                for record in records:
                    message = json.loads(record.value)
                    if province in message["parents"]:
                        (apply_approval if record.topic == approvals else apply)(db, message)
                        applied += 1
            db.commit()
    finally:
        consumer.close()
        db.commit()
        db.close()
    return applied


def read_mirror(db_path: str) -> dict[str, dict[str, Any]]:
    """The mirrored totals per period: id unit|series|period -> sums, counters, version."""
    db = sqlite3.connect(db_path)
    try:
        out: dict[str, dict[str, Any]] = {}
        for (message,) in db.execute("SELECT message FROM totals"):
            out.update(periods_of(json.loads(message)))
        return out
    finally:
        db.close()


def read_approvals(db_path: str) -> dict[str, dict[str, Any]]:
    """The mirrored approvals that stand: id unit/series/period -> the approval's message."""
    db = sqlite3.connect(db_path)
    try:
        return {i: json.loads(m) for i, m in db.execute("SELECT id, message FROM approvals WHERE approved = 1")}
    finally:
        db.close()


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--province", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--follow", action="store_true")
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"))
    parser.add_argument("--topic", default=os.environ.get("BAOCAO_TOTALS_TOPIC", "totals"))
    args = parser.parse_args(argv)
    if not args.bootstrap:
        parser.error("set KAFKA_BOOTSTRAP_SERVERS or pass --bootstrap")
    n = mirror(args.bootstrap, args.topic, args.province, args.db, args.follow)
    log.info("applied %d messages for province %s into %s", n, args.province, args.db)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
