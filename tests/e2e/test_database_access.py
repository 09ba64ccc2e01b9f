"""Who may use the database, against the running server and services: a client must log in
(SCRAM-SHA-256) before it reads or writes anything, so nobody without the password can delete a
revocation and bring a revoked token back; the services, given MONGODB_URI with the login, work."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import pytest
from pymongo import MongoClient
from pymongo.errors import OperationFailure

from shared.adapters.revocations import REVOKED
from shared.domain.auth import Scope, mint, verify
from tests.conftest import TEST_SECRET, wait_until

pytestmark = pytest.mark.e2e

UNAUTHORIZED = 13
AUTHENTICATION_FAILED = 18


def address(uri: str) -> str:
    return urlsplit(uri).netloc.rpartition("@")[2]


def client(uri: str) -> MongoClient:
    return MongoClient(uri, serverSelectionTimeoutMS=5000, connectTimeoutMS=5000)


def attempts(db):
    """Everything a client that got in could do to the access data, each a callable."""
    col = db[REVOKED]
    return {
        "find": lambda: col.find_one({}),
        "count": lambda: col.count_documents({}),
        "insert": lambda: col.insert_one({"_id": "forged", "reason": "x"}),
        "delete": lambda: col.delete_many({}),
        "update": lambda: col.update_many({}, {"$set": {"_id": "other"}}),
        "drop": lambda: col.drop(),
        "agencies": lambda: db["agencies"].insert_one({"_id": "99999", "parent": "38"}),
        "list databases": lambda: db.client.list_database_names(),
        "ping": lambda: db.client.admin.command("ping"),
        "server status": lambda: db.client.admin.command("serverStatus"),
        "drop database": lambda: db.client.drop_database(db.name),
    }


def test_an_unauthenticated_client_cannot_undo_a_revocation(system):
    uri = system.namespace.env["MONGODB_URI"]
    database = system.namespace.database
    token = mint(TEST_SECRET, "38", [Scope.READ], 3600)
    token_id = verify(TEST_SECRET, token).token_id
    with system.client(system.api.url, token) as http:
        assert http.get("/v1/units/38").status_code == 200  # the services work with the login
        with client(uri) as admin:
            admin[database][REVOKED].insert_one({"_id": token_id, "reason": "test", "at": time.time()})
        wait_until(lambda: http.get("/v1/units/38").status_code == 401, timeout=30, what="the revocation")

        anonymous = client(f"mongodb://{address(uri)}/")
        try:
            for name, attempt in attempts(anonymous[database]).items():
                with pytest.raises(OperationFailure) as refused:
                    attempt()
                assert refused.value.code == UNAUTHORIZED, (name, refused.value.details)
        finally:
            anonymous.close()

        with client(uri) as admin:
            assert admin[database][REVOKED].find_one({"_id": token_id}) is not None
            assert admin[database][REVOKED].find_one({"_id": "forged"}) is None
        # past the services' revocation cache (5 s): the token is still refused
        time.sleep(6)
        assert http.get("/v1/units/38").status_code == 401


@pytest.mark.parametrize("user", ["baocao", "nobody"])
def test_a_client_with_a_wrong_password_or_an_unknown_user_is_refused(namespace, user):
    uri = namespace.env["MONGODB_URI"]
    assert urlsplit(uri).password, "the test stack's MONGODB_URI carries no login"
    bad = MongoClient(
        f"mongodb://{address(uri)}/",
        username=user,
        password="wrong-password",
        authSource="admin",
        authMechanism="SCRAM-SHA-256",
        serverSelectionTimeoutMS=5000,
    )
    try:
        for name, attempt in attempts(bad[namespace.database]).items():
            with pytest.raises(OperationFailure) as refused:
                attempt()
            assert refused.value.code == AUTHENTICATION_FAILED, (name, refused.value.details)
    finally:
        bad.close()


def test_a_client_asking_for_another_mechanism_is_told_which_one(namespace):
    uri = namespace.env["MONGODB_URI"]
    parts = urlsplit(uri)
    sha1 = client(f"mongodb://{parts.netloc}/?authSource=admin&authMechanism=SCRAM-SHA-1")
    try:
        with pytest.raises(OperationFailure, match="SCRAM-SHA-256") as refused:
            sha1[namespace.database][REVOKED].delete_many({})
        assert refused.value.code != 0
    finally:
        sha1.close()
