"""The three services as real processes, for end-to-end and chaos tests."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from kafka import KafkaProducer

from deploy.processes import ServiceProcess, aggregate_process, http_process
from shared.domain.auth import COUNTRY, Scope, mint
from shared.domain.stamps import TOKEN_HEADER
from tests.conftest import TEST_SECRET, Namespace, wait_until


class UnitProducer:
    """A unit's own system producing straight to Kafka: it logs in as the ``unit`` principal and
    sends its token in the ``baocao-token`` header of every message (none when ``token`` is None)."""

    def __init__(self, namespace: Namespace, token: str | None, **options: Any) -> None:
        self.producer = KafkaProducer(
            bootstrap_servers=namespace.env["KAFKA_BOOTSTRAP_SERVERS"],
            acks="all",
            **namespace.kafka_options("unit"),
            **options,
        )
        self.headers = [(TOKEN_HEADER, token.encode())] if token is not None else []

    def send(self, topic: str, value: bytes, key: bytes | None = None, partition: int | None = None) -> Any:
        return self.producer.send(topic, value=value, key=key, partition=partition, headers=self.headers)

    def flush(self) -> None:
        self.producer.flush()

    def close(self) -> None:
        self.producer.close()


@dataclass
class System:
    namespace: Namespace
    run_dir: Path
    ingest: ServiceProcess
    api: ServiceProcess
    aggregators: list[ServiceProcess] = field(default_factory=list)

    @property
    def admin_token(self) -> str:
        return mint(TEST_SECRET, COUNTRY, list(Scope), 3600)

    def token(self, unit: str, *scopes: Scope) -> str:
        return mint(TEST_SECRET, unit, scopes, 3600)

    def unit_producer(self, unit: str = COUNTRY, token: str | None = "mint") -> UnitProducer:
        """A producer straight to Kafka with a submit token of ``unit`` (or the given ``token``)."""
        return UnitProducer(self.namespace, self.token(unit, Scope.SUBMIT) if token == "mint" else token)

    def client(self, url: str, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token or self.admin_token}"}
        return httpx.Client(base_url=url, headers=headers, timeout=30)

    def add_aggregator(self, name: str | None = None) -> ServiceProcess:
        proc = aggregate_process(self.run_dir, self.namespace.env, name=name or f"aggregate{len(self.aggregators)}")
        proc.start()
        proc.wait_ready(90)
        self.aggregators.append(proc)
        return proc

    def totals(self, unit: str, period: str) -> dict[str, Any]:
        with self.client(self.api.url) as http:
            r = http.get(f"/v1/units/{unit}/totals", params={"period": period})
            r.raise_for_status()
            return r.json()  # type: ignore[no-any-return]

    def wait_for_metric(self, unit: str, period: str, metric: str, value: Any, timeout: float = 90) -> dict[str, Any]:
        return wait_until(
            lambda: (t := self.totals(unit, period))["metrics"].get(metric) == value and t,
            timeout=timeout,
            what=f"{metric} of {unit} in {period} to be {value}",
        )

    def stop(self) -> None:
        for proc in [self.ingest, self.api, *self.aggregators]:
            proc.stop()


def own_system(infra: dict[str, str], partitions: int = 4) -> Iterator[System]:
    """A module's system (``yield from`` it in a module-scoped fixture): the services on topics
    and a database of their own, stopped when the module is done."""
    from tools.topics import create_topics

    namespace = Namespace(uuid.uuid4().hex[:8], infra)
    create_topics(infra["KAFKA_BOOTSTRAP_SERVERS"], partitions, namespace.env)
    system = start_system(namespace)
    try:
        yield system
    finally:
        system.stop()


def start_system(namespace: Namespace, aggregators: int = 1, env: dict[str, str] | None = None) -> System:
    """The services on the namespace's topics and database; ``env``: more settings for them."""
    run_dir = Path(tempfile.mkdtemp(prefix=f"baocao-{namespace.suffix}-"))
    ingest = http_process("ingest", run_dir, {**namespace.env, **(env or {})})
    api = http_process("api", run_dir, {**namespace.env, **(env or {}), "BAOCAO_API_INGEST_URL": ingest.url})
    system = System(namespace, run_dir, ingest, api)
    for proc in (ingest, api):
        proc.start()
    for proc in (ingest, api):
        proc.wait_ready(60)
    for _ in range(aggregators):
        system.add_aggregator()
    return system
