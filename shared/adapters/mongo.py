"""MongoDB access shared by the services, through PyMongo's async API (AsyncMongoClient).

Motor, named in the original design, reached end of life in May 2026; PyMongo's own async API is
its official successor. Everything here stays within what both MongoDB 7 and FerretDB v1 support:
single-document atomic updates ($inc, $set), bulk writes, no multi-document transactions, no
change streams.

Collections:
    totals       one document per (unit, series, span): per period, summed fields and counters
                 (the serving view the aggregator writes; shared/domain/totals_docs.py)
    submissions  one document per (unit, report_id), _id "<unit>/<report_id>": its kind, the
                 revisions ingest accepted and its scope (the unit and its ancestors, each code
                 named with the tree of the report's period: "2025:38")
    agencies     agencies registered at runtime under a commune, a district or a province
    accounts     people's accounts, _id the username (shared/adapters/accounts.py)
    aggregate_snapshots, aggregate_snapshot_chunks
                 the aggregator's snapshots of its partitions' state (services/aggregate/snapshots.py)
"""

from __future__ import annotations

import re
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.read_concern import ReadConcern
from pymongo.read_preferences import Primary
from pymongo.write_concern import WriteConcern

TOTALS = "totals"
SUBMISSIONS = "submissions"
AGENCIES = "agencies"
ACCOUNTS = "accounts"
AUDIT_LOG = "audit_log"  # who did what, append-only (shared/adapters/audit.py)
MACHINE_TOKENS = "machine_tokens"  # tokens issued from the admin pages (shared/adapters/tokens.py)


READ_PREFERENCES = ("primary", "primaryPreferred", "secondary", "secondaryPreferred", "nearest")
# What decides access (revoked tokens, agencies, web sessions) is written to a majority of a
# replica set's members before it counts, so a primary's failover cannot roll it back (a revocation
# undone, a session back from the dead), and read from the primary at majority, so no member
# serves an older list. On a single server a majority is that server: the same settings hold.
# The timeout turns a set that lost its majority into an error instead of a wait without end.
ACCESS_WRITE_CONCERN = WriteConcern(w="majority", wtimeout=10_000)
ACCESS_READ_CONCERN = ReadConcern("majority")


def access_collection(
    client: AsyncMongoClient[dict[str, Any]], database: str, name: str
) -> AsyncCollection[dict[str, Any]]:
    """Collection ``name`` with the write and read concerns of what decides access."""
    return client[database].get_collection(
        name, write_concern=ACCESS_WRITE_CONCERN, read_concern=ACCESS_READ_CONCERN, read_preference=Primary()
    )


def make_client(
    uri: str, app_name: str, min_connections: int = 0, read_preference: str = "primary"
) -> AsyncMongoClient[dict[str, Any]]:
    """A client that fails fast when the server is away, so readiness probes answer promptly.

    ``min_connections`` are opened in the background and kept: PyMongo opens at most two at a
    time, so a burst of reads that finds too few open waits for them behind each other (the read
    API's first second under load: docs/benchmarks.md).

    ``read_preference`` (the API's MONGODB_READ_PREFERENCE) is where plain reads go on a replica set;
    writes and reads that are retried once after a network error or a failover (retryable
    writes and reads: replica sets only, a single server ignores them)."""
    if read_preference not in READ_PREFERENCES:
        raise ValueError(f"read preference {read_preference!r} is not one of {', '.join(READ_PREFERENCES)}")
    return AsyncMongoClient(
        uri,
        appname=app_name,
        readPreference=read_preference,
        retryWrites=True,
        retryReads=True,
        serverSelectionTimeoutMS=5000,
        connectTimeoutMS=5000,
        tz_aware=True,
        minPoolSize=min_connections,
    )


def redact_uri(uri: str) -> str:
    """``uri`` with the password of its login replaced by ``***``, for logs and printed output."""
    return re.sub(r"^(mongodb(?:\+srv)?://[^:@/]*):[^@/]*@", r"\1:***@", uri)


async def ensure_indexes(client: AsyncMongoClient[dict[str, Any]], database: str) -> None:
    db = client[database]
    await db[TOTALS].create_index([("part", 1)])  # an aggregator compares its partition's documents on restore
    # a database made by an older version has an index on (parents, series, span) that no query
    # uses and every write of the aggregator would keep up to date
    if "parents_1_series_1_span_1" in await db[TOTALS].index_information():
        await db[TOTALS].drop_index("parents_1_series_1_span_1")
    await db[AGENCIES].create_index([("parent", 1)])


async def ping(client: AsyncMongoClient[dict[str, Any]]) -> None:
    await client.admin.command("ping")
