"""Start, stop and check the local servers: Apache Kafka (KRaft) and a MongoDB-compatible server.

The MongoDB-compatible server is bwaldvogel's mongo-java-server with its H2 backend. FerretDB v1
was tried first and dropped: with concurrent writers it lost $inc updates and stalled (README,
"Why not FerretDB").

There is no Docker engine on the development and CI machines, so the project runs its own
servers from what deploy/install.sh put under .cache/. Each *profile* ("dev" for `make run`,
"test-<pid>" for a test session) has its own folder under .run/ with data, logs, pids and the ports
it chose, so a test run never touches the demo data.

    python -m deploy.stack start  [--profile dev]   # start what is not running, wait until ready
    python -m deploy.stack status [--profile dev]
    python -m deploy.stack env    [--profile dev]   # shell exports for the services
    python -m deploy.stack stop   [--profile dev]   # stops only the pids this script started

When KAFKA_BOOTSTRAP_SERVERS or MONGODB_URI are set, those servers are used and no local one is
started for them.

Both local servers take logins only. Kafka's users are made when its storage is formatted
(kafka/credentials/, one file per principal). The database takes SCRAM-SHA-256 logins as user
``baocao``, whose password is drawn once per profile (mongodb/credentials.env); the server reads
only the salted keys (mongodb/users), and MONGODB_URI carries the login, so every client made from
the endpoints logs in. A profile's folder is 0700, its files owner-only, and the servers run with
umask 077.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import gc
import hashlib
import hmac
import json
import logging
import os
import secrets
import shlex
import signal
import socket
import stat
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from deploy.tls import BrokerTls, broker_tls, make_broker_tls
from shared.adapters.kafka_credentials import (
    CREDENTIALS_DIR,
    PASSWORD,
    PRINCIPALS,
    PROTOCOL,
    SSL_CAFILE,
    KafkaCredentials,
    client_options,
    principal_credentials,
    read_env_file,
)
from shared.adapters.mongo import redact_uri
from tools.topics import Replication

log = logging.getLogger("baocao.stack")

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache"
RUN = ROOT / ".run"


# Servers started by this process stay referenced here: they outlive the call that started them
# (stop() finds them by pid), and a collected Popen of a live child only produces a warning.
_STARTED: list[subprocess.Popen[bytes]] = []

# The servers create their data, logs and checkpoints readable by their owner only.
SERVER_UMASK = 0o077


def open_private_log(path: Path) -> int:
    """A log file opened for appending, created owner-only (0600); the caller closes the descriptor."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.fchmod(fd, 0o600)  # a log made before this rule keeps working, without its group/other bits
    return fd


def _spawn(argv: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    fd = open_private_log(log_path)
    try:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            argv,
            stdout=fd,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            umask=SERVER_UMASK,
        )
    finally:
        os.close(fd)
    _STARTED.append(proc)
    return proc


def make_private_dir(path: Path) -> None:
    """Creates ``path`` (and its missing parents) and makes it 0700."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def restrict_tree(root: Path) -> None:
    """Takes every group and other permission away under ``root`` (folders 0700, files keep their
    owner bits): what a profile made before its servers ran with umask 077 left readable."""
    if not root.is_dir():
        return
    os.chmod(root, 0o700)
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            try:
                mode = os.lstat(path).st_mode
                if mode & 0o077 and not stat.S_ISLNK(mode):
                    os.chmod(path, 0o700 if stat.S_ISDIR(mode) else mode & 0o700)
            except FileNotFoundError:  # a running server removed it meanwhile
                continue


class StackError(RuntimeError):
    """A server could not be started or did not become ready."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); look at its state.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        return state != "Z"
    except OSError:
        return False


@dataclass
class Profile:
    name: str

    @property
    def dir(self) -> Path:
        return RUN / self.name

    @property
    def state_file(self) -> Path:
        return self.dir / "stack.json"

    @property
    def urls_file(self) -> Path:
        """Where `make run` writes the URLs its services listen on (shell syntax, KEY=value)."""
        return self.dir / "urls.env"

    def urls(self) -> dict[str, str]:
        """The variables in urls.env ({} when there is none): BAOCAO_INGEST_URL, BAOCAO_API_URL..."""
        try:
            text = self.urls_file.read_text()
        except OSError:
            return {}
        out = {}
        for line in text.splitlines():
            key, sep, value = line.strip().partition("=")
            if sep and not key.startswith("#"):
                out[key.strip()] = value.strip().strip("'\"")
        return out

    def load(self) -> dict[str, Any]:
        if self.state_file.exists():
            state: dict[str, Any] = json.loads(self.state_file.read_text())
            return state
        return {}

    def save(self, state: dict[str, Any]) -> None:
        """Writes stack.json owner-only: its endpoints carry the database login."""
        make_private_dir(self.dir)
        write_private(self.state_file, json.dumps(state, indent=2))


# ---------------------------------------------------------------- Kafka


KAFKA_BROKERS = "BAOCAO_KAFKA_BROKERS"
KAFKA_TLS = "BAOCAO_KAFKA_TLS"
CLUSTER_BROKERS = 3


def kafka_layout(profile: Profile, env: Mapping[str, str] | None = None) -> tuple[int, bool]:
    """How many Kafka nodes the profile runs and whether clients reach them over TLS. A profile
    named ``cluster`` (or ``*-cluster``) has three; otherwise BAOCAO_KAFKA_BROKERS, 1 by default.
    TLS unless BAOCAO_KAFKA_TLS=0. A profile keeps the layout its storage was formatted with."""
    env = os.environ if env is None else env
    saved = profile.load().get("kafka") or {}
    if saved.get("brokers"):
        return int(saved["brokers"]), bool(saved.get("tls"))
    cluster = profile.name == "cluster" or profile.name.endswith("-cluster")
    brokers = CLUSTER_BROKERS if cluster else int(env.get(KAFKA_BROKERS) or 1)
    if brokers < 1:
        raise StackError(f"{KAFKA_BROKERS} must be at least 1, not {brokers}")
    tls = (env.get(KAFKA_TLS) or "1").strip().lower() not in ("0", "false", "no", "off")
    return brokers, tls


def kafka_replication(brokers: int) -> Replication:
    """Copies of every partition on a profile of ``brokers`` nodes: 1/1 alone; on a cluster three
    copies (at most one per node), two of them in sync before a write is acknowledged."""
    factor = min(brokers, 3)
    return Replication(factor, min(factor, 2))


def _kafka_tls_properties(tls: BrokerTls) -> list[str]:
    """A node's key and certificate, and the profile's CA that its peers' and clients' are checked against."""
    return [
        "ssl.keystore.type=PKCS12",
        f"ssl.keystore.location={tls.keystore}",
        f"ssl.keystore.password={tls.keystore_password}",
        "ssl.truststore.type=PEM",
        f"ssl.truststore.location={tls.ca}",
        "ssl.endpoint.identification.algorithm=https",
        "ssl.client.auth=none",
    ]


def _kafka_properties(
    data: Path,
    port: int,
    controller_port: int,
    admin_password: str,
    *,
    node_id: int = 1,
    voters: str | None = None,
    tls: BrokerTls | None = None,
    replication: Replication | None = None,
) -> str:
    """One broker+controller node (``node_id`` of the quorum ``voters``, id@host:port each; this
    node alone by default). Clients log in with SASL/SCRAM-SHA-512 (credentials created when the
    storage is formatted) and every request is authorized by ACL (tools/topics.py grants them); only
    ``admin``, the brokers themselves, is a super user. The controller listener takes SASL/PLAIN
    with admin's password only: KRaft controllers cannot check SCRAM, whose credentials live in the
    metadata they serve. With ``tls`` every listener, the controllers' and the brokers' own
    connections included, is TLS (SASL_SSL), checked against the profile's CA."""
    scram = "org.apache.kafka.common.security.scram.ScramLoginModule"
    plain = "org.apache.kafka.common.security.plain.PlainLoginModule"
    replication = replication or Replication(1, 1)
    rf, isr = replication.factor, replication.min_insync
    listener = "SASL_SSL" if tls else "SASL_PLAINTEXT"
    lines = [
        "process.roles=broker,controller",
        f"node.id={node_id}",
        f"controller.quorum.voters={voters or f'{node_id}@127.0.0.1:{controller_port}'}",
        f"listeners={listener}://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        f"advertised.listeners={listener}://127.0.0.1:{port}",
        "controller.listener.names=CONTROLLER",
        f"inter.broker.listener.name={listener}",
        f"listener.security.protocol.map=CONTROLLER:{listener},{listener}:{listener}",
        "sasl.enabled.mechanisms=SCRAM-SHA-512",
        "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
        f'listener.name.{listener.lower()}.scram-sha-512.sasl.jaas.config={scram} required username="admin" '
        f'password="{admin_password}";',
        "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
        "sasl.mechanism.controller.protocol=PLAIN",
        f'listener.name.controller.plain.sasl.jaas.config={plain} required username="admin" '
        f'password="{admin_password}" user_admin="{admin_password}";',
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found=false",
        "super.users=User:admin",
        f"log.dirs={data}",
        "num.partitions=8",
        # the brokers' own topics (consumer offsets, transactions) have the copies of ours
        f"default.replication.factor={rf}",
        f"min.insync.replicas={isr}",
        f"offsets.topic.replication.factor={rf}",
        "offsets.topic.num.partitions=8",
        f"transaction.state.log.replication.factor={rf}",
        f"transaction.state.log.min.isr={isr}",
        f"share.coordinator.state.topic.replication.factor={rf}",
        f"share.coordinator.state.topic.min.isr={isr}",
        # Local nodes: no reason to wait for more members before the first rebalance.
        "group.initial.rebalance.delay.ms=0",
        # Topics are created, with their ACLs, by tools/topics.py (as admin), never by a client.
        "auto.create.topics.enable=false",
        "log.retention.hours=168",
        "log.segment.bytes=67108864",
    ]
    if tls:
        lines += _kafka_tls_properties(tls)
    if rf > 1:
        lines += [
            # A node that stops answering is fenced, and its partitions get new leaders, after
            # this: the longest an acks=all write waits for a broker that was killed.
            "broker.session.timeout.ms=6000",
            "broker.heartbeat.interval.ms=1000",
            "replica.lag.time.max.ms=10000",
            # a returning node takes its leaderships back at once, not after five minutes
            "leader.imbalance.check.interval.seconds=10",
        ]
    return "\n".join([*lines, ""])


def write_private(path: Path, text: str) -> None:
    """Writes ``text`` to ``path`` readable by the owner only from its first byte: a new file created
    0600 (never 0644 for a moment, whatever the umask) and renamed over the old one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # the umask may have removed bits; it never adds any
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def kafka_credentials_dir(profile: Profile) -> Path:
    """One <principal>.env per principal (BAOCAO_KAFKA_USERNAME=..., mode 600), made when the
    profile's Kafka storage is formatted; ``set -a; . <dir>/unit.env; set +a`` in a shell."""
    return profile.dir / "kafka" / "credentials"


def _new_credentials(folder: Path) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    passwords = {name: secrets.token_urlsafe(24) for name in PRINCIPALS}
    for name, password in passwords.items():
        write_private(
            folder / f"{name}.env", "".join(f"{k}={v}\n" for k, v in KafkaCredentials(name, password).env().items())
        )
    return passwords


def kafka_tls_dir(profile: Profile) -> Path:
    """The profile's CA (ca.pem, what clients trust) and the brokers' keystore (deploy/tls.py)."""
    return profile.dir / "kafka" / "tls"


def _node_dir(kdir: Path, node: int, brokers: int) -> Path:
    # a single node keeps the folders of profiles made before clusters
    return kdir if brokers == 1 else kdir / f"node{node}"


def _kafka_jvm(logs: Path, heap: str) -> list[str]:
    return [
        os.environ.get("JAVA", "java"),
        "-Xms256m",
        heap,
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dkafka.logs.dir={logs}",
        f"-Dlog4j2.configurationFile={ROOT / 'deploy' / 'kafka' / 'log4j2.properties'}",
        "-cp",
        f"{CACHE / 'kafka' / 'lib'}/*",
    ]


def kafka_nodes(state: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """The profile's Kafka nodes by id: pid (while started), port, controller_port."""
    ks = state.get("kafka") or {}
    nodes = {int(k): v for k, v in (ks.get("nodes") or {}).items()}
    if not nodes and ks.get("port"):  # recorded before clusters: one node, in the entry itself
        nodes = {1: {k: ks[k] for k in ("pid", "port", "controller_port") if k in ks}}
    return nodes


def kafka_bootstrap(state: dict[str, Any]) -> str:
    return ",".join(f"127.0.0.1:{n['port']}" for _, n in sorted(kafka_nodes(state).items()))


def start_kafka(profile: Profile, state: dict[str, Any], only: int | None = None) -> str:
    """Starts the profile's Kafka nodes that are not running (``only``: that node), formatting the
    storage of a new profile first. Returns the bootstrap servers (every node)."""
    lib = CACHE / "kafka" / "lib"
    if not lib.is_dir():
        raise StackError("Kafka is not installed: run deploy/install.sh (or `make install`)")
    brokers, tls_on = kafka_layout(profile)
    kdir = profile.dir / "kafka"
    make_private_dir(profile.dir)
    make_private_dir(kdir)
    ks = state.setdefault("kafka", {})
    nodes = kafka_nodes(state)
    for node in range(1, brokers + 1):
        entry = nodes.setdefault(node, {})
        if node == 1 and not entry.get("port"):
            entry["port"] = int(os.environ.get("BAOCAO_KAFKA_PORT", 0)) or free_port()
        entry.setdefault("port", free_port())
        entry.setdefault("controller_port", free_port())
    voters = ",".join(f"{n}@127.0.0.1:{nodes[n]['controller_port']}" for n in sorted(nodes))
    creds = kafka_credentials_dir(profile)
    formatted = all((_node_dir(kdir, n, brokers) / "data" / "meta.properties").exists() for n in nodes)
    if formatted and not (creds / "admin.env").exists():
        raise StackError(
            f"the Kafka data in {kdir} predates authentication (no {creds}/admin.env): its users cannot be "
            f"known; remove {kdir} (or `make clean`) and start again"
        )
    passwords = (
        {name: read_env_file(creds / f"{name}.env")[PASSWORD] for name in PRINCIPALS}
        if formatted
        else _new_credentials(creds)
    )
    tls = make_broker_tls(kafka_tls_dir(profile), profile.name) if tls_on else None
    replication = kafka_replication(brokers)
    heap = os.environ.get("BAOCAO_KAFKA_HEAP", "-Xmx1g" if brokers == 1 else "-Xmx512m")
    cluster_id = "-"
    while cluster_id.startswith("-"):  # the storage tool would read a leading "-" as an option
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    for node, entry in sorted(nodes.items()):
        if only is not None and node != only:
            continue
        ndir = _node_dir(kdir, node, brokers)
        data, logs = ndir / "data", ndir / "logs"
        make_private_dir(ndir)
        make_private_dir(logs)
        props = ndir / "server.properties"
        text = _kafka_properties(
            data,
            entry["port"],
            entry["controller_port"],
            passwords["admin"],
            node_id=node,
            voters=voters,
            tls=tls,
            replication=replication,
        )
        write_private(props, text)
        if _running(entry):
            continue
        jvm = _kafka_jvm(logs, heap)
        if not (data / "meta.properties").exists():
            # every node of a new cluster is formatted with the same id and users
            fmt = format_kafka_storage(jvm, ndir, cluster_id, props, passwords)
            if fmt.returncode != 0:
                raise StackError(f"formatting Kafka storage failed:\n{fmt.stdout}\n{fmt.stderr}")
        proc = _spawn([*jvm, "kafka.Kafka", str(props)], logs / "stdout.log")
        entry["pid"] = proc.pid
    ks.update(brokers=brokers, tls=tls_on, nodes={str(n): e for n, e in sorted(nodes.items())})
    ks.update({k: nodes[1][k] for k in ("port", "controller_port") if k in nodes[1]})
    if nodes[1].get("pid"):
        ks["pid"] = nodes[1]["pid"]  # what readers of a single node's state look at
    bootstrap = kafka_bootstrap(state)
    _name_the_broker(creds, bootstrap, tls.ca if tls else None)
    return bootstrap


def kafka_client_env(state: dict[str, Any], tls_dir: Path) -> dict[str, str]:
    """What a client of the profile's brokers needs besides its login: the protocol and CA, and
    the replication of the topics it creates (tools/topics.py reads it)."""
    ks = state.get("kafka") or {}
    out = kafka_replication(int(ks.get("brokers") or 1)).env()
    if ks.get("tls"):
        out.update({PROTOCOL: "SASL_SSL", SSL_CAFILE: str(broker_tls(tls_dir).ca)})
    else:
        out[PROTOCOL] = "SASL_PLAINTEXT"
    return out


def _name_the_broker(creds: Path, bootstrap: str, ca: Path | None = None) -> None:
    """Each principal's env file names the brokers, the protocol and the CA too, so ``. unit.env``
    is all a unit's system needs before ``baocao submit FILE --kafka``."""
    ours = ("KAFKA_BOOTSTRAP_SERVERS=", f"{PROTOCOL}=", f"{SSL_CAFILE}=")
    head = [f"KAFKA_BOOTSTRAP_SERVERS={bootstrap}", f"{PROTOCOL}={'SASL_SSL' if ca else 'SASL_PLAINTEXT'}"]
    if ca:
        head.append(f"{SSL_CAFILE}={ca}")
    for path in sorted(creds.glob("*.env")):
        lines = [line for line in path.read_text().splitlines() if not line.startswith(ours)]
        write_private(path, "".join(f"{line}\n" for line in [*head, *lines]))


def format_kafka_storage(
    jvm: list[str], kdir: Path, cluster_id: str, props: Path, passwords: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """Runs Kafka's StorageTool format, which creates the users (--add-scram) with their passwords.
    The tool takes credentials only as arguments, so the main class and its arguments go in a java
    argument file (``java @file``, expanded by the launcher inside the process), owner-only and
    removed afterwards: the process table shows ``@<file>`` and never a password."""
    argfile = kdir / "format.args"
    args = [
        "kafka.tools.StorageTool",
        "format",
        "-t",
        cluster_id,
        "-c",
        str(props),
        *(f"--add-scram=SCRAM-SHA-512=[name={n},password={p}]" for n, p in passwords.items()),
    ]
    # One argument a line, quoted (a path may hold spaces); in quotes, \\ and \" are escapes.
    quoted = (arg.replace("\\", "\\\\").replace('"', '\\"') for arg in args)
    write_private(argfile, "".join(f'"{arg}"\n' for arg in quoted))
    try:
        return subprocess.run(
            # no performance-data file (jps/jcmd) that would show the expanded arguments
            [*jvm, "-XX:-UsePerfData", f"@{argfile}"],
            capture_output=True,
            text=True,
            check=False,
            umask=SERVER_UMASK,
        )
    finally:
        argfile.unlink(missing_ok=True)


def kafka_ready(
    bootstrap: str,
    deadline_s: float = 90.0,
    credentials: KafkaCredentials | None = None,
    replication: Replication | None = None,
) -> None:
    """Wait until a message produced to a health topic can be consumed back; with ``replication``
    (copies on as many brokers as the topics will have), until that many brokers are in."""
    deadline = time.monotonic() + deadline_s
    # While the broker starts, every attempt logs refused connections; the outcome is what counts.
    kafka_log = logging.getLogger("kafka")
    level = kafka_log.level
    kafka_log.setLevel(logging.CRITICAL)
    try:
        # kafka-python leaves the sockets of refused attempts to the garbage collector.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            _wait_round_trip(bootstrap, deadline, client_options(credentials), replication or Replication())
            gc.collect()
    finally:
        kafka_log.setLevel(level)


def _wait_round_trip(bootstrap: str, deadline: float, options: dict[str, Any], replication: Replication) -> None:
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000, **options)
            try:
                admin.create_topics(
                    [
                        NewTopic(
                            "_baocao_health",
                            1,
                            replication.factor,
                            topic_configs={"min.insync.replicas": str(replication.min_insync)},
                        )
                    ]
                )
            except TopicAlreadyExistsError:
                pass
            finally:
                admin.close()
            token = uuid.uuid4().hex.encode()
            producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", **options)
            meta = producer.send("_baocao_health", token).get(timeout=10)
            producer.close()
            consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **options)
            tp = TopicPartition("_baocao_health", 0)
            consumer.assign([tp])
            consumer.seek(tp, meta.offset)
            got = consumer.poll(timeout_ms=10000)
            consumer.close()
            if any(r.value == token for recs in got.values() for r in recs):
                return
            last = StackError("health message not read back")
        except (KafkaError, OSError, StackError) as exc:
            last = exc
        time.sleep(0.5)
    raise StackError(f"Kafka at {bootstrap} not ready in time: {last!r}")


# ---------------------------------------------------------------- MongoDB-compatible server


MONGODB_USER = "baocao"
MONGODB_PASSWORD = "BAOCAO_MONGODB_PASSWORD"
SCRAM_ITERATIONS = 15000  # MongoDB's default for SCRAM-SHA-256


def mongodb_credentials_file(profile: Profile) -> Path:
    """The local database's login (BAOCAO_MONGODB_USERNAME, BAOCAO_MONGODB_PASSWORD), mode 600."""
    return profile.dir / "mongodb" / "credentials.env"


def mongodb_password(profile: Profile, create: bool = False) -> str:
    """The profile's database password; with ``create``, drawn and written when there is none."""
    path = mongodb_credentials_file(profile)
    try:
        return read_env_file(path)[MONGODB_PASSWORD]
    except (OSError, KeyError):
        if not create:
            raise StackError(
                f"no database login in {path}: the running database predates authentication; "
                f"stop the profile (python -m deploy.stack stop --profile {profile.name}) and start it again"
            ) from None
    make_private_dir(path.parent)
    password = secrets.token_urlsafe(24)
    write_private(path, f"BAOCAO_MONGODB_USERNAME={MONGODB_USER}\n{MONGODB_PASSWORD}={password}\n")
    return password


def scram_sha256_user(name: str, password: str, iterations: int = SCRAM_ITERATIONS, salt: bytes | None = None) -> str:
    """A line of the server's users file (deploy/mongo-java-server ScramUsers): the user's salt and
    SCRAM-SHA-256 keys (RFC 5802), from which the password cannot be read back."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    # RFC 7677 prepares the password with SASLprep; a base64url password is its own preparation.
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    keys = " ".join(base64.b64encode(b).decode() for b in (salt, stored_key, server_key))
    return f"{name} SCRAM-SHA-256 {iterations} {keys}\n"


def mongodb_uri(port: int, password: str) -> str:
    """The local server's URI, with the login: a client made from it authenticates."""
    return (
        f"mongodb://{MONGODB_USER}:{quote(password, safe='')}@127.0.0.1:{port}/"
        "?authSource=admin&authMechanism=SCRAM-SHA-256"
    )


def start_mongo(profile: Profile, state: dict[str, Any]) -> str:
    """mongo-java-server with its H2 backend (deploy/mongo-java-server), one file per profile,
    taking SCRAM-SHA-256 logins of the profile's user only."""
    lib = CACHE / "mongo-java-server" / "lib"
    if not lib.is_dir():
        raise StackError("mongo-java-server is not installed: run deploy/install.sh (or `make install`)")
    mdir = profile.dir / "mongodb"
    make_private_dir(profile.dir)
    make_private_dir(mdir)
    password = mongodb_password(profile, create=True)
    users = mdir / "users"
    write_private(users, scram_sha256_user(MONGODB_USER, password))
    ms = state.setdefault("mongodb", {})
    port = ms.get("port") or int(os.environ.get("BAOCAO_MONGODB_PORT", 0)) or free_port()
    proc = _spawn(
        [
            os.environ.get("JAVA", "java"),
            "-Xms128m",
            os.environ.get("BAOCAO_MONGODB_HEAP", "-Xmx2g"),
            *os.environ.get("BAOCAO_MONGODB_GC", "-XX:+UseG1GC -XX:MaxGCPauseMillis=10").split(),
            f"-Dbaocao.cacheMb={int(os.environ.get('BAOCAO_MONGODB_CACHE_MB', 256))}",
            # pauses are what a request's tail latency sees: keep a record of them
            f"-Xlog:gc:file={mdir / 'gc.log'}:uptime,level:filecount=3,filesize=10m",
            "-cp",
            f"{lib}/*",
            "baocao.Server",
            "127.0.0.1",
            str(port),
            str(mdir / "baocao.mv"),
            str(users),
        ],
        mdir / "server.log",
    )
    ms.update(pid=proc.pid, port=port)
    return mongodb_uri(port, password)


def mongodb_ready(uri: str, deadline_s: float = 30.0) -> None:
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    deadline = time.monotonic() + deadline_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        client: MongoClient[dict[str, Any]] = MongoClient(uri, serverSelectionTimeoutMS=2000)
        try:
            client.admin.command("ping")
            return
        except PyMongoError as exc:
            last = exc
            time.sleep(0.3)
        finally:  # a client left open after a failed ping warns when collected (an error in the tests)
            client.close()
    raise StackError(f"MongoDB at {redact_uri(uri)} not ready after {deadline_s:.0f}s: {last!r}")


# ---------------------------------------------------------------- commands


def _running(entry: dict[str, Any] | None) -> bool:
    return bool(entry and entry.get("pid") and pid_alive(int(entry["pid"])))


def start(profile: Profile) -> dict[str, str]:
    """Start whatever is not running yet and wait until it is ready. Returns the endpoints."""
    state = profile.load()
    endpoints: dict[str, str] = {}
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if bootstrap:
        log.info("using external Kafka at %s", bootstrap)
        if os.environ.get(CREDENTIALS_DIR):
            endpoints[CREDENTIALS_DIR] = os.environ[CREDENTIALS_DIR]
    else:
        nodes = kafka_nodes(state)
        if nodes and len(nodes) == kafka_layout(profile)[0] and all(_running(n) for n in nodes.values()):
            bootstrap = kafka_bootstrap(state)
        else:
            bootstrap = start_kafka(profile, state)
            profile.save(state)
        endpoints[CREDENTIALS_DIR] = str(kafka_credentials_dir(profile))
        endpoints.update(kafka_client_env(state, kafka_tls_dir(profile)))
    endpoints["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap

    mongo = os.environ.get("MONGODB_URI")
    if mongo:
        log.info("using external MongoDB at %s", redact_uri(mongo))
    elif _running(state.get("mongodb")):
        mongo = mongodb_uri(state["mongodb"]["port"], mongodb_password(profile))
    else:
        mongo = start_mongo(profile, state)
        profile.save(state)
    endpoints["MONGODB_URI"] = mongo

    mongodb_ready(mongo)
    restrict_tree(profile.dir)
    kafka_ready(
        bootstrap,
        credentials=principal_credentials({**os.environ, **endpoints}, "admin"),
        replication=Replication.from_env({**os.environ, **endpoints}),
    )
    state["endpoints"] = endpoints
    profile.save(state)
    return endpoints


def stop_pid(pid: int, timeout_s: float = 30.0) -> None:
    """SIGTERM the process group we started, then SIGKILL it if it does not leave in time."""
    if not pid_alive(pid):
        return
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.2)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _reap(pid: int) -> None:
    """Collect the exit status of a child we started, so it does not linger as a zombie."""
    for proc in list(_STARTED):
        if proc.pid == pid:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                continue
            _STARTED.remove(proc)


def stop_pids(pids: list[int], timeout_s: float = 30.0) -> None:
    """stop_pid for several process groups at once: all get SIGTERM, then SIGKILL those left."""
    live = [pid for pid in pids if pid_alive(pid)]
    for pid in live:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(pid_alive(pid) for pid in live):
        time.sleep(0.2)
    for pid in live:
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
    for pid in live:
        _reap(pid)


def stop(profile: Profile, only: str | None = None) -> None:
    state = profile.load()
    for name in ("mongodb", "kafka"):
        if only and name != only:
            continue
        entry = state.get(name)
        if name == "kafka" and entry:
            # the nodes of a cluster leave together: one left alone waits for its quorum
            nodes = kafka_nodes(state)
            stop_pids([int(n["pid"]) for n in nodes.values() if n.get("pid")])
            for n in nodes.values():
                n.pop("pid", None)
            entry.pop("pid", None)
        elif entry and entry.get("pid"):
            stop_pid(int(entry["pid"]))
            _reap(int(entry["pid"]))
            entry.pop("pid", None)
    profile.save(state)


def kill_kafka_node(profile: Profile, node: int) -> None:
    """SIGKILL one Kafka node of the profile (a crash: no controlled shutdown); the others stay."""
    state = profile.load()
    entry = kafka_nodes(state)[node]
    pid = entry.pop("pid", None)
    if pid and pid_alive(int(pid)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(int(pid), signal.SIGKILL)
        _reap(int(pid))
    if node == 1:
        state["kafka"].pop("pid", None)
    profile.save(state)


def stop_kafka_node(profile: Profile, node: int, timeout_s: float = 30.0) -> None:
    """SIGTERM one Kafka node (a controlled shutdown: its leaderships move first)."""
    state = profile.load()
    entry = kafka_nodes(state)[node]
    pid = entry.pop("pid", None)
    if pid:
        stop_pids([int(pid)], timeout_s)
    if node == 1:
        state["kafka"].pop("pid", None)
    profile.save(state)


def start_kafka_node(profile: Profile, node: int) -> None:
    """Starts one stopped node of the profile's Kafka again, on its ports and data."""
    state = profile.load()
    start_kafka(profile, state, only=node)
    profile.save(state)


def status(profile: Profile) -> dict[str, str]:
    state = profile.load()
    report = {}
    for name, entry in [
        *((f"kafka{'' if n == 1 else n}", e) for n, e in sorted(kafka_nodes(state).items())),
        ("mongodb", state.get("mongodb") or {}),
    ]:
        alive = _running(entry)
        report[name] = f"running (pid {entry['pid']}, port {entry['port']})" if alive else "stopped"
    report.setdefault("kafka", "stopped")
    return report


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(prog="python -m deploy.stack", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["start", "stop", "status", "env"])
    parser.add_argument("--profile", default=os.environ.get("BAOCAO_PROFILE", "dev"))
    args = parser.parse_args(argv)
    profile = Profile(args.profile)
    try:
        if args.command == "start":
            for key, value in start(profile).items():
                log.info("%s=%s", key, redact_uri(value))
        elif args.command == "stop":
            stop(profile)
        elif args.command == "status":
            for name, line in status(profile).items():
                print(f"{name}: {line}")  # the command's output, not a log line
            if not all(v.startswith("running") for v in status(profile).values()):
                return 3
        elif args.command == "env":
            for key, value in (profile.load().get("endpoints") or {}).items():
                print(f"export {key}={shlex.quote(value)}")  # a URI holds & and ?
    except StackError as exc:
        log.error("stack: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
