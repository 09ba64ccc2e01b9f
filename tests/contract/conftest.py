"""What the contract tests share: a client on a fresh database of the real server, for the
MongoDB side of each contract (the in-memory side needs nothing)."""

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from shared.adapters.mongo import make_client

MEMORY_AND_MONGODB = ["memory", pytest.param("mongodb", marks=pytest.mark.integration)]


@asynccontextmanager
async def fresh_database(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[AsyncMongoClient[dict[str, Any]], str]]:
    """(client, database name): a database no other test uses, on the servers of `infra`."""
    infra = request.getfixturevalue("infra")
    client = make_client(infra["MONGODB_URI"], "contract-test")
    try:
        yield client, f"contract_{uuid.uuid4().hex[:8]}"
    finally:
        await client.close()
