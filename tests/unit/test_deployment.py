"""The Helm chart (deploy/helm/baocao): `helm lint`, then `helm template` checked by
`kubeconform -strict` against the Kubernetes schemas (from the pinned kubernetes-validate package,
made self-contained by deploy/helm/schemas/k8s_standalone.py) and the committed schemas of the
custom resources (Strimzi 1.2.0, prometheus-operator v0.93.0: deploy/helm/schemas/), and what the
rendered objects promise. helm and kubeconform come from deploy/install.sh (go install into
.cache/bin); without them these tests fail and say so, they never skip.

Each semantic check lists the problems it finds and is also run on a broken copy that it must
catch; kubeconform and helm lint are shown failing on broken input too."""

from __future__ import annotations

import copy
import functools
import importlib.util
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tools.topics import Replication, acl_grants, topic_specs

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "baocao"
CRD_SCHEMAS = ROOT / "deploy" / "helm" / "schemas"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
CLUSTER_ALERTS = ROOT / "deploy" / "prometheus" / "cluster-alerts.yml"
RELEASE = "baocao"
# the oldest Kubernetes the chart allows (Chart.yaml kubeVersion) and the newest with schemas
KUBERNETES_VERSIONS = ("1.29.0", "1.37.0")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|KEYFILE", re.I)
Docs = list[dict[str, Any]]


def tool(name: str) -> str:
    path = ROOT / ".cache" / "bin" / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if not found:
        how = "go install into .cache/bin" if name in ("helm", "kubeconform") else "Debian's prometheus package"
        pytest.fail(f"{name} is missing: run deploy/install.sh (it installs {name}: {how})")
    return found


def run(*argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=120, check=False)


def template(chart: Path = CHART, *sets: str) -> str:
    args = [tool("helm"), "template", RELEASE, str(chart), "--namespace", "baocao"]
    for s in sets:
        args += ["--set", s]
    r = run(*args)
    assert r.returncode == 0, r.stderr
    return r.stdout


@functools.cache
def rendered(*sets: str) -> Docs:
    return [d for d in yaml.safe_load_all(template(CHART, *sets)) if d]


def is_builtin(doc: dict[str, Any]) -> bool:
    """A kind of Kubernetes itself (core, apps, batch, networking.k8s.io...), not a custom one."""
    group = doc["apiVersion"].rpartition("/")[0]
    return "." not in group or group.endswith(".k8s.io")


def kind_file(doc: dict[str, Any]) -> str:
    """kubeconform's {{.ResourceKind}}{{.KindSuffix}} for a built-in kind."""
    group, _, version = doc["apiVersion"].rpartition("/")
    suffix = f"-{group.split('.')[0]}-{version}" if group else f"-{version}"
    return doc["kind"].lower() + suffix


@functools.cache
def k8s_standalone() -> Any:
    """deploy/helm/schemas/k8s_standalone.py, loaded from its path (the folder is not a package)."""
    spec = importlib.util.spec_from_file_location("k8s_standalone", CRD_SCHEMAS / "k8s_standalone.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def kubeconform(text: str, version: str, schemas: Path) -> subprocess.CompletedProcess[str]:
    write = k8s_standalone().write
    docs = [d for d in yaml.safe_load_all(text) if d]
    builtin = sorted({kind_file(d) for d in docs if is_builtin(d)})
    write(schemas / version, version, builtin)
    return run(
        tool("kubeconform"),
        "-strict",
        "-summary",
        "-kubernetes-version",
        version,
        "-schema-location",
        f"{schemas / version}/{{{{.ResourceKind}}}}{{{{.KindSuffix}}}}.json",
        "-schema-location",
        f"{CRD_SCHEMAS}/{{{{.Group}}}}/{{{{.ResourceKind}}}}_{{{{.ResourceAPIVersion}}}}.json",
        "-",
        stdin=text,
    )


# ------------------------------------------------------------------ the tools' verdicts


def test_the_cluster_alerts_are_valid_and_their_unit_tests_pass():
    promtool = tool("promtool")
    r = run(promtool, "check", "rules", str(CLUSTER_ALERTS))
    assert r.returncode == 0, r.stdout + r.stderr
    r = run(promtool, "test", "rules", str(CLUSTER_ALERTS.with_name("cluster-alerts_test.yml")))
    assert r.returncode == 0, r.stdout + r.stderr


def test_helm_lint_passes():
    r = run(tool("helm"), "lint", str(CHART), "--strict")
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize(
    "sets", [(), ("ingest.autoscaling.enabled=true", "api.autoscaling.enabled=true", "backup.enabled=true")]
)
def test_every_rendered_object_is_valid_under_strict_schemas(tmp_path, version, sets):
    text = template(CHART, *sets)
    r = kubeconform(text, version, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    count = sum(1 for d in yaml.safe_load_all(text) if d)
    assert f"Valid: {count}, Invalid: 0, Errors: 0, Skipped: 0" in r.stdout, r.stdout


@pytest.mark.parametrize(
    "kind, breakage",
    [
        ("Deployment", lambda d: d["spec"].update(replica=2)),  # misspelt field
        ("StatefulSet", lambda d: d["spec"]["template"]["spec"]["containers"][0].update(livenessProbe={"http": 1})),
        ("KafkaTopic", lambda d: d["spec"].update(partitons=8)),
        ("KafkaUser", lambda d: d["spec"]["authentication"].update(type="password")),
        ("Kafka", lambda d: d["spec"]["kafka"]["listeners"][0].update(tls="yes")),
        ("PrometheusRule", lambda d: d["spec"]["groups"][0].update(rule=[])),
        ("ServiceMonitor", lambda d: d["spec"]["endpoints"][0].update(port=9090)),
    ],
)
def test_kubeconform_refuses_a_broken_object(tmp_path, kind, breakage):
    docs = copy.deepcopy(rendered())
    breakage(next(d for d in docs if d["kind"] == kind))
    r = kubeconform(yaml.safe_dump_all(docs), KUBERNETES_VERSIONS[-1], tmp_path)
    assert r.returncode != 0 and "Invalid: 1" in r.stdout, r.stdout


def test_kubeconform_refuses_a_kind_without_a_schema(tmp_path):
    docs = [
        *copy.deepcopy(rendered()),
        {"apiVersion": "example.invalid/v1", "kind": "Thing", "metadata": {"name": "x"}},
    ]
    r = kubeconform(yaml.safe_dump_all(docs), KUBERNETES_VERSIONS[-1], tmp_path)
    assert r.returncode != 0 and "could not find schema" in r.stdout, r.stdout


def test_helm_lint_refuses_a_broken_chart(tmp_path):
    broken = tmp_path / "baocao"
    shutil.copytree(CHART, broken, symlinks=False)
    path = broken / "templates" / "aggregate.yaml"
    path.write_text(path.read_text().replace("{{- $c := .Values.aggregate -}}", "{{- $c := .Values.aggregate "))
    r = run(tool("helm"), "lint", str(broken), "--strict")
    assert r.returncode != 0, r.stdout


@pytest.mark.parametrize(
    "setting",
    [
        "mongodb.readPreference=anywhere",
        "mongodb.image=mongo:8",
        "mongodb.image=mongo",
        "mongodb.replicas=2",
        "kafka.replicationFactor=1",
        "kafka.minInsyncReplicas=1",
        "podSecurityContext.runAsNonRoot=false",
        "api.webOrigin=baocao.example.vn",
        "secrets.mongodb=",
    ],
)
def test_values_that_would_weaken_the_deployment_are_refused(setting):
    r = run(tool("helm"), "template", RELEASE, str(CHART), "--set", setting)
    assert r.returncode != 0, f"{setting} was accepted"
    assert setting.split("=")[0].split(".")[-1] in r.stderr, r.stderr


def test_an_unpinned_image_is_refused():
    r = run(tool("helm"), "template", RELEASE, str(CHART), "--set", "image.tag=")
    assert r.returncode != 0 and "pin the image" in r.stderr


# ------------------------------------------------------------------ what the objects promise


def named(docs: Docs, kind: str, component: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == f"{RELEASE}-{component}"]
    assert len(found) == 1, f"{kind} {RELEASE}-{component}: {len(found)} found"
    return found[0]


def workload_problems(docs: Docs) -> list[str]:
    out = []
    for kind, component in (("Deployment", "ingest"), ("Deployment", "api"), ("StatefulSet", "aggregate")):
        obj = next((d for d in docs if d["kind"] == kind and d["metadata"]["name"] == f"{RELEASE}-{component}"), None)
        if obj is None:
            out.append(f"{kind} {component}: missing")
            continue
        pod = obj["spec"]["template"]["spec"]
        if not pod.get("securityContext", {}).get("runAsNonRoot"):
            out.append(f"{component}: may run as root")
        for c in pod["containers"]:
            sc = c.get("securityContext", {})
            if not sc.get("readOnlyRootFilesystem") or sc.get("allowPrivilegeEscalation") is not False:
                out.append(f"{component}: writable root or privilege escalation")
            if sc.get("capabilities", {}).get("drop") != ["ALL"]:
                out.append(f"{component}: capabilities kept")
            res = c.get("resources", {})
            if not {"cpu", "memory"} <= set(res.get("requests", {})) or not {"cpu", "memory"} <= set(
                res.get("limits", {})
            ):
                out.append(f"{component}: no requests and limits")
            probes = {p: c.get(p, {}).get("httpGet", {}).get("path") for p in ("livenessProbe", "readinessProbe")}
            if probes != {"livenessProbe": "/healthz", "readinessProbe": "/readyz"}:
                out.append(f"{component}: probes {probes}")
            env = {e["name"]: e for e in c.get("env", [])}
            for name, e in env.items():
                if SECRET_NAME.search(name) and "secretKeyRef" not in e.get("valueFrom", {}):
                    out.append(f"{component}: {name} is not read from a Secret")
            uri = env.get("MONGODB_URI", {}).get("value", "")
            if not re.match(r"^mongodb://baocao:\$\(BAOCAO_MONGO_PASSWORD\)@[^/]+,[^/]+,[^/]+/\?replicaSet=", uri):
                out.append(f"{component}: MONGODB_URI {uri!r} is not the replica set with a password from a Secret")
            if env.get("BAOCAO_KAFKA_SECURITY_PROTOCOL", {}).get("value") != "SASL_SSL":
                out.append(f"{component}: Kafka without TLS")
            if component == "api" and "-ingest:8001" not in env.get("BAOCAO_API_INGEST_URL", {}).get("value", ""):
                out.append("api: BAOCAO_API_INGEST_URL does not name the ingest Service")
    aggregate = next(
        (d for d in docs if d["kind"] == "StatefulSet" and d["metadata"]["name"].endswith("-aggregate")), {}
    )
    claims = [t["metadata"]["name"] for t in aggregate.get("spec", {}).get("volumeClaimTemplates", [])]
    mounts = [
        m["name"]
        for c in aggregate.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
        for m in c.get("volumeMounts", [])
        if m["mountPath"] == "/var/lib/baocao/aggregate"
    ]
    if not claims or mounts != claims[:1]:
        out.append(f"aggregate: state folder not on a claim per pod (claims {claims}, mounts {mounts})")
    if any(d["kind"] == "Secret" for d in docs):
        out.append("a Secret is rendered (secrets are referenced, never inlined)")
    return out


def kafka_problems(docs: Docs) -> list[str]:
    out = []
    pools = [d for d in docs if d["kind"] == "KafkaNodePool"]
    if [p["spec"]["replicas"] for p in pools] != [3] or sorted(pools[0]["spec"]["roles"]) != ["broker", "controller"]:
        out.append("Kafka: not three nodes, each broker and controller")
    kafka = next(d for d in docs if d["kind"] == "Kafka")["spec"]["kafka"]
    for listener in kafka["listeners"]:
        if listener.get("tls") is not True or listener.get("authentication", {}).get("type") != "scram-sha-512":
            out.append(f"Kafka listener {listener['name']}: not TLS with SCRAM-SHA-512")
    if kafka.get("authorization", {}).get("type") != "simple":
        out.append("Kafka: no ACL authorizer")
    want = {
        t.name: (t.num_partitions, t.replication_factor, t.topic_configs) for t in topic_specs(8, {}, Replication(3, 2))
    }
    have = {
        d["spec"]["topicName"]: (d["spec"]["partitions"], d["spec"]["replicas"], d["spec"]["config"])
        for d in docs
        if d["kind"] == "KafkaTopic"
    }
    if have != want:
        out.append(f"KafkaTopics {have} differ from tools/topics.py's {want}")
    prefix = f"{RELEASE}-"
    want_acls = {
        (
            a.principal.removeprefix("User:"),
            a.resource_pattern.resource_type.name.lower(),
            a.resource_pattern.resource_name,
            a.operation.name.lower(),
        )
        for a in acl_grants({})
    }
    have_acls = set()
    for d in docs:
        if d["kind"] != "KafkaUser":
            continue
        if d["spec"]["authentication"]["type"] != "scram-sha-512":
            out.append(f"KafkaUser {d['metadata']['name']}: not SCRAM-SHA-512")
        who = d["metadata"]["name"].removeprefix(prefix)
        for acl in d["spec"]["authorization"]["acls"]:
            for op in acl["operations"]:
                have_acls.add((who, acl["resource"]["type"], acl["resource"]["name"], op.lower()))
    if have_acls != want_acls:
        out.append(f"KafkaUser ACLs differ from tools/topics.py: {sorted(have_acls ^ want_acls)}")
    return out


def mongodb_problems(docs: Docs) -> list[str]:
    out = []
    sets = [d for d in docs if d["kind"] == "StatefulSet" and d["metadata"]["name"].endswith("-mongodb")]
    if len(sets) != 1 or sets[0]["spec"]["replicas"] != 3:
        return ["MongoDB: not a StatefulSet of three"]
    pod = sets[0]["spec"]["template"]["spec"]
    command = pod["containers"][0]["command"]
    if "--keyFile" not in command or "--replSet" not in command:
        out.append(f"MongoDB: mongod without a keyfile or replica set ({command})")
    if not any("init-replica-set.js" in " ".join(c.get("command", [])) for c in pod.get("initContainers", [])):
        out.append("MongoDB: nothing initiates the replica set")
    if not sets[0]["spec"].get("volumeClaimTemplates"):
        out.append("MongoDB: no volume per member")
    if not pod.get("securityContext", {}).get("runAsNonRoot"):
        out.append("MongoDB: may run as root")
    return out


def monitoring_problems(docs: Docs) -> list[str]:
    out = []
    rules = [d for d in docs if d["kind"] == "PrometheusRule"]
    groups = [*yaml.safe_load(ALERTS.read_text())["groups"], *yaml.safe_load(CLUSTER_ALERTS.read_text())["groups"]]
    if len(rules) != 1 or rules[0]["spec"]["groups"] != groups:
        out.append("PrometheusRule: not the rules of deploy/prometheus/alerts.yml and cluster-alerts.yml")
    # the brokers export every Kafka metric the cluster alerts read, and a PodMonitor scrapes them
    kafka = next((d for d in docs if d["kind"] == "Kafka"), {})
    ref = (
        kafka.get("spec", {}).get("kafka", {}).get("metricsConfig", {}).get("valueFrom", {}).get("configMapKeyRef", {})
    )
    config = next(
        (
            d["data"].get(ref.get("key"), "")
            for d in docs
            if d["kind"] == "ConfigMap" and d["metadata"]["name"] == ref.get("name")
        ),
        "",
    )
    exported = set()
    for rule in (yaml.safe_load(config) or {}).get("rules", []):
        alternatives = re.search(r"name=\(([^)]*)\)", rule["pattern"])
        for name in alternatives.group(1).split("|") if alternatives else []:
            exported.add(rule["name"].replace("$1", name).lower())
    wanted = {
        m
        for g in yaml.safe_load(CLUSTER_ALERTS.read_text())["groups"]
        for r in g["rules"]
        for m in re.findall(r"kafka_\w+", r["expr"])
    }
    if not wanted <= exported:
        out.append(f"Kafka metrics: the alerts read {sorted(wanted - exported)}, which the brokers do not export")
    pods = [d for d in docs if d["kind"] == "PodMonitor"]
    if not any(
        p["spec"]["selector"].get("matchLabels", {}).get("strimzi.io/kind") == "Kafka"
        and [e["port"] for e in p["spec"]["podMetricsEndpoints"]] == ["tcp-prometheus"]
        for p in pods
    ):
        out.append("PodMonitor: the brokers' metrics are not scraped")
    monitors = [d for d in docs if d["kind"] == "ServiceMonitor"]
    if len(monitors) != 1:
        return [*out, "ServiceMonitor: missing"]
    spec = monitors[0]["spec"]
    selected = {v for e in spec["selector"].get("matchExpressions", []) for v in e["values"]}
    if selected != {"ingest", "api", "aggregate"} or spec.get("jobLabel") != "app.kubernetes.io/component":
        out.append(f"ServiceMonitor: selects {selected}, job label {spec.get('jobLabel')}")
    return out


def pod_specs(docs: Docs) -> list[tuple[str, dict[str, Any]]]:
    """(name, pod spec) of every workload: Deployments, StatefulSets, CronJobs."""
    out = []
    for d in docs:
        if d["kind"] in ("Deployment", "StatefulSet"):
            out.append((d["metadata"]["name"], d["spec"]["template"]["spec"]))
        elif d["kind"] == "CronJob":
            out.append((d["metadata"]["name"], d["spec"]["jobTemplate"]["spec"]["template"]["spec"]))
    return out


def pod_problems(docs: Docs) -> list[str]:
    """Every pod: not root, nothing secret but from a Secret; MongoDB open to baocao's pods only."""
    out = []
    for name, pod in pod_specs(docs):
        if not pod.get("securityContext", {}).get("runAsNonRoot"):
            out.append(f"{name}: may run as root")
        for c in [*pod.get("initContainers", []), *pod["containers"]]:
            if c.get("securityContext", {}).get("allowPrivilegeEscalation") is not False:
                out.append(f"{name}/{c['name']}: privilege escalation allowed")
            for e in c.get("env", []):
                if SECRET_NAME.search(e["name"]) and "secretKeyRef" not in e.get("valueFrom", {}):
                    out.append(f"{name}/{c['name']}: {e['name']} is not read from a Secret")
                if "value" in e and re.search(r"mongodb://[^:@/]+:(?!\$\()[^@]*@", str(e["value"])):
                    out.append(f"{name}/{c['name']}: a URI carries a password of its own")
    policies = [
        p
        for p in docs
        if p["kind"] == "NetworkPolicy"
        and p["spec"]["podSelector"]["matchLabels"].get("app.kubernetes.io/component") == "mongodb"
    ]
    if len(policies) != 1:
        out.append("MongoDB: no NetworkPolicy (any pod of the cluster may connect)")
    else:
        sources = [
            f.get("podSelector", {}).get("matchLabels", {}) for r in policies[0]["spec"]["ingress"] for f in r["from"]
        ]
        if not sources or any(s.get("app.kubernetes.io/instance") != RELEASE for s in sources):
            out.append(f"MongoDB: reachable from {sources}")
    return out


def all_problems(docs: Docs) -> list[str]:
    return [
        *workload_problems(docs),
        *pod_problems(docs),
        *kafka_problems(docs),
        *mongodb_problems(docs),
        *monitoring_problems(docs),
    ]


def test_what_the_rendered_objects_promise_holds():
    assert all_problems(rendered()) == []


def test_the_optional_backup_job_logs_in_as_backup_from_a_secret():
    docs = rendered("backup.enabled=true")
    [job] = [d for d in docs if d["kind"] == "CronJob"]
    container = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert "tools.mongo_backup dump" in " ".join(container["command"])
    uri = next(e["value"] for e in container["env"] if e["name"] == "MONGODB_URI")
    assert uri.startswith("mongodb://backup:$(BAOCAO_MONGO_BACKUP_PASSWORD)@")
    assert all_problems(docs) == []
    assert not [d for d in rendered() if d["kind"] in ("CronJob", "PersistentVolumeClaim")]
    broken = copy.deepcopy(docs)
    [job] = [d for d in broken if d["kind"] == "CronJob"]
    env = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"]
    next(e for e in env if e["name"] == "MONGODB_URI")["value"] = "mongodb://backup:hunter2@m/?replicaSet=rs0"
    assert pod_problems(broken) == ["baocao-backup/backup: a URI carries a password of its own"]


def test_autoscaling_leaves_the_replica_count_to_the_autoscaler():
    docs = rendered("ingest.autoscaling.enabled=true")
    hpa = [d for d in docs if d["kind"] == "HorizontalPodAutoscaler"]
    assert [h["spec"]["scaleTargetRef"]["name"] for h in hpa] == [f"{RELEASE}-ingest"]
    assert "replicas" not in named(docs, "Deployment", "ingest")["spec"]
    assert named(docs, "Deployment", "api")["spec"]["replicas"] == 2
    assert all_problems(docs) == []


def _container(kind: str, component: str) -> Callable[[Docs], dict[str, Any]]:
    return lambda docs: named(docs, kind, component)["spec"]["template"]["spec"]["containers"][0]


def _env(docs: Docs, component: str, name: str) -> dict[str, Any]:
    kind = "StatefulSet" if component == "aggregate" else "Deployment"
    return next(e for e in _container(kind, component)(docs)["env"] if e["name"] == name)


BROKEN: dict[str, Callable[[Docs], None]] = {
    "root allowed": lambda d: named(d, "Deployment", "ingest")["spec"]["template"]["spec"]["securityContext"].pop(
        "runAsNonRoot"
    ),
    "writable root": lambda d: _container("Deployment", "api")(d)["securityContext"].update(
        readOnlyRootFilesystem=False
    ),
    "no limits": lambda d: _container("StatefulSet", "aggregate")(d)["resources"].pop("limits"),
    "readiness on healthz": lambda d: _container("Deployment", "ingest")(d)["readinessProbe"]["httpGet"].update(
        path="/healthz"
    ),
    "inlined password": lambda d: _env(d, "api", "BAOCAO_KAFKA_PASSWORD").update(value="x", valueFrom={}),
    "standalone mongo uri": lambda d: _env(d, "ingest", "MONGODB_URI").update(value="mongodb://mongo:27017/"),
    "api without ingest url": lambda d: _env(d, "api", "BAOCAO_API_INGEST_URL").update(value="http://127.0.0.1:8001"),
    "aggregate without claims": lambda d: named(d, "StatefulSet", "aggregate")["spec"].pop("volumeClaimTemplates"),
    "a secret inlined": lambda d: d.append({"kind": "Secret", "metadata": {"name": "x"}}),
    "two kafka nodes": lambda d: next(x for x in d if x["kind"] == "KafkaNodePool")["spec"].update(replicas=2),
    "plain listener": lambda d: next(x for x in d if x["kind"] == "Kafka")["spec"]["kafka"]["listeners"][0].update(
        tls=False
    ),
    "topic with one copy": lambda d: next(x for x in d if x["kind"] == "KafkaTopic")["spec"].update(replicas=1),
    "topic without min isr": lambda d: next(x for x in d if x["kind"] == "KafkaTopic")["spec"]["config"].pop(
        "min.insync.replicas"
    ),
    "extra acl": lambda d: next(x for x in d if x["kind"] == "KafkaUser")["spec"]["authorization"]["acls"][0][
        "operations"
    ].append("Delete"),
    "mongo without keyfile": lambda d: _container("StatefulSet", "mongodb")(d)["command"].remove("--keyFile"),
    "mongo without init": lambda d: named(d, "StatefulSet", "mongodb")["spec"]["template"]["spec"][
        "initContainers"
    ].pop(),
    "mongo open to every pod": lambda d: d.remove(next(x for x in d if x["kind"] == "NetworkPolicy")),
    "mongo open to another release": lambda d: next(x for x in d if x["kind"] == "NetworkPolicy")["spec"]["ingress"][0][
        "from"
    ][0]["podSelector"]["matchLabels"].update({"app.kubernetes.io/instance": "other"}),
    "sidecar password inlined": lambda d: named(d, "StatefulSet", "mongodb")["spec"]["template"]["spec"][
        "initContainers"
    ][1]["env"].append({"name": "MONGO_ROOT_PASSWORD", "value": "x"}),
    "keyfile copier escalates": lambda d: named(d, "StatefulSet", "mongodb")["spec"]["template"]["spec"][
        "initContainers"
    ][0]["securityContext"].pop("allowPrivilegeEscalation"),
    "an alert dropped": lambda d: next(x for x in d if x["kind"] == "PrometheusRule")["spec"]["groups"][0][
        "rules"
    ].pop(),
    "kafka without metrics": lambda d: next(x for x in d if x["kind"] == "Kafka")["spec"]["kafka"].pop("metricsConfig"),
    "metric not exported": lambda d: next(
        x for x in d if x["kind"] == "ConfigMap" and x["metadata"]["name"].endswith("-metrics")
    )["data"].update({"kafka-metrics-config.yml": "rules: []"}),
    "brokers not scraped": lambda d: next(x for x in d if x["kind"] == "PodMonitor")["spec"]["podMetricsEndpoints"][
        0
    ].update(port="http"),
    "a cluster alert dropped": lambda d: next(x for x in d if x["kind"] == "PrometheusRule")["spec"]["groups"].pop(),
    "monitor misses aggregate": lambda d: next(x for x in d if x["kind"] == "ServiceMonitor")["spec"]["selector"][
        "matchExpressions"
    ][0]["values"].remove("aggregate"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_each_check_finds_its_fault(case):
    docs = copy.deepcopy(rendered())
    BROKEN[case](docs)
    assert all_problems(docs), f"nothing found with {case}"
