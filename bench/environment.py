"""What a benchmark run talks to: Kafka and the database, the names private to the run, and the
service processes (deploy.processes).

The servers are the ones named by KAFKA_BOOTSTRAP_SERVERS and MONGODB_URI when both are set
(nothing is started then); otherwise a fresh local stack, profile "bench" (data under .run/bench),
started here and stopped at the end.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from deploy import stack
from deploy.processes import ServiceProcess, aggregate_process, http_process, service_env
from services.aggregate.state import state_topic
from shared.adapters.kafka_credentials import CREDENTIALS_DIR, client_options, principal_credentials
from shared.adapters.mongo import redact_uri
from shared.domain.auth import Scope, mint
from shared.domain.hierarchy import COUNTRY
from tools.topics import create_topics, topic_names

log = logging.getLogger(__name__)

PROFILE = "bench"
# Each role has its own topics, database and consumer group, so that phases never see each
# other's messages or documents:
#   limits  raw aiokafka produce / consume, no service
#   load    the ingest process measured for throughput (nothing consumes its topic)
#   main    the backlog, the aggregator that drains it, and the read API over the result
#   fresh   ingest -> aggregator -> read API at a steady rate, from an empty database
ROLES = ("limits", "load", "main", "fresh")
INGEST_RATE_LIMIT = 1_000_000  # reports/s per token


@dataclass(frozen=True)
class Servers:
    endpoints: dict[str, str]
    started_here: bool
    pids: dict[str, int] = field(default_factory=dict)  # of the servers started here

    @property
    def bootstrap(self) -> str:
        return self.endpoints["KAFKA_BOOTSTRAP_SERVERS"]

    @property
    def mongodb_uri(self) -> str:
        return self.endpoints["MONGODB_URI"]

    def kafka_options(self, principal: str) -> dict[str, str]:
        """kafka-python/aiokafka keyword arguments to log in as ``principal``."""
        return client_options(principal_credentials({**os.environ, **self.endpoints}, principal))


@contextmanager
def servers() -> Iterator[Servers]:
    """The external servers, or a fresh local stack for the duration of the block."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS") and os.environ.get("MONGODB_URI"):
        endpoints = {
            k: os.environ[k] for k in ("KAFKA_BOOTSTRAP_SERVERS", "MONGODB_URI", CREDENTIALS_DIR) if k in os.environ
        }
        log.info("using the servers from the environment: %s", {k: redact_uri(v) for k, v in endpoints.items()})
        yield Servers(endpoints, started_here=False)
        return
    profile = stack.Profile(PROFILE)
    log.info("starting Kafka and the database (profile %s, data under %s)", PROFILE, profile.dir)
    try:
        endpoints = _fresh_start(profile)
        state = profile.load()
        pids: dict[str, int] = {name: int(state[name]["pid"]) for name in ("kafka", "mongodb") if name in state}
        yield Servers(endpoints, started_here=True, pids=pids)
    finally:
        log.info("stopping the servers of profile %s", PROFILE)
        stack.stop(profile)


def _fresh_start(profile: stack.Profile, attempts: int = 2) -> dict[str, str]:
    """Start the profile's servers on empty data. A failed start is tried once more from
    scratch: deploy.stack can draw a Kafka cluster id that starts with '-', which Kafka's
    storage tool then reads as an option (about one start in 64)."""
    for attempt in range(1, attempts + 1):
        stack.stop(profile)  # what a previous run or attempt left running
        _wipe_stack_data(profile)
        try:
            return stack.start(profile)
        except stack.StackError as exc:
            if attempt == attempts:
                raise
            log.warning("starting the servers failed, trying once more: %s", str(exc)[:300])
    raise AssertionError("unreachable")


def _wipe_stack_data(profile: stack.Profile) -> None:
    """Remove the previous run's broker and database files (and the ports it chose)."""
    for name in ("kafka", "mongodb"):
        shutil.rmtree(profile.dir / name, ignore_errors=True)
    profile.state_file.unlink(missing_ok=True)


@dataclass
class RunNames:
    """Topics, database, consumer group and signing key private to one run."""

    suffix: str = field(default_factory=lambda: secrets.token_hex(4))
    secret: str = field(default_factory=lambda: "bench-" + secrets.token_hex(24))

    def database(self, role: str) -> str:
        return f"bench_{self.suffix}_{role}"

    def consumer_group(self, role: str) -> str:
        return f"bench-aggregate-{role}-{self.suffix}"

    def env(self, endpoints: dict[str, str], role: str) -> dict[str, str]:
        """The variables the services read (see tests/conftest.py Namespace.env)."""
        return {
            **endpoints,
            "BAOCAO_REPORTS_TOPIC": f"bench-{role}-reports-{self.suffix}",
            "BAOCAO_DEAD_LETTER_TOPIC": f"bench-{role}-dead-{self.suffix}",
            "BAOCAO_TOTALS_TOPIC": f"bench-{role}-totals-{self.suffix}",
            "MONGODB_DATABASE": self.database(role),
            "BAOCAO_AGGREGATE_APP_ID": self.consumer_group(role),
            "BAOCAO_AUTH_SECRET": self.secret,
            "BAOCAO_LOG_LEVEL": "INFO",
            "BAOCAO_PROVINCES": "",  # the whole country, whatever the caller's environment says
            # Ingest's per-token rate limit guards against runaway clients; lifted here so that
            # the figures show what ingest can do, not the guard's setting.
            "BAOCAO_INGEST_RATE_LIMIT_PER_SECOND": str(INGEST_RATE_LIMIT),
        }

    def reports_topic(self, role: str) -> str:
        return self.env({}, role)["BAOCAO_REPORTS_TOPIC"]

    def topics(self) -> list[str]:
        names = []
        for role in ROLES:
            reports, dead, totals = topic_names(self.env({}, role))
            names += [reports, dead, totals, state_topic(reports)]
        return names

    def token(self) -> str:
        """A country-wide token with every scope, valid for an hour: minted per phase or per
        client (ingest rate-limits each token on its own)."""
        return mint(self.secret, COUNTRY, list(Scope), 3600)


def create_run_topics(servers: Servers, names: RunNames, partitions: int) -> None:
    for role in ROLES:
        create_topics(servers.bootstrap, partitions, names.env(servers.endpoints, role))
    log.info("created topics for run %s (%d partitions each)", names.suffix, partitions)


def drop_run_data(servers: Servers, names: RunNames) -> None:
    """Delete the run's topics and database (used on shared servers). Best effort."""
    from kafka.admin import KafkaAdminClient
    from kafka.errors import KafkaError
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    with suppress(KafkaError, OSError):
        admin = KafkaAdminClient(
            bootstrap_servers=servers.bootstrap, client_id="baocao-bench", **servers.kafka_options("admin")
        )
        try:
            admin.delete_topics(names.topics())
        finally:
            admin.close()
    with suppress(PyMongoError):
        client: MongoClient[dict[str, Any]] = MongoClient(servers.mongodb_uri, serverSelectionTimeoutMS=5000)
        try:
            for role in ROLES:
                client.drop_database(names.database(role))
        finally:
            client.close()
    log.info("deleted the topics and the database of run %s", names.suffix)


def wait_database_idle(uri: str, timeout_s: float, fast_s: float = 0.05, in_a_row: int = 3) -> float:
    """Wait until the database answers ``in_a_row`` pings in a row within ``fast_s`` each, or
    ``timeout_s`` passes; return the seconds waited.

    A server that runs one command at a time (mongo-java-server) keeps executing a long bulk
    write after its client is gone; a phase that starts then measures that write, not itself.
    """
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    started = time.perf_counter()
    client: MongoClient[dict[str, Any]] = MongoClient(uri, serverSelectionTimeoutMS=5000, socketTimeoutMS=30000)
    try:
        fast = 0
        while fast < in_a_row and time.perf_counter() - started < timeout_s:
            sent = time.perf_counter()
            try:
                client.admin.command("ping")
                fast = fast + 1 if time.perf_counter() - sent <= fast_s else 0
            except PyMongoError:
                fast = 0
            time.sleep(0.1)
    finally:
        client.close()
    waited = time.perf_counter() - started
    if waited > 1:
        log.info("the database was busy for %.1f s before it answered promptly again", waited)
    return waited


class Services:
    """The service processes of one run; every one started here is stopped by stop_all()."""

    def __init__(self, servers: Servers, names: RunNames) -> None:
        self.servers = servers
        self.names = names
        self.run_dir = stack.Profile(PROFILE).dir / "runs" / names.suffix
        self.started: list[ServiceProcess] = []

    def _env(self, role: str) -> dict[str, str]:
        return service_env(self.servers.endpoints, self.names.env(self.servers.endpoints, role))

    def http(self, kind: str, role: str) -> ServiceProcess:
        """An ingest or api process for ``role``, started (call wait_ready before use)."""
        proc = http_process(kind, self.run_dir / role, self._env(role))
        self._start(proc)
        return proc

    def aggregator(self, role: str, name: str = "aggregate", env: dict[str, str] | None = None) -> ServiceProcess:
        """An aggregate worker for ``role``, started; workers of one role share its consumer group
        (each its own ``name``: data directory and log); ``env``: more settings."""
        proc = aggregate_process(self.run_dir / role, {**self._env(role), **(env or {})}, name=name)
        self._start(proc)
        return proc

    def faust_consumer(self, role: str, expected: int, result: Path) -> ServiceProcess:
        """bench.faust_limit in an aggregate worker's environment for ``role``, started: it
        writes what it measured to ``result`` and stops."""
        worker = aggregate_process(self.run_dir / role, self._env(role), name="faust-limit")
        proc = replace(worker, module="bench.faust_limit", args=[str(expected), str(result)])
        self._start(proc)
        return proc

    def _start(self, proc: ServiceProcess) -> None:
        proc.start()
        self.started.append(proc)
        log.info("started %s (pid %s, %s, log %s)", proc.name, proc.pid, proc.url, proc.log_path)

    def stop(self, proc: ServiceProcess) -> None:
        proc.stop()
        log.info("stopped %s (pid %s)", proc.name, proc.pid)

    def stop_all(self) -> None:
        for proc in reversed(self.started):
            if proc.alive():
                self.stop(proc)

    @property
    def logs(self) -> Path:
        return self.run_dir
