"""docker-compose.yml's Kafka, run here without a container engine: the three nodes' own start
script (deploy/kafka/compose-start.sh) with the TLS material of deploy/compose-secrets.sh, on this
machine's Kafka jars. Only what a container gives differently is changed: the node names kafka-N
become localhost (the certificates name both), each node gets its own ports, and the files are in
a temporary folder instead of /run/secrets, /var/lib/kafka/data and /opt/kafka. Then the `topics`
job's work (tools/topics.py as admin over SASL_SSL, 3 copies, 2 in sync) and a report written as
ingest with acks=all and read back as aggregate."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient
from kafka.errors import ClusterAuthorizationFailedError, TopicAuthorizationFailedError

from deploy.stack import free_port
from shared.adapters.kafka_credentials import KafkaCredentials, client_options
from tests.conftest import refused_sockets_collected
from tools.topics import create_topics

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
LIB = ROOT / ".cache" / "kafka" / "lib"
PASSWORDS = {p: f"pw-{p.lower()}-{os.getpid()}" for p in ("ADMIN", "INGEST", "AGGREGATE", "READER", "UNIT")}


def node_script(tmp: Path, node: int, ports: dict[int, tuple[int, int]]) -> Path:
    """compose-start.sh for ``node``, with names, ports and paths of this machine."""
    text = (ROOT / "deploy" / "kafka" / "compose-start.sh").read_text()
    client, controller = ports[node]
    voters = ",".join(f"{n}@localhost:{c}" for n, (_, c) in sorted(ports.items()))
    home = tmp / f"node{node}"
    replacements = [
        ("controller.quorum.voters=1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093", f"controller.quorum.voters={voters}"),
        ("listeners=SASL_SSL://:9092,CONTROLLER://:9093", f"listeners=SASL_SSL://:{client},CONTROLLER://:{controller}"),
        ("advertised.listeners=SASL_SSL://kafka-${id}:9092", f"advertised.listeners=SASL_SSL://localhost:{client}"),
        ("/run/secrets/kafka-broker.pem", str(tmp / "secrets" / f"kafka-{node}.pem")),
        ("/run/secrets/kafka-ca.pem", str(tmp / "secrets" / "kafka-ca.pem")),
        ("/var/lib/kafka/data", str(home / "data")),
        ("/tmp/baocao-server.properties", str(home / "server.properties")),
        ("/tmp/baocao-admin-client.properties", str(home / "admin.properties")),
        ("/opt/kafka/bin/", str(tmp / "bin") + "/"),
    ]
    for old, new in replacements:
        assert old in text, f"compose-start.sh no longer has {old!r}: update this test"
        text = text.replace(old, new)
    home.mkdir()
    script = home / "start.sh"
    script.write_text(text)
    return script


def java_tool(tmp: Path, name: str, main: str) -> None:
    logs = tmp / "logs"
    (tmp / "bin" / name).write_text(
        "#!/bin/bash\n"
        f'exec java -Xmx384m -Dkafka.logs.dir="{logs}/$BAOCAO_KAFKA_NODE_ID" '
        f"-Dlog4j2.configurationFile={ROOT / 'deploy' / 'kafka' / 'log4j2.properties'} "
        f'-cp "{LIB}/*" {main} "$@"\n'
    )
    (tmp / "bin" / name).chmod(0o755)


@pytest.fixture
def cluster(tmp_path: Path):
    if not LIB.is_dir():
        pytest.fail("Kafka is not installed: run deploy/install.sh")
    subprocess.run(
        ["bash", str(ROOT / "deploy" / "compose-secrets.sh"), str(tmp_path / "secrets")],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    (tmp_path / "bin").mkdir()
    java_tool(tmp_path, "kafka-storage.sh", "kafka.tools.StorageTool")
    java_tool(tmp_path, "kafka-server-start.sh", "kafka.Kafka")
    ports = {n: (free_port(), free_port()) for n in (1, 2, 3)}
    env = {**os.environ, "CLUSTER_ID": "8JmZGDWiSkqBbclR4eWfAQ"}
    env.update({f"BAOCAO_KAFKA_{p}_PASSWORD": pw for p, pw in PASSWORDS.items()})
    procs = []
    try:
        for node in (1, 2, 3):
            script = node_script(tmp_path, node, ports)
            with (script.parent / "stdout.log").open("wb") as log:  # the node keeps its own copy
                procs.append(
                    subprocess.Popen(
                        ["bash", str(script)],
                        env={**env, "BAOCAO_KAFKA_NODE_ID": str(node)},
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
        yield tmp_path, ",".join(f"localhost:{c}" for c, _ in ports.values())
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


def wait_for_listeners(bootstrap: str, deadline: float) -> None:
    for address in bootstrap.split(","):
        host, port = address.rsplit(":", 1)
        while True:
            try:
                socket.create_connection((host, int(port)), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"no node listens on {address}") from None
                time.sleep(1)


def login(tmp: Path, principal: str) -> KafkaCredentials:
    return KafkaCredentials(
        principal, PASSWORDS[principal.upper()], "SCRAM-SHA-512", "SASL_SSL", str(tmp / "secrets" / "kafka-ca.pem")
    )


def test_the_three_tls_nodes_form_a_cluster_that_keeps_three_copies(cluster):
    with refused_sockets_collected():  # the whole test: clients are made while nodes start
        tmp, bootstrap = cluster
        env = {"BAOCAO_KAFKA_REPLICATION_FACTOR": "3", "BAOCAO_KAFKA_MIN_INSYNC_REPLICAS": "2"}
        deadline = time.monotonic() + 120
        wait_for_listeners(bootstrap, deadline)  # a client refused by a closed port leaks its socket
        while True:  # the topics job's work, retried while the quorum forms
            try:
                create_topics(bootstrap, 8, env, credentials=login(tmp, "admin"))
                break
            except Exception as exc:  # any failure until the deadline means "not up yet"
                if time.monotonic() > deadline:
                    logs = "\n".join(p.read_text()[-2000:] for p in tmp.glob("node*/stdout.log"))
                    raise AssertionError(f"the cluster did not take the topics: {exc!r}\n{logs}") from exc
                time.sleep(2)

        admin = KafkaAdminClient(bootstrap_servers=bootstrap, **client_options(login(tmp, "admin")))
        try:
            described = admin.describe_topics(["reports", "totals", "reports.state", "reports.dead-letter"])
            for topic in described:
                assert [len(p["replica_nodes"]) for p in topic["partitions"]] == [3] * len(topic["partitions"]), topic
                assert all(len(p["isr_nodes"]) == 3 for p in topic["partitions"]), topic
        finally:
            admin.close()

        # the ACLs the topics job made reach every node a moment later (KRaft metadata): a node
        # that has not seen them yet refuses; the probe is sent again until they all have
        while True:
            producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", **client_options(login(tmp, "ingest")))
            try:
                producer.send("reports", key=b"38", value=b'{"probe": 1}', partition=0).get(timeout=30)
                break
            except (TopicAuthorizationFailedError, ClusterAuthorizationFailedError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
            finally:
                producer.close()
        consumer = KafkaConsumer(bootstrap_servers=bootstrap, **client_options(login(tmp, "aggregate")))
        consumer.assign([TopicPartition("reports", 0)])
        consumer.seek_to_beginning()
        got = [r.value for batch in consumer.poll(timeout_ms=20_000).values() for r in batch]
        consumer.close()
        assert got == [b'{"probe": 1}']
        # no node logged a TLS or login failure (errors while the controllers elect a leader are
        # Kafka's own and pass)
        failure = re.compile(
            r"SslAuthenticationException|SaslAuthenticationException|SSLHandshakeException|SSLException"
            r"|Failed authentication|PKIX|certificate_unknown|bad_certificate"
        )
        for log in tmp.glob("logs/*/server.log"):
            errors = [line for line in log.read_text().splitlines() if failure.search(line)]
            assert errors == [], f"{log}: {errors[:3]}"
