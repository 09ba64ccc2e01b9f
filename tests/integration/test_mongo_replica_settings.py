"""What a replica set needs, against the local server (mongo-java-server, a single server): the
collections that decide access write with w=majority and read at majority from the primary,
which a single server must accept as it is; every read preference works; a backup made by
tools/mongo_backup.py (its PyMongo engine: MongoDB's mongodump cannot be installed here) restores
to the same documents and indexes."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from pymongo import MongoClient

from services.api.web.session import SESSIONS, MongoSessions
from shared.adapters.mongo import READ_PREFERENCES, access_collection, make_client
from shared.adapters.revocations import REVOKED, MongoRevocations
from tools import mongo_backup

pytestmark = pytest.mark.integration


@pytest.fixture
def database(infra):
    name = f"baocao_rs_{uuid.uuid4().hex[:8]}"
    yield name
    with MongoClient(infra["MONGODB_URI"]) as client:
        client.drop_database(name)


async def test_what_decides_access_is_written_at_majority_and_read_back(infra, database):
    client = make_client(infra["MONGODB_URI"], "test-replica-settings")
    try:
        revocations = MongoRevocations(client, database)
        await revocations.revoke("token-1", "test")
        # a second service's view: reads the list from the database, not from the first one's cache
        assert await MongoRevocations(client, database).is_revoked("token-1")

        sessions = MongoSessions(client, database)
        session_id, stored = await sessions.create("a.token", "token-2", time.time() + 600)
        found = await MongoSessions(client, database).get(session_id)
        assert found is not None and (found.key, found.token_id, found.csrf) == (stored.key, "token-2", stored.csrf)

        col = access_collection(client, database, REVOKED)
        assert col.write_concern.document == {"w": "majority", "wtimeout": 10000}
        assert col.read_concern.level == "majority"
        assert (await access_collection(client, database, SESSIONS).find_one({"_id": stored.key})) is not None
    finally:
        await client.close()


@pytest.mark.parametrize("mode", READ_PREFERENCES)
async def test_every_read_preference_reads_from_a_single_server(infra, database, mode):
    client = make_client(infra["MONGODB_URI"], "test-read-preference", read_preference=mode)
    try:
        await access_collection(client, database, "agencies").insert_one({"_id": "x", "parent": "38"})
        assert (await client[database]["agencies"].find_one({"_id": "x"})) == {"_id": "x", "parent": "38"}
    finally:
        await client.close()


def test_a_backup_restores_the_same_documents_and_indexes(infra, database, tmp_path: Path):
    uri = infra["MONGODB_URI"]
    copy = f"{database}_copy"
    with MongoClient(uri) as client:
        db = client[database]
        db["agencies"].insert_many(
            [{"_id": f"a{i}", "parent": str(i % 3), "name": f"Cơ quan {i}"} for i in range(2500)]
        )
        db["agencies"].create_index([("parent", 1)])
        db["revoked_tokens"].insert_one({"_id": "t1", "reason": "lost", "at": 1.5})
        db["totals"].insert_one({"_id": "u|s|2025", "periods": {"2025-01": {"sums": {"x": 3}}}})
        try:
            assert (
                mongo_backup.main(
                    ["dump", "--uri", uri, "--db", database, "--out", str(tmp_path), "--engine", "python"]
                )
                == 0
            )
            assert sorted(p.name for p in (tmp_path / database).iterdir()) == [
                "agencies.bson",
                "agencies.metadata.json",
                "revoked_tokens.bson",
                "revoked_tokens.metadata.json",
                "totals.bson",
                "totals.metadata.json",
            ]
            restored = mongo_backup.restore(uri, copy, tmp_path / database)
            assert restored == {"agencies": (2500, 0), "revoked_tokens": (1, 0), "totals": (1, 0)}
            for name in ("agencies", "revoked_tokens", "totals"):
                assert list(client[copy][name].find().sort("_id")) == list(db[name].find().sort("_id"))
            assert "parent_1" in client[copy]["agencies"].index_information()

            # again, without --drop: everything is there already and left as it is
            client[copy]["revoked_tokens"].update_one({"_id": "t1"}, {"$set": {"reason": "changed"}})
            again = mongo_backup.restore(uri, copy, tmp_path)
            assert again == {"agencies": (0, 2500), "revoked_tokens": (0, 1), "totals": (0, 1)}
            assert client[copy]["revoked_tokens"].find_one({"_id": "t1"})["reason"] == "changed"
            # with --drop: the backup's state
            mongo_backup.restore(uri, copy, tmp_path, drop=True)
            assert client[copy]["revoked_tokens"].find_one({"_id": "t1"})["reason"] == "lost"
        finally:
            client.drop_database(copy)
