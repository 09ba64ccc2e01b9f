"""Fixtures shared by the suites.

Unit tests need nothing. Integration and end-to-end tests get real servers: the ones named by
KAFKA_BOOTSTRAP_SERVERS and MONGODB_URI when set, otherwise a fresh local Kafka and
mongo-java-server started here (profile "test-<pid>", data under .run/test-<pid>), stopped and
removed at the end. Each test gets its own topics, database and consumer group, so tests never
see each other's data.
"""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest

from shared.adapters.kafka_credentials import (
    CREDENTIALS_DIR,
    PROTOCOL,
    SSL_CAFILE,
    KafkaCredentials,
    client_options,
    principal_credentials,
)
from tools.topics import MIN_INSYNC_REPLICAS, REPLICATION_FACTOR

T = TypeVar("T")
TEST_SECRET = "test-secret-" + "x" * 40
# one stack profile per pytest process, so two sessions on one machine never share servers
TEST_PROFILE = f"test-{os.getpid()}"
# what the tests take from the environment when the servers are external
EXTERNAL = (
    "KAFKA_BOOTSTRAP_SERVERS",
    "MONGODB_URI",
    CREDENTIALS_DIR,
    PROTOCOL,
    SSL_CAFILE,
    REPLICATION_FACTOR,
    MIN_INSYNC_REPLICAS,
)


@contextlib.contextmanager
def refused_sockets_collected() -> Iterator[None]:
    """kafka-python leaves the sockets of connections a stopped or starting broker refused to the
    garbage collector, whose ResourceWarnings are not about the system under test."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            yield
        finally:
            gc.collect()


def wait_until(
    check: Callable[[], T | None], timeout: float = 60.0, interval: float = 0.25, what: str = "condition"
) -> T:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


@pytest.fixture(scope="session")
def infra() -> Iterator[dict[str, str]]:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS") and os.environ.get("MONGODB_URI"):
        # External servers: BAOCAO_KAFKA_CREDENTIALS_DIR names a folder of <principal>.env files
        # (as deploy/stack.py writes them) for the tests that act as each principal.
        yield {name: os.environ[name] for name in EXTERNAL if os.environ.get(name)}
        return
    yield from _local_stack(TEST_PROFILE)


def _local_stack(name: str) -> Iterator[dict[str, str]]:
    from deploy import stack

    profile = stack.Profile(name)
    stack.stop(profile)
    shutil.rmtree(profile.dir, ignore_errors=True)
    endpoints = stack.start(profile)
    try:
        yield endpoints
    finally:
        stack.stop(profile)
        shutil.rmtree(profile.dir, ignore_errors=True)


@dataclass
class Namespace:
    """Names private to one test: topics, database, consumer group."""

    suffix: str
    endpoints: dict[str, str]

    @property
    def env(self) -> dict[str, str]:
        return {
            **self.endpoints,
            "BAOCAO_REPORTS_TOPIC": f"reports-{self.suffix}",
            "BAOCAO_DEAD_LETTER_TOPIC": f"dead-{self.suffix}",
            "BAOCAO_TOTALS_TOPIC": f"totals-{self.suffix}",
            "MONGODB_DATABASE": f"baocao_{self.suffix}",
            "BAOCAO_AGGREGATE_APP_ID": f"aggregate-{self.suffix}",
            "BAOCAO_AUTH_SECRET": TEST_SECRET,
            "BAOCAO_LOG_LEVEL": "INFO",
        }

    def credentials(self, principal: str) -> KafkaCredentials | None:
        """The Kafka login of ``principal`` (admin, ingest, aggregate, reader, unit)."""
        return principal_credentials(self.endpoints, principal)

    def kafka_options(self, principal: str) -> dict[str, Any]:
        """kafka-python/aiokafka keyword arguments to log in as ``principal``."""
        return client_options(self.credentials(principal))

    @property
    def reports_topic(self) -> str:
        return self.env["BAOCAO_REPORTS_TOPIC"]

    @property
    def dead_letter_topic(self) -> str:
        return self.env["BAOCAO_DEAD_LETTER_TOPIC"]

    @property
    def database(self) -> str:
        return self.env["MONGODB_DATABASE"]


@pytest.fixture
def namespace(infra: dict[str, str]) -> Namespace:
    from tools.topics import create_topics

    ns = Namespace(uuid.uuid4().hex[:8], infra)
    create_topics(infra["KAFKA_BOOTSTRAP_SERVERS"], 4, ns.env)
    return ns
