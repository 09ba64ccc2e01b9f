"""docker-compose.yml, checked without a container engine (there is none on these machines): valid
under the Compose Specification's JSON Schema (deploy/schemas/compose-spec.json) before and after
its variables are filled in, and what it promises holds. Each check is a function that lists the
problems it finds; every one is also run on a broken copy of the file and must find it."""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
SCHEMA = ROOT / "deploy" / "schemas" / "compose-spec.json"
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
KAFKA_START = ROOT / "deploy" / "kafka" / "compose-start.sh"
MONGO_START = ROOT / "deploy" / "mongodb" / "member-start.sh"
SCALED = ("ingest", "api")
AGGREGATE_DATA = "/var/lib/baocao/aggregate"
# What a variable holding a secret must look like: required, no default.
REQUIRED_VAR = re.compile(r"^\$\{[A-Z0-9_]+:\?[^}]*\}$")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|KEYFILE|PRIVATE", re.I)
# A pinned tag: a full version (major.minor.patch), or a digest.
PINNED = re.compile(r"^[^:@\s]+(:[^@\s]*\d+\.\d+\.\d+[^@\s]*)?(@sha256:[0-9a-f]{64})?$")
VAR = re.compile(r"\$\{([A-Za-z0-9_]+)(?::([?-])([^}]*))?\}|\$\$")


Compose = dict[str, Any]


def load() -> Compose:
    return yaml.safe_load(COMPOSE.read_text())


def interpolate(value: Any, env: Mapping[str, str], missing: list[str]) -> Any:
    """Compose's variable substitution for ${VAR}, ${VAR:-default}, ${VAR:?message} and $$."""
    if isinstance(value, dict):
        return {k: interpolate(v, env, missing) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env, missing) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if env.get(name):
            return env[name]
        if op == "?":
            missing.append(name)
            return ""
        return arg if op == "-" else ""

    return VAR.sub(sub, value)


@functools.cache
def validator() -> jsonschema.Draft7Validator:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def schema_problems(doc: Compose) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator().iter_errors(doc)]


def env_of(service: Compose) -> dict[str, Any]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return dict(env)


def unpinned_images(doc: Compose) -> list[str]:
    out = []
    for name, svc in doc["services"].items():
        image = svc.get("image")
        if image is None:
            out.append(f"{name}: no image")
        elif not PINNED.match(image) or (":" not in image and "@" not in image):
            out.append(f"{name}: {image} is not pinned to an exact version")
    return out


def unpinned_base_images(dockerfile: str) -> list[str]:
    return [
        f"Dockerfile: {line}"
        for line in dockerfile.splitlines()
        if line.startswith("FROM ") and not PINNED.match(line.split()[1])
    ]


def scaled_service_problems(doc: Compose) -> list[str]:
    out = []
    for name in SCALED:
        svc = doc["services"].get(name)
        if svc is None:
            out.append(f"{name}: missing")
            continue
        if svc.get("ports"):
            out.append(f"{name}: fixed host ports {svc['ports']} (no second replica could bind them)")
        if "container_name" in svc:
            out.append(f"{name}: container_name prevents --scale")
    published = [n for n, s in doc["services"].items() if s.get("ports")]
    for name in published:
        for port in doc["services"][name]["ports"]:
            if not str(port).startswith("127.0.0.1:"):
                out.append(f"{name}: port {port} is published beyond 127.0.0.1")
    return out


def aggregate_volume_problems(doc: Compose) -> list[str]:
    workers = sorted(n for n in doc["services"] if n.startswith("aggregate"))
    out = [] if len(workers) >= 2 else [f"aggregate workers: {workers} (expected several)"]
    seen: dict[str, str] = {}
    declared = set(doc.get("volumes") or {})
    for name in workers:
        svc = doc["services"][name]
        if svc.get("deploy", {}).get("replicas", 1) not in (1, "1") or "scale" in svc:
            out.append(f"{name}: replicas would share one state volume")
        mounts = [v for v in svc.get("volumes") or [] if isinstance(v, str) and v.endswith(":" + AGGREGATE_DATA)]
        if len(mounts) != 1:
            out.append(f"{name}: no volume at {AGGREGATE_DATA}")
            continue
        volume = mounts[0].split(":")[0]
        if volume not in declared:
            out.append(f"{name}: {volume} is not a named volume")
        if volume in seen:
            out.append(f"{name}: shares {volume} with {seen[volume]}")
        seen[volume] = name
    for name, svc in doc["services"].items():
        if name in workers:
            continue
        for v in svc.get("volumes") or []:
            if isinstance(v, str) and v.split(":")[0] in seen:
                out.append(f"{name}: mounts {v.split(':')[0]}, an aggregate worker's state")
    return out


def ingest_url_problems(doc: Compose) -> list[str]:
    url = env_of(doc["services"]["api"]).get("BAOCAO_API_INGEST_URL")
    if not url:
        return ["api: BAOCAO_API_INGEST_URL is not set (web submissions would go to 127.0.0.1 inside the container)"]
    m = re.match(r"^https?://([^:/]+):(\d+)/?$", str(url))
    if not m or m.group(1) not in doc["services"] or m.group(2) != "8001":
        return [f"api: BAOCAO_API_INGEST_URL={url} does not name the ingest service's port 8001"]
    return []


def mongo_problems(doc: Compose, member_start: str) -> list[str]:
    services = doc["services"]
    members = sorted(n for n in services if re.fullmatch(r"mongo-\d+", n))
    out = [] if len(members) == 3 else [f"MongoDB members: {members} (a replica set of three expected)"]
    for name in members:
        svc = services[name]
        secrets = [s if isinstance(s, str) else s.get("source") for s in svc.get("secrets") or []]
        if "mongo-keyfile" not in secrets:
            out.append(f"{name}: no keyfile secret")
        if "/baocao/member-start.sh" not in " ".join(svc.get("entrypoint") or []):
            out.append(f"{name}: not started by deploy/mongodb/member-start.sh")
    for flag in ("--keyFile", "--replSet"):
        if flag not in member_start:
            out.append(f"member-start.sh: no {flag}")
    keyfile = (doc.get("secrets") or {}).get("mongo-keyfile", {})
    if not REQUIRED_VAR.match(str(keyfile.get("file", "")).split("}")[0] + "}"):
        out.append("secrets.mongo-keyfile: not from a required variable")
    init = services.get("mongo-init")
    if init is None:
        out.append("mongo-init: missing (nothing initiates the replica set)")
    else:
        if init.get("network_mode") != f"service:{members[0] if members else 'mongo-1'}":
            out.append("mongo-init: not in the first member's network namespace (no localhost exception)")
        if "MONGO_ROOT_PASSWORD" not in env_of(init):
            out.append("mongo-init: no MONGO_ROOT_PASSWORD")
    for name, svc in services.items():
        uri = env_of(svc).get("MONGODB_URI")
        if uri is None:
            continue
        m = re.match(r"^mongodb://([^:@/]+):(\$\{[^}]+\})@([^/]+)/\?(.*)$", str(uri))
        if not m:
            out.append(f"{name}: MONGODB_URI has no login ({uri})")
            continue
        hosts = m.group(3).split(",")
        if sorted(h.split(":")[0] for h in hosts) != members:
            out.append(f"{name}: MONGODB_URI does not list every member")
        if "replicaSet=" not in m.group(4):
            out.append(f"{name}: MONGODB_URI names no replicaSet")
    return out


def kafka_problems(doc: Compose, start_script: str) -> list[str]:
    services = doc["services"]
    brokers = sorted(n for n in services if re.fullmatch(r"kafka-\d+", n))
    out = [] if len(brokers) == 3 else [f"Kafka brokers: {brokers} (three expected)"]
    ids = set()
    for name in brokers:
        svc = services[name]
        ids.add(env_of(svc).get("BAOCAO_KAFKA_NODE_ID"))
        targets = {s.get("target") if isinstance(s, dict) else s for s in svc.get("secrets") or []}
        if not {"kafka-broker.pem", "kafka-ca.pem"} <= targets:
            out.append(f"{name}: no TLS key or CA among its secrets")
    if len(ids) != len(brokers):
        out.append(f"Kafka node ids repeat: {ids}")
    protocols = re.search(r"^listener\.security\.protocol\.map=(.*)$", start_script, re.M)
    if not protocols or {p.split(":")[1] for p in protocols.group(1).split(",")} != {"SASL_SSL"}:
        out.append("compose-start.sh: a listener without TLS")
    for name, svc in services.items():
        env = env_of(svc)
        if "KAFKA_BOOTSTRAP_SERVERS" not in env:
            continue
        if env.get("BAOCAO_KAFKA_SECURITY_PROTOCOL") != "SASL_SSL" or not env.get("BAOCAO_KAFKA_SSL_CAFILE"):
            out.append(f"{name}: Kafka client without SASL_SSL and a CA file")
        if env.get("BAOCAO_KAFKA_REPLICATION_FACTOR") != "3" or env.get("BAOCAO_KAFKA_MIN_INSYNC_REPLICAS") != "2":
            out.append(f"{name}: replication settings are not 3 copies, 2 in sync")
        if len(str(env["KAFKA_BOOTSTRAP_SERVERS"]).split(",")) < 2:
            out.append(f"{name}: a single bootstrap broker")
    return out


def literal_secret_problems(doc: Compose) -> list[str]:
    """Every value under a secret-sounding name is a required variable: no literal, no default."""
    out = []
    for name, svc in doc["services"].items():
        for key, value in env_of(svc).items():
            if SECRET_NAME.search(key) and not REQUIRED_VAR.match(str(value)):
                out.append(f"{name}: {key} is not a required variable")
            if key == "MONGODB_URI":
                m = re.match(r"^mongodb://[^:@/]+:([^@]*)@", str(value))
                if m and not REQUIRED_VAR.match(m.group(1)):
                    out.append(f"{name}: MONGODB_URI carries a password that is not a required variable")
    text = yaml.safe_dump(doc)
    for m in VAR.finditer(text):
        if m.group(1) and SECRET_NAME.search(m.group(1)) and m.group(2) != "?":
            out.append(f"${{{m.group(1)}}} has a default or may be empty")
    return out


def prometheus_problems(doc: Compose, prometheus: dict[str, Any]) -> list[str]:
    jobs = {j["job_name"]: j for j in prometheus["scrape_configs"]}
    wanted = {
        "ingest": ["ingest"],
        "api": ["api"],
        "aggregate": sorted(n for n in doc["services"] if n.startswith("aggregate")),
    }
    out = []
    for job, names in wanted.items():
        found = sorted(n for sd in jobs.get(job, {}).get("dns_sd_configs", []) for n in sd["names"])
        if found != names:
            out.append(f"prometheus job {job}: DNS discovery of {found}, not {names}")
        if jobs.get(job, {}).get("static_configs"):
            out.append(f"prometheus job {job}: static targets miss replicas")
    return out


def all_problems(doc: Compose, prometheus: dict[str, Any] | None = None) -> list[str]:
    prometheus = prometheus or yaml.safe_load(PROMETHEUS.read_text())
    return [
        *schema_problems(doc),
        *unpinned_images(doc),
        *scaled_service_problems(doc),
        *aggregate_volume_problems(doc),
        *ingest_url_problems(doc),
        *mongo_problems(doc, MONGO_START.read_text()),
        *kafka_problems(doc, KAFKA_START.read_text()),
        *literal_secret_problems(doc),
        *prometheus_problems(doc, prometheus),
    ]


def full_env(doc: Compose) -> dict[str, str]:
    names = {m.group(1) for m in VAR.finditer(COMPOSE.read_text()) if m.group(1)}
    return {n: ("/srv/baocao/secrets" if n.endswith("_DIR") else "x" * 40) for n in names}


def test_the_file_is_valid_under_the_compose_specification():
    assert schema_problems(load()) == []


def test_the_file_stays_valid_once_its_variables_are_filled_in():
    doc = load()
    missing: list[str] = []
    filled = interpolate(doc, full_env(doc), missing)
    assert missing == []
    assert schema_problems(filled) == []


def test_it_refuses_to_start_without_the_secrets():
    missing: list[str] = []
    interpolate(load(), {}, missing)
    assert {
        "BAOCAO_AUTH_SECRET",
        "BAOCAO_MONGO_PASSWORD",
        "MONGO_ROOT_PASSWORD",
        "BAOCAO_MONGO_BACKUP_PASSWORD",
        "BAOCAO_SECRETS_DIR",
        "BAOCAO_KAFKA_ADMIN_PASSWORD",
        "BAOCAO_KAFKA_INGEST_PASSWORD",
        "BAOCAO_KAFKA_AGGREGATE_PASSWORD",
        "BAOCAO_KAFKA_READER_PASSWORD",
        "BAOCAO_KAFKA_UNIT_PASSWORD",
    } <= set(missing)


def test_what_the_file_promises_holds():
    assert all_problems(load()) == []
    assert unpinned_base_images((ROOT / "Dockerfile").read_text()) == []


def _set(path: str, value: Any) -> Callable[[Compose], None]:
    def change(doc: Compose) -> None:
        *parents, last = path.split("/")
        node = doc
        for p in parents:
            node = node[p]
        if value is None:
            del node[last]
        else:
            node[last] = value

    return change


BROKEN: dict[str, Callable[[Compose], None]] = {
    "unknown key (schema)": _set("services/api/restart_policy", "always"),
    "wrong type (schema)": _set("services/api/deploy", {"replicas": [2]}),
    "floating image": _set("services/mongo-1/image", "mongo:8"),
    "latest image": _set("services/gateway/image", "nginx:latest"),
    "image without tag": _set("services/prometheus/image", "prom/prometheus"),
    "host port on a scaled service": _set("services/ingest/ports", ["127.0.0.1:8001:8001"]),
    "port on every interface": _set("services/gateway/ports", ["8001:8001"]),
    "container_name on a scaled service": _set("services/api/container_name", "api"),
    "aggregate volume shared": _set("services/aggregate-2/volumes", [f"aggregate-1-data:{AGGREGATE_DATA}"]),
    "aggregate without a volume": _set("services/aggregate-3/volumes", None),
    "aggregate replicas": _set("services/aggregate-1/deploy", {"replicas": 2}),
    "api without the ingest URL": _set("services/api/environment/BAOCAO_API_INGEST_URL", None),
    "api pointing at itself": _set("services/api/environment/BAOCAO_API_INGEST_URL", "http://127.0.0.1:8001"),
    "mongo member without a keyfile": _set("services/mongo-2/secrets", []),
    "no replica set init": _set("services/mongo-init", None),
    "init outside the member": _set("services/mongo-init/network_mode", "bridge"),
    "mongo URI without login": _set("services/api/environment/MONGODB_URI", "mongodb://mongo-1:27017/"),
    "literal password": _set("services/ingest/environment/BAOCAO_KAFKA_PASSWORD", "hunter2hunter2"),
    "password with a default": _set(
        "services/mongo-init/environment/MONGO_ROOT_PASSWORD", "${MONGO_ROOT_PASSWORD:-changeme}"
    ),
    "plaintext Kafka client": _set("services/api/environment/BAOCAO_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT"),
    "one copy per partition": _set("services/topics/environment/BAOCAO_KAFKA_REPLICATION_FACTOR", "1"),
    "two brokers": _set("services/kafka-3", None),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_each_check_finds_its_fault(case):
    doc = copy.deepcopy(load())
    BROKEN[case](doc)
    assert all_problems(doc), f"nothing found with {case}"


def test_the_checks_find_faults_outside_the_compose_file_too():
    doc = load()
    static = {"scrape_configs": [{"job_name": j, "static_configs": [{"targets": [f"{j}:1"]}]} for j in SCALED]}
    assert prometheus_problems(doc, static)
    assert unpinned_base_images("FROM python:3.11-slim\n")
    assert mongo_problems(doc, "exec mongod --bind_ip_all") != []
    assert kafka_problems(doc, "listener.security.protocol.map=CONTROLLER:SASL_PLAINTEXT,SASL_SSL:SASL_SSL\n")
